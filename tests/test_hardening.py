"""A daemon that keeps analysing whatever a hostile or careless user does: each test reproduces one
way a real daemon process stopped analysing (or leaked, or looped), with real packets, real files,
FIFOs, symlinks and a real full filesystem (a small tmpfs; tests that need to mount one are
skipped, saying why, where the test runner may not mount)."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_message_builder import OscMessageBuilder

from support.audio import music
from support.daemon_proc import DaemonProcess, wait_until

RESULT_TIMEOUT_S = 30


# -- helpers -----------------------------------------------------------------------------------
def fill(folder: Path) -> Path:
    """Write zeros into `folder` until its filesystem is full; returns the filler file."""
    filler = folder / "filler"
    chunk = b"\0" * 4096
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError:
            pass
    return filler


def status(d: DaemonProcess, timeout: float = 10.0) -> tuple:
    d.client.received.clear()
    d.send("/aimusic/status")
    return d.client.wait_for("/aimusic/status.reply", timeout).args


def analyse(d: DaemonProcess, path: Path, req: int) -> tuple:
    d.client.received.clear()
    d.send("/aimusic/analyze", str(path), req)
    return d.client.wait_for("/aimusic/result", RESULT_TIMEOUT_S, where=lambda m: m.args[0] == req).args


def raw_message(address: str, *typed_args: tuple) -> bytes:
    builder = OscMessageBuilder(address)
    for value, kind in typed_args:
        builder.add_arg(value, kind)
    return builder.build().dgram


def long_low_rate_wav(path: Path, minutes: float) -> Path:
    """A long file that keeps the CNN worker busy for a few seconds (8 kHz mono, so it is small)."""
    clip = music(10, 8000, seed=3, channels=1)
    sf.write(path, np.tile(clip, int(minutes * 6)).T, 8000, subtype="PCM_16")
    return path


def start_failure(d: DaemonProcess) -> tuple[int, str]:
    """Run `aimusicd run` on d's preset, expecting it to fail at start: (exit code, output)."""
    d.write_preset()
    proc = subprocess.run([sys.executable, "-m", "daemon", "run", "--preset", str(d.preset)],
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


# -- 1. request ids beyond 32 bits -----------------------------------------------------------------
def test_a_request_id_beyond_32_bits_is_refused_and_the_worker_keeps_analysing(daemon, wav):
    d = daemon()
    song = wav("song.wav")
    d.client.send_raw(d.target, raw_message("/aimusic/analyze", (str(song), "s"), (3e9, "f")))
    err = d.client.wait_for("/aimusic/error")
    assert "does not fit a 32-bit OSC int" in err.args[2]
    d.client.received.clear()
    d.client.send_raw(d.target, raw_message("/aimusic/analyze", (str(song), "s"), (2**40, "h")))
    assert "does not fit a 32-bit OSC int" in d.client.wait_for("/aimusic/error").args[2]
    assert d.jobs() == []
    for req in (7, 8):                                   # the worker goes on analysing
        assert analyse(d, song, req)[2] in ("ai", "human", "uncertain")
    assert "Traceback" not in d.log()


# -- 2. OSC loops ------------------------------------------------------------------------------
def test_the_daemon_cannot_be_made_to_talk_to_itself(daemon, wav):
    d = daemon()
    for host, port, needle in (("127.0.0.1", d.port, "own address"),
                               ("localhost", 9000, "not an IP address"),
                               ("10.20.30.40", 9000, "outside [osc] allowed_senders")):
        d.client.received.clear()
        d.send("/aimusic/subscribe", host, port)
        assert needle in d.client.wait_for("/aimusic/error").args[2]
    # Replies and pushes arriving at the daemon (from a second daemon, say) are never answered.
    d.client.received.clear()
    d.send("/aimusic/result", 1, "/x.wav", "ai", 0.9, 0.9, -1.0, "")
    d.send("/aimusic/error", -1, "/aimusic/ping", "loop?")
    d.client.pump(1.0)
    assert d.client.all("/aimusic/error") == []
    song = wav("song.wav")
    analyse(d, song, 3)
    time.sleep(1.0)
    assert d.log().count("unknown address") == 0 and len(d.log().splitlines()) < 200
    d.send("/aimusic/ping")
    d.client.wait_for("/aimusic/pong")


def test_a_preset_that_replies_to_its_own_port_fails_config_check(tmp_path):
    preset = tmp_path / "loop.toml"
    preset.write_text("[osc]\nport = 9555\nreply_port = 9555\n")
    proc = subprocess.run([sys.executable, "-m", "daemon", "config", "check", str(preset)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "reply_port (9555) must differ from port" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# -- 3. a full disk under the state folder -------------------------------------------------------
def test_a_full_state_disk_fails_requests_clearly_stalls_workers_and_recovers(daemon, tmpfs, tmp_path):
    state = tmpfs("state", 8192)
    d = daemon(daemon={"state_dir": str(state)})
    song = tmp_path / "song.wav"
    sf.write(song, music(5, 44100, seed=1).T, 44100, subtype="PCM_16")

    filler = fill(state)
    d.client.received.clear()
    d.send("/aimusic/analyze", str(song), 1)
    err = d.client.wait_for("/aimusic/error").args[2]
    assert "disk is full" in err and "cannot rollback" not in err and "internal error" not in err
    d.send("/aimusic/ping")
    d.client.wait_for("/aimusic/pong")
    filler.unlink()
    assert analyse(d, song, 2)[2] in ("ai", "human", "uncertain")

    # The disk fills while the CNN worker is busy: it waits, then finishes once there is room.
    long = long_low_rate_wav(tmp_path / "long.wav", minutes=20)
    d.client.received.clear()
    d.send("/aimusic/analyze", str(long), 3)
    d.client.wait_for("/aimusic/queued")
    wait_until(lambda: any(j["state"] == "running" for j in d.jobs()), 20, "the long job to run")
    filler = fill(state)
    wait_until(lambda: "cnn worker waiting" in d.log(), 60, "the worker to wait for the disk")
    cnn_state = status(d)[6]
    assert cnn_state.startswith("waiting:") and "disk is full" in cnn_state
    filler.unlink()
    d.client.wait_for("/aimusic/result", 60, where=lambda m: m.args[0] == 3)
    assert analyse(d, song, 4)[2] in ("ai", "human", "uncertain")
    wait_until(lambda: status(d)[6] == "idle", 30, "the CNN worker idle once its jobs are done")
    assert "Exception in thread" not in d.log()


# -- 4, 5. special files in the watch folder --------------------------------------------------------
def test_special_files_in_the_watch_folder_are_never_opened(daemon, wav):
    d = daemon(osc={"allowed_roots": ["/"]})       # so that only the file type refuses /dev/zero
    os.mkfifo(d.inbox / "fifo.wav")
    (d.inbox / "zero.wav").symlink_to("/dev/zero")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(d.inbox / "socket.wav"))
    try:
        time.sleep(2.0)                              # past the settle time of every one of them
        good = d.inbox / "good.wav"
        shutil.copy(wav("good.wav"), good)
        [job] = d.wait_jobs(lambda js: len(js) == 1 and js[0]["state"] == "done", RESULT_TIMEOUT_S,
                            "the good file to be analysed")
        assert job["path"] == str(good)
        log = d.log()
        assert "not a regular file (a FIFO)" in log and "not a regular file (a character device)" in log
        d.client.received.clear()
        d.send("/aimusic/analyze", str(d.inbox / "fifo.wav"), 5)
        assert "not a regular file" in d.client.wait_for("/aimusic/error").args[2]
        assert len(d.jobs()) == 1
    finally:
        listener.close()


# -- 6. symlinks out of the allowed roots ---------------------------------------------------------
def test_links_in_the_watch_folder_cannot_escape_the_allowed_roots(daemon, wav, tmp_path):
    outside = wav("outside/song.wav")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "x.wav").symlink_to(outside)            # found by the start-up scan
    (inbox / "up").symlink_to("..")                  # a folder link to the parent, and a loop
    d = daemon(osc={"allowed_roots": [str(inbox)]})
    (inbox / "y.wav").symlink_to(outside)            # seen by the watcher
    (inbox / "passwd.wav").symlink_to("/etc/passwd")
    time.sleep(2.0)
    good = inbox / "good.wav"
    shutil.copy(wav("good.wav", seed=4), good)
    d.wait_jobs(lambda js: any(j["state"] == "done" for j in js), RESULT_TIMEOUT_S, "the good file")
    time.sleep(1.0)
    assert [j["path"] for j in d.jobs()] == [str(good)]
    assert not (outside.parent / "song.wav.aimusic.json").exists()
    assert not Path("/etc/passwd.aimusic.json").exists()
    assert d.log().count("outside the allowed roots") >= 3


# -- 7. non-finite probabilities --------------------------------------------------------------------
def _strict_json(text: str):
    def refuse(constant):
        raise AssertionError(f"{constant} in JSON")
    return json.loads(text, parse_constant=refuse)


def test_huge_samples_never_put_nan_in_a_report_osc_the_history_or_break_history(daemon, tmp_path):
    huge = tmp_path / "huge.wav"
    sf.write(huge, (music(4, 44100, seed=2) * 1e30).T, 44100, subtype="FLOAT")
    d = daemon()
    d.send("/aimusic/analyze", str(huge), 11)
    d.client.wait_for("/aimusic/queued")

    def answered():
        d.client.pump(0.2)
        return [m for m in d.client.received
                if m.address in ("/aimusic/result", "/aimusic/error") and m.args and m.args[0] == 11]
    [reply] = wait_until(answered, RESULT_TIMEOUT_S, "a result or an error")
    [job] = d.jobs()
    if reply.address == "/aimusic/result":     # the engines coped with the level
        assert all(isinstance(v, float) and math.isfinite(v) for v in reply.args[3:6])
        report = _strict_json(Path(reply.args[6]).read_text())
        assert math.isfinite(report["probability_ai"]) and job["probability_ai"] is not None
    else:
        assert "non-finite probability" in reply.args[2] and job["state"] == "failed"
        assert not (tmp_path / "huge.wav.aimusic.json").exists()
    assert d.stop() == 0

    # An entry an earlier version wrote with NULL for NaN must not break `aimusicd history`.
    con = sqlite3.connect(d.state / "aimusicd.sqlite")
    con.execute("INSERT INTO jobs (path, mode, source, state, stage, created, finished, verdict) "
                "VALUES ('/old.wav', 'cnn', 'watch', 'done', 'cnn', 1, 2, 'uncertain')")
    con.commit()
    con.close()
    for extra in ([], ["--json"]):
        proc = subprocess.run([sys.executable, "-m", "daemon", "history", "--preset", str(d.preset),
                               *extra], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "/old.wav" in proc.stdout
    _strict_json(proc.stdout)


# -- 8. log forging ----------------------------------------------------------------------------------
def test_newlines_in_paths_and_addresses_cannot_forge_log_lines(daemon):
    d = daemon()
    forged = "2030-01-01 00:00:00 ERROR   aimusicd: FORGED"
    d.send("/aimusic/analyze", f"/no/such.wav\n{forged}", 1)
    d.client.wait_for("/aimusic/error")
    d.client.received.clear()
    d.send(f"/aimusic/nothing\n{forged}\r")
    d.client.wait_for("/aimusic/error")
    wait_until(lambda: d.log().count("FORGED") >= 2, 5, "both requests in the log")
    lines = d.log().splitlines()
    assert not any(line.startswith("2030-01-01") for line in lines)
    assert sum("\\n2030-01-01 00:00:00 ERROR   aimusicd: FORGED" in line for line in lines) >= 2


# -- 9. start-up failures: one line each ----------------------------------------------------------
def _assert_one_line_failure(code: int, output: str, needle: str) -> None:
    assert code != 0
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("aimusicd: error:")]
    assert len(errors) == 1 and needle in errors[0], output


def test_a_read_only_or_full_state_folder_is_one_line_at_start(tmp_path, tmpfs):
    d = DaemonProcess(tmp_path, {"daemon": {"state_dir": str(tmpfs("ro", 1024, read_only=True))}})
    _assert_one_line_failure(*start_failure(d), "Read-only file system")
    full = tmpfs("full", 256)
    fill(full)
    d = DaemonProcess(tmp_path, {"daemon": {"state_dir": str(full / "state")}})
    _assert_one_line_failure(*start_failure(d), "No space left on device")


def test_a_state_folder_that_cannot_exist_or_a_port_in_use_is_one_line_at_start(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    d = DaemonProcess(tmp_path, {"daemon": {"state_dir": str(tmp_path / "a-file" / "state")}})
    _assert_one_line_failure(*start_failure(d), "state folder")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        d = DaemonProcess(tmp_path, {"osc": {"port": taken.getsockname()[1]}})
        _assert_one_line_failure(*start_failure(d), "cannot listen for OSC")
    d.client.close()


# -- also seen -------------------------------------------------------------------------------------
def test_a_failed_file_is_not_analysed_again_after_a_restart(daemon):
    d = daemon()
    (d.inbox / "lyrics.wav").write_text("these are my lyrics, not audio\n" * 40)
    [job] = d.wait_jobs(lambda js: len(js) == 1 and js[0]["state"] == "failed", RESULT_TIMEOUT_S,
                        "the bad file to fail")
    assert job["sha256"]
    assert d.stop() == 0
    d.start()
    time.sleep(3.0)                                  # the start-up scan has seen it by now
    assert len(d.jobs()) == 1
    shutil.copy(d.inbox / "lyrics.wav", d.inbox / "copy.wav")   # the same content, another name
    time.sleep(2.5)
    assert len(d.jobs()) == 1 and "the same content failed before" in d.log()


def test_a_file_over_the_size_limit_fails_without_being_hashed(daemon, wav):
    d = daemon(engines={"max_file_mb": 1})
    shutil.copy(wav("big.wav", seconds=15), d.inbox / "big.wav")     # 2.6 MB
    [job] = d.wait_jobs(lambda js: len(js) == 1 and js[0]["state"] == "failed", RESULT_TIMEOUT_S,
                        "the large file to fail")
    assert "too large" in job["error"] and job["sha256"] is None


def test_a_burst_of_requests_is_served_or_counted_as_dropped(daemon):
    d = daemon()
    assert "receive buffer" in d.log()
    before = status(d)
    packets_before, drops_before = before[10], before[11]
    assert drops_before >= 0                         # Linux counts what the kernel drops
    burst = 1500
    ping = raw_message("/aimusic/ping")
    for _ in range(burst):
        d.client.send_raw(d.target, ping)
    asked = 0

    def accounted() -> bool:
        nonlocal asked
        time.sleep(1.0)
        asked += 1
        try:
            fields = status(d, timeout=20)
        except AssertionError:                     # the status request itself met a full buffer
            return False
        served = fields[10] - packets_before - asked     # minus the status requests themselves
        return served + (fields[11] - drops_before) == burst

    wait_until(accounted, 150, "every packet of the burst served or counted as dropped")


def test_status_reports_each_worker_and_its_last_job(daemon, wav):
    d = daemon()
    fields = status(d)
    assert fields[6:10] == ("idle", "", "idle", "")
    analyse(d, wav("s.wav"), 1)
    # the result is pushed from inside the job: the worker turns idle just after
    wait_until(lambda: status(d)[6] == "idle", 30, "the CNN worker idle once its job is done")
    cnn_state, cnn_last, demucs_state, demucs_last = status(d)[6:10]
    assert (cnn_state, demucs_state, demucs_last) == ("idle", "idle", "")
    assert cnn_last.startswith(time.strftime("%Y-"))
    proc = subprocess.run([sys.executable, "-m", "daemon", "status", "--preset", str(d.preset)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "cnn       idle; last job 20" in proc.stdout, proc.stdout


def test_a_deleted_state_database_is_written_back_with_its_jobs(daemon, wav):
    d = daemon()
    analyse(d, wav("first.wav", seed=1), 1)
    db = d.state / "aimusicd.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    wait_until(db.exists, 10, "the database to be written back")
    wait_until(lambda: "was deleted or replaced" in d.log(), 5, "the log line")
    analyse(d, wav("second.wav", seed=2), 2)
    assert d.stop() == 0
    d.start()
    assert [j["req_id"] for j in d.jobs()] == [1, 2]
    assert all(j["state"] == "done" for j in d.jobs())


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_worker_thread_that_dies_is_restarted_and_its_job_failed(tmp_path, tiny_models, wav):
    """A worker can only die of an exception that is no Exception (SystemExit here); nothing real
    raises one on demand, so the analyzer is made to, once."""
    from daemon.config import load_config
    from daemon.services.jobs import JobRunner
    from daemon.services.store import Store

    cfg = load_config(overrides={"engines": {"mode": "cnn"}, "reports": {"enabled": False}})
    analyzer = tiny_models.analyzer(cfg)
    real_first_pass = analyzer.first_pass
    calls = []

    def first_pass(path, mode, **kwargs):
        calls.append(path)
        if len(calls) == 1:
            raise SystemExit("a thread-killing bug")
        return real_first_pass(path, mode, **kwargs)

    analyzer.first_pass = first_pass
    store = Store(tmp_path / "q.sqlite")
    events = []
    runner = JobRunner(cfg, store, analyzer, events.append)
    runner.start()
    try:
        doomed = runner.submit(str(wav("a.wav")), "cnn", "cli")
        wait_until(lambda: not runner._threads["cnn"].is_alive(), 10, "the worker to die")
        assert runner.check_workers()
        assert store.get(doomed.id).state == "failed" and "worker died" in store.get(doomed.id).error
        fine = runner.submit(str(wav("b.wav", seed=2)), "cnn", "cli")
        wait_until(lambda: store.get(fine.id).state == "done", 30, "the restarted worker's result")
        assert runner.health()["cnn"].restarts == 1
        assert [e.kind for e in events if e.kind in ("failed", "result")] == ["failed", "result"]
    finally:
        runner.stop(5)
        store.close()


def test_a_file_replaced_on_a_full_disk_keeps_its_old_content_and_leaves_no_temporary_file(tmpfs):
    """Reports, the history's restore, caches and thresholds are all written through `replaced`."""
    from daemon.files import replaced

    folder = tmpfs("full", 256)
    dest = folder / "report.json"
    dest.write_text("old\n")
    fill(folder)
    with pytest.raises(OSError):
        with replaced(dest) as tmp:
            tmp.write_bytes(b"new" * 100_000)
    assert dest.read_text() == "old\n"
    assert sorted(p.name for p in folder.iterdir()) == ["filler", "report.json"]
    (folder / "filler").unlink()
    with replaced(dest) as tmp:
        tmp.write_text("new\n")
    assert dest.read_text() == "new\n" and sorted(p.name for p in folder.iterdir()) == ["report.json"]
