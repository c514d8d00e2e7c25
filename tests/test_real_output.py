"""The shipped models on real generator output they never saw: the held-out ACE-Step 1.5 test
tracks (fixed prompt split, fetched from PyPI by the training corpora code), scanned as a user
would, through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from daemon.config import cache_dir
from daemon.training.corpora import real_tracks


@pytest.fixture(scope="module")
def ace_step_test_tracks():
    tracks = [t for t in real_tracks(cache_dir() / "corpora", lambda m: None) if t.split == "test"]
    assert len(tracks) == 12
    return [t.files[0] for t in tracks]


@pytest.mark.slow
def test_a_scan_of_real_held_out_generator_output_says_ai_with_the_fingerprint_in_its_report(
        ace_step_test_tracks, tmp_path):
    scan = subprocess.run([sys.executable, "-m", "daemon", "scan", "--mode", "cnn", "--json",
                           "--report-dir", str(tmp_path), *map(str, ace_step_test_tracks)],
                          capture_output=True, text=True, timeout=600)
    assert scan.returncode == 0, scan.stderr[-2000:]
    reports = json.loads(scan.stdout)["reports"]
    assert len(reports) == 12
    verdicts = [r["verdict"] for r in reports]
    assert verdicts.count("ai") >= 11 and "human" not in verdicts, verdicts
    for r in reports:
        if r["verdict"] == "ai":
            assert r["matched"] == "ace-step-1.5" and "fingerprint" in r["decided_by"]
            fp = r["engines"]["fingerprint"]
            assert fp["matched"] == "ace-step-1.5" and fp["matches"][0]["fired"] and fp["peaks_hz"]
    written = sorted(tmp_path.glob("*.aimusic.json"))
    assert len(written) == 12 and json.loads(written[0].read_text())["engines"]["fingerprint"]
