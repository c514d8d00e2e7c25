"""Nothing accepted is lost, nothing is analysed twice: kill -9 and SIGTERM in the middle of real
Demucs work (the real HTDemucs weights), then a restart."""

from __future__ import annotations

import shutil
import time

import pytest

from support.daemon_proc import wait_until

pytestmark = [pytest.mark.weights, pytest.mark.slow]

FULL = {"watch": {"mode": "full"}, "engines": {"mode": "auto", "demucs_excerpts": 1}}


def _running_demucs(d):
    return any(j["state"] == "running" and j["stage"] == "demucs" for j in d.jobs())


def _finished(d, n, timeout=240):
    return d.wait_jobs(lambda js: len(js) == n and all(j["state"] == "done" for j in js), timeout,
                       f"{n} jobs done")


def test_kill_9_mid_analysis_then_restart_finishes_every_job_exactly_once(daemon, wav, real_weights):
    d = daemon(**FULL)
    for i in range(3):
        shutil.copy(wav(f"k{i}.wav", seconds=8, seed=40 + i), d.inbox / f"k{i}.wav")
    wait_until(lambda: len(d.jobs()) == 3 and _running_demucs(d), 90, "Demucs work to be running")
    d.kill9()
    interrupted = [j["id"] for j in d.jobs() if j["state"] == "running"]
    assert interrupted
    d.start()
    jobs = _finished(d, 3)
    assert sorted(j["path"] for j in jobs) == sorted(str(d.inbox / f"k{i}.wav") for i in range(3))
    for j in jobs:
        assert j["demucs_prob"] is not None and j["report_path"]
    assert all(f"re-queued #{i}" in d.log() for i in interrupted)
    assert d.stop() == 0
    d.start()                       # and a further restart runs nothing again
    time.sleep(3)
    assert [j["finished"] for j in d.jobs()] == [j["finished"] for j in jobs]


def test_sigterm_during_demucs_stops_within_seconds_and_the_job_is_requeued(daemon, wav, real_weights):
    d = daemon(**FULL)
    shutil.copy(wav("t.wav", seconds=8, seed=50), d.inbox / "t.wav")
    wait_until(lambda: _running_demucs(d), 90, "Demucs work to be running")
    t0 = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - t0 < 8
    assert [j["state"] for j in d.jobs()] == ["running"]
    d.start()
    [job] = _finished(d, 1)
    assert job["interruptions"] == 1 and job["verdict"] in ("ai", "human", "uncertain")
