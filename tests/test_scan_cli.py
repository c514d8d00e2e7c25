"""`aimusicd scan` as a user runs it: real files in every format, the packaged models, exit codes,
one line per file, JSON reports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from daemon.engines.fusion import Fusion
from support.audio import GOOD

SCAN = [sys.executable, "-m", "daemon", "scan"]


def run_scan(*args, cwd=None):
    return subprocess.run(SCAN + [str(a) for a in args], capture_output=True, text=True, timeout=600, cwd=cwd)


def test_every_format_gets_a_verdict_and_a_report(fixtures_dir, tmp_path):
    folder = tmp_path / "in"
    shutil.copytree(fixtures_dir / "good", folder)
    out = run_scan("--mode", "cnn", folder)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["verdict", "p(ai)", "engines"]
    names = [*GOOD, "music.m4a"]
    assert len(lines) == 1 + len(names) + 1
    for name in names:
        [line] = [l for l in lines if l.endswith("/" + name)]
        verdict, prob, engines = line.split()[:3]
        assert verdict in ("ai", "human", "uncertain") and 0 <= float(prob) <= 1 and engines == "cnn"
        report = json.loads((folder / (name + ".aimusic.json")).read_text())
        assert report["schema"] == "aimusicd.report/1" and report["verdict"] == verdict
    assert lines[-1].startswith(f"{len(names)} files: ") and "0 failed" in lines[-1]


def test_failures_are_one_line_each_and_make_the_exit_code_non_zero(fixtures_dir, tmp_path):
    out = run_scan("--mode", "cnn", "--no-report", fixtures_dir / "good" / "music.wav",
                   fixtures_dir / "bad" / "empty.wav", fixtures_dir / "bad" / "notes.wav",
                   tmp_path / "missing.wav")
    assert out.returncode == 1
    errors = [l for l in out.stdout.splitlines() if l.startswith("error")]
    assert len(errors) == 3
    assert any(str(fixtures_dir / "bad" / "empty.wav") + ": empty file" in e for e in errors)
    assert any("missing.wav: file not found" in e for e in errors)
    assert "Traceback" not in out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("4 files: ") and "3 failed" in out.stdout


def test_json_output_report_dir_and_recursion(fixtures_dir, tmp_path):
    tree = tmp_path / "tree"
    (tree / "sub" / ".hidden").mkdir(parents=True)
    shutil.copy(fixtures_dir / "good" / "music.flac", tree / "top.flac")
    shutil.copy(fixtures_dir / "good" / "music.ogg", tree / "sub" / "deep.ogg")
    shutil.copy(fixtures_dir / "good" / "music.mp3", tree / "sub" / ".hidden" / "skip.mp3")
    reports = tmp_path / "reports"
    flat = run_scan("--mode", "cnn", "--json", "--report-dir", reports, tree)
    assert flat.returncode == 0
    assert [r["file"].rsplit("/", 1)[1] for r in json.loads(flat.stdout)["reports"]] == ["top.flac"]
    deep = run_scan("--mode", "cnn", "--json", "--report-dir", reports, "--recursive", tree)
    doc = json.loads(deep.stdout)
    assert sorted(r["file"].rsplit("/", 1)[1] for r in doc["reports"]) == ["deep.ogg", "top.flac"]
    assert doc["errors"] == []
    assert sorted(p.name for p in reports.iterdir()) == ["deep.ogg.aimusic.json", "top.flac.aimusic.json"]
    assert not list(tree.rglob("*.aimusic.json"))      # nothing written next to the music


@pytest.mark.weights
def test_full_mode_with_the_real_htdemucs_gives_both_engines_evidence(fixtures_dir, tmp_path, real_weights):
    path = tmp_path / "song.flac"
    shutil.copy(fixtures_dir / "good" / "music.flac", path)
    out = run_scan("--mode", "full", path)
    assert out.returncode == 0, out.stderr
    assert " cnn+demucs " in out.stdout
    report = json.loads((tmp_path / "song.flac.aimusic.json").read_text())
    demucs = report["engines"]["demucs"]
    assert demucs["ran"] and demucs["model_sha256"] and 0 <= demucs["probability_ai"] <= 1
    # Real HTDemucs leaves a small but real residual: neither zero nor the whole mix.
    assert -80 < demucs["features"]["residual_db"] < -5
    # the shipped fusion weighs each correction only if it passed its held-out check in training
    params = Fusion.load().params
    assert report["decided_by"] == "+".join(
        ["cnn"] + ["images"] * params.weighs_images + ["demucs"] * params.weighs_demucs)
