"""`aimusicd batch`: in this process (the packaged models, against `scan`) and on a real local Ray
cluster (`ray start --head`, 2 worker processes; the tiny models through tests/support/batch_driver.py):
one row per file whatever happens, resumable by content hash, a worker killed mid-run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from support import audio
from support.ray_cluster import RayCluster, cluster_env

AIMUSICD = [sys.executable, "-m", "daemon"]
CORRUPT = {"empty.wav": "empty file", "notes.wav": "not a readable audio file", "truncated.wav": "truncated",
           "random.flac": "not a readable audio file", "short.wav": "too short"}


def run(*args, env=None, timeout=600):
    return subprocess.run([*AIMUSICD, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def summary_counts(stdout: str) -> dict[str, int]:
    """'... (3 analysed, 10 already in OUT, 1 duplicates; ...)' -> counts."""
    tail = stdout.strip().splitlines()[-1].rsplit("(", 1)[1]
    words = tail.replace(";", ",").split(",")
    return {w.split()[1]: int(w.split()[0]) for w in words[:3]}


def table(out: Path) -> list[dict]:
    return pq.read_table(out / "results.parquet").to_pylist()


def catalogue(folder: Path, distinct: int, seconds: float, rate: int = 44100, channels: int = 2,
              duplicates: int = 3) -> Path:
    """`distinct` music files, `duplicates` copies of some under other names in a sub-folder, and
    one of each kind of corrupt file."""
    (folder / "dupes").mkdir(parents=True)
    for i in range(distinct):
        sf.write(folder / f"track{i:03d}.wav", audio.music(seconds, rate, seed=i, channels=channels).T, rate,
                 subtype="PCM_16")
    for i in range(duplicates):
        shutil.copy(folder / f"track{i:03d}.wav", folder / "dupes" / f"copy{i}.wav")
    wav = (folder / "track000.wav").read_bytes()
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.wav").write_text("these are my lyrics, not audio\n" * 40)
    (folder / "truncated.wav").write_bytes(wav[: len(wav) // 3])
    (folder / "random.flac").write_bytes(np.random.default_rng(0).bytes(20000))
    sf.write(folder / "short.wav", audio.music(0.5, 44100).T, 44100, subtype="PCM_16")
    return folder


def check_shared(rows: dict[str, dict], a: Path, b: Path) -> None:
    """Same content: whichever was listed first was analysed, the other shares its row."""
    first, second = sorted([rows[str(a)], rows[str(b)]], key=lambda r: bool(r["duplicate_of"]))
    assert (first["duplicate_of"], second["duplicate_of"]) == ("", first["file"])
    assert (second["verdict"], second["report"], second["sha256"]) == (first["verdict"], first["report"], first["sha256"])


def check_one_row_per_file(rows: list[dict], folder: Path) -> None:
    files = sorted(str(p.resolve()) for p in folder.rglob("*") if p.is_file())
    assert sorted(r["file"] for r in rows) == files          # every file, each once
    for row in rows:
        name = Path(row["file"]).name
        if name in CORRUPT:
            assert not row["verdict"] and row["error_kind"] == "input", row
            assert row["error"].startswith(row["file"] + ": ") and CORRUPT[name] in row["error"]
        else:
            assert row["verdict"] in ("ai", "human", "uncertain") and not row["error"], row
            assert len(row["sha256"]) == 64 and 0 <= row["probability_ai"] <= 1
    by_file = {r["file"]: r for r in rows}
    for copy in (folder / "dupes").iterdir():
        check_shared(by_file, copy, folder / f"track00{copy.stem[4:]}.wav")


# -- in this process ----------------------------------------------------------------------------

def test_in_process_batch_gives_scans_verdicts_one_row_per_file_and_resumes(fixtures_dir, tmp_path):
    folder = tmp_path / "in"
    shutil.copytree(fixtures_dir / "good", folder)
    shutil.copy(fixtures_dir / "bad" / "notes.wav", folder)
    shutil.copy(fixtures_dir / "bad" / "empty.wav", folder)
    (folder / "dupes").mkdir()
    shutil.copy(folder / "music.flac", folder / "dupes" / "copy0.flac")
    out = tmp_path / "out"
    first = run("batch", "--mode", "cnn", "--out", out, "--csv", folder)
    assert first.returncode == 1, first.stderr        # two files failed: a row each, not a failed job
    assert "Traceback" not in first.stderr
    errors = [l for l in first.stdout.splitlines() if l.startswith("error")]
    assert len(errors) == 2 and any(str(folder / "empty.wav") + ": empty file" in e for e in errors)
    n = len(list(folder.rglob("*.*")))
    assert first.stdout.strip().splitlines()[-1].startswith(f"{n} files: ") and " 2 failed in " in first.stdout
    assert summary_counts(first.stdout) == {"analysed": n - 1, "already": 0, "duplicates": 1}

    rows = {Path(r["file"]).name: r for r in table(out)}
    assert len(rows) == n
    scan = json.loads(run("scan", "--mode", "cnn", "--json", "--no-report", folder).stdout)
    assert len(scan["reports"]) == n - 3
    for report in scan["reports"]:
        row = rows[Path(report["file"]).name]
        assert (row["verdict"], row["probability_ai"], row["decided_by"]) == (
            report["verdict"], report["probability_ai"], report["decided_by"])
        assert row["cnn_probability"] == report["engines"]["cnn"]["probability_ai"]
        assert row["evidence"].startswith(f"cnn {report['engines']['cnn']['probability_ai']:.3f}")
        saved = json.loads((out / row["report"]).read_text())
        assert saved["schema"] == "aimusicd.report/1" and saved["sha256"] == row["sha256"] == report["sha256"]
    check_shared({r["file"]: r for r in rows.values()}, folder / "dupes" / "copy0.flac", folder / "music.flac")
    assert rows["notes.wav"]["error_kind"] == "input" and not rows["notes.wav"]["verdict"]
    assert len((out / "results.csv").read_text().splitlines()) == n + 1

    shutil.copy(folder / "music.wav", folder / "dupes" / "copy1.wav")      # new name, known content
    again = run("batch", "--mode", "cnn", "--out", out, folder)
    assert summary_counts(again.stdout) == {"analysed": 0, "already": n + 1, "duplicates": 0}
    rows2 = {Path(r["file"]).name: r for r in table(out)}
    assert len(rows2) == n + 1 and rows2["copy1.wav"]["duplicate_of"] in (str(folder / "music.wav"),
                                                                         rows["music.wav"]["duplicate_of"])
    assert all(rows2[name] == row for name, row in rows.items())   # done files keep their row


def test_a_run_killed_mid_way_resumes_from_its_journal(fixtures_dir, tmp_path):
    folder = tmp_path / "in"
    shutil.copytree(fixtures_dir / "good", folder)
    out = tmp_path / "out"
    assert run("batch", "--mode", "cnn", "--out", out, folder).returncode == 0
    n = len(list(folder.iterdir()))
    journal = (out / "results.jsonl").read_text().splitlines()
    # as a driver killed while writing its fourth line leaves it; no table written yet
    (out / "results.jsonl").write_text("\n".join(journal[:3]) + "\n" + journal[3][:40])
    (out / "results.parquet").unlink()
    again = run("batch", "--mode", "cnn", "--out", out, folder)
    assert again.returncode == 0, again.stdout + again.stderr
    assert summary_counts(again.stdout) == {"analysed": n - 3, "already": 3, "duplicates": 0}
    assert sorted(r["file"] for r in table(out)) == sorted(str(p) for p in folder.iterdir())


def test_list_files_and_object_store_uris(fixtures_dir, tmp_path):
    store = tmp_path / "bucket" / "uploads"
    (store / ".hidden").mkdir(parents=True)
    for name in ("music.flac", "music.mp3"):
        shutil.copy(fixtures_dir / "good" / name, store / name)
    shutil.copy(fixtures_dir / "good" / "music.ogg", store / ".hidden" / "skip.ogg")
    shutil.copy(fixtures_dir / "bad" / "truncated.mp3", store / "broken.mp3")
    local = tmp_path / "local"
    local.mkdir()
    shutil.copy(fixtures_dir / "good" / "music.wav", local / "a.wav")
    (local / "list.txt").write_text("# today's uploads\na.wav\nmissing.wav\n\n")
    out = tmp_path / "out"
    res = run("batch", "--mode", "cnn", "--out", out, f"file://{store}", local / "list.txt")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    rows = {r["file"]: r for r in table(out)}
    assert sorted(rows) == sorted([f"file://{store}/music.flac", f"file://{store}/music.mp3",
                                   f"file://{store}/broken.mp3", str(local / "a.wav"), str(local / "missing.wav")])
    flac = rows[f"file://{store}/music.flac"]
    assert flac["verdict"] and json.loads((out / flac["report"]).read_text())["file"] == f"file://{store}/music.flac"
    assert rows[f"file://{store}/broken.mp3"]["error"].startswith(f"file://{store}/broken.mp3: ")
    assert rows[str(local / "missing.wav")]["error"] == f"{local / 'missing.wav'}: file not found"


def test_without_ray_the_flag_says_how_to_install_it_and_the_rest_works(fixtures_dir, tmp_path):
    # An importable `ray` that fails as a missing one does: what a machine without the extra sees.
    shadow = tmp_path / "no-ray" / "ray"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'ray'\", name='ray')\n")
    env = dict(os.environ, PYTHONPATH=str(shadow.parent))
    song = tmp_path / "song.wav"
    shutil.copy(fixtures_dir / "good" / "music.wav", song)
    res = run("batch", "--ray", "--out", tmp_path / "out", song, env=env)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [
        "aimusicd: error: --ray needs Ray, which is not installed: pip install 'aimusicd[ray]' "
        "(in a checkout: pip install '.[ray]')"]
    local = run("batch", "--mode", "cnn", "--out", tmp_path / "out", song, env=env)
    assert local.returncode == 0 and local.stdout.strip().endswith("results.parquet)"), local.stderr


# -- on a real Ray cluster ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_cluster():
    cluster = RayCluster(cpus=2)
    cluster.start()
    yield cluster
    cluster.stop()


def driver(cluster: RayCluster, out: Path, mode: str, *sources, preset: Path | None = None):
    cmd = [sys.executable, "-m", "support.batch_driver", "--out", str(out), "--mode", mode,
           "--ray", cluster.address, *map(str, sources)]
    if preset:
        cmd += ["--preset", str(preset)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster_env())


def finish(proc: subprocess.Popen, timeout: float = 240) -> dict:
    stdout, stderr = proc.communicate(timeout=timeout)
    assert "Traceback" not in stderr, stderr[-4000:]
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.ray
@pytest.mark.slow
def test_ray_50_files_every_one_a_row_a_worker_killed_mid_run_and_a_rerun_skips(ray_cluster, tmp_path):
    # 42 tracks long enough (12 s) that the run lasts while a worker is killed
    folder = catalogue(tmp_path / "in", distinct=42, seconds=12, rate=22050, channels=1)
    assert len(list(folder.rglob("*.*"))) == 50
    out = tmp_path / "out"
    proc = driver(ray_cluster, out, "cnn", folder)
    journal = out / "results.jsonl"
    deadline = time.monotonic() + 180
    while not (journal.exists() and len(journal.read_text().splitlines()) >= 12):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
        time.sleep(0.2)
    victims = ray_cluster.worker_pids("FastActor")
    assert victims, "no fast-pass actor process found"
    os.kill(victims[0], signal.SIGKILL)
    done_at_kill = len(journal.read_text().splitlines())
    assert done_at_kill < 50, "the run ended before the worker was killed"
    result = finish(proc)
    assert proc.returncode == 1            # the corrupt files are failed rows, the job is not
    assert not Path(f"/proc/{victims[0]}").exists()
    rows = table(out)
    check_one_row_per_file(rows, folder)
    assert result["analysed"] == 47 and result["duplicates"] == 3
    assert len(journal.read_text().splitlines()) == 50       # no file answered twice, despite the retry

    (folder / "new").mkdir()
    shutil.copy(folder / "track010.wav", folder / "new" / "same_as_track010.wav")
    rerun = finish(driver(ray_cluster, out, "cnn", folder))
    assert (rerun["analysed"], rerun["already_done"]) == (0, 51)
    rows2 = {r["file"]: r for r in table(out)}
    assert len(rows2) == 51
    check_shared(rows2, folder / "new" / "same_as_track010.wav", folder / "track010.wav")
    assert all(rows2[r["file"]] == r for r in rows)


@pytest.mark.ray
@pytest.mark.slow
def test_ray_demucs_pool_gives_the_in_process_verdicts(ray_cluster, tiny_models, tmp_path):
    from daemon.config import load_config

    folder = catalogue(tmp_path / "in", distinct=3, seconds=4, duplicates=1)
    preset = tmp_path / "one-excerpt.toml"
    preset.write_text("[engines]\ndemucs_excerpts = 1\n")
    out = tmp_path / "out"
    result = finish(driver(ray_cluster, out, "full", folder, preset=preset))
    rows = {r["file"]: r for r in result["rows"]}
    check_one_row_per_file(list(rows.values()), folder)
    analyzer = tiny_models.analyzer(load_config(str(preset)))
    for i in range(3):
        path = folder / f"track{i:03d}.wav"
        report, row = analyzer.analyze(path, "full"), rows[str(path)]
        analysed = rows[row["duplicate_of"]] if row["duplicate_of"] else row
        assert analysed["demucs_s"] > 0 and row["demucs_probability"] is not None and row["mode"] == "full"
        assert row["verdict"] == report.verdict
        assert row["probability_ai"] == pytest.approx(report.probability_ai, abs=1e-4)
        assert row["demucs_probability"] == pytest.approx(report.demucs.probability_ai, abs=1e-4)
        assert json.loads((out / row["report"]).read_text())["engines"]["demucs"]["ran"]


@pytest.mark.ray
@pytest.mark.slow
def test_ray_cli_matches_the_in_process_batch(ray_cluster, fixtures_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("music.wav", "music.mp3", "music.m4a", "mono_8k.wav"):
        shutil.copy(fixtures_dir / "good" / name, folder / name)
    shutil.copy(fixtures_dir / "bad" / "random.flac", folder)
    on_ray = run("batch", "--mode", "cnn", "--ray", ray_cluster.address, "--out", tmp_path / "ray", folder,
                 env=cluster_env())
    assert on_ray.returncode == 1 and "Traceback" not in on_ray.stderr, on_ray.stderr[-3000:]
    assert on_ray.stdout.strip().splitlines()[-1].startswith("5 files: ") and " 1 failed in " in on_ray.stdout
    local = run("batch", "--mode", "cnn", "--out", tmp_path / "local", folder)
    assert local.returncode == 1, local.stderr[-3000:]
    keys = ("file", "sha256", "verdict", "decided_by", "error")
    ray_rows, local_rows = table(tmp_path / "ray"), table(tmp_path / "local")
    assert [{k: r[k] for k in keys} for r in ray_rows] == [{k: r[k] for k in keys} for r in local_rows]
    for a, b in zip(ray_rows, local_rows):     # an actor runs torch on one thread: rounding may differ
        assert (a["probability_ai"] is None) == (b["probability_ai"] is None)
        assert a["probability_ai"] == pytest.approx(b["probability_ai"], abs=1e-5)
