"""Folder watching in a real daemon: a file is analysed exactly once, only after its writer is
done; bad files fail with a reason while the daemon keeps serving."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest
import soundfile as sf

from support.audio import music
from support.daemon_proc import wait_until


def slow_write(path, seconds: float = 6.0, chunks: int = 8, pause: float = 0.5) -> list[float]:
    """Write a WAV in chunks with pauses, the file held open all along (like a DAW render).
    Returns the times at which each chunk was written (the last = the last byte)."""
    x = music(seconds, 44100, seed=11)
    times = []
    with sf.SoundFile(str(path), "w", 44100, 2, "PCM_16") as fh:
        for part in np.array_split(x.T, chunks):
            fh.write(part)
            fh.flush()
            times.append(time.time())
            time.sleep(pause)
    times.append(time.time())   # close rewrites the header: the real last byte
    return times


def _done(d, n):
    return d.wait_jobs(lambda js: len(js) == n and all(j["state"] in ("done", "failed") for j in js),
                       40, f"{n} finished jobs")


@pytest.mark.parametrize("polling", [False, True], ids=["close-events", "polling"])
def test_slow_writer_is_analysed_once_after_the_last_byte(daemon, polling):
    d = daemon(watch={"polling": polling, "settle_s": 1.5, "poll_interval_s": 0.5})
    target = d.inbox / "render.wav"
    times = slow_write(target)
    [job] = _done(d, 1)
    time.sleep(2.5)                                 # nothing else may follow
    assert len(d.jobs()) == 1
    assert job["state"] == "done", job["error"]
    assert job["created"] >= times[-1] - 0.05      # queued only after the writer finished
    assert job["size"] == target.stat().st_size
    assert (d.inbox / "render.wav.aimusic.json").exists()


def test_write_then_rename_is_analysed_once(daemon, wav):
    d = daemon()
    tmp = d.inbox / ".render.wav.part"
    src = wav("x.wav")
    shutil.copy(src, tmp)                           # written under an ignored name...
    time.sleep(1.5)
    assert d.jobs() == []
    os.rename(tmp, d.inbox / "final.wav")           # ...then renamed into place
    [job] = _done(d, 1)
    assert job["path"].endswith("final.wav") and job["state"] == "done"


def test_files_arriving_while_down_are_analysed_at_start_and_only_once(daemon, wav):
    d = daemon()
    assert d.stop() == 0
    d.inbox.mkdir(exist_ok=True)
    for i in range(3):
        shutil.copy(wav(f"s{i}.wav", seed=i), d.inbox / f"offline{i}.wav")
    d.start()
    _done(d, 3)
    assert d.stop() == 0
    d.start()                                       # a second start finds nothing new
    time.sleep(3)
    assert len(d.jobs()) == 3


def test_duplicates_by_content_are_skipped_and_ignored_names_never_queued(daemon, wav):
    d = daemon()
    src = wav("orig.wav")
    shutil.copy(src, d.inbox / "a.wav")
    _done(d, 1)
    shutil.copy(src, d.inbox / "copy_of_a.wav")     # same content, another name
    (d.inbox / "a.wav.reapeaks").write_bytes(b"peaks")
    (d.inbox / "notes.txt").write_text("hello")
    hidden = d.inbox / ".cache"
    hidden.mkdir()
    shutil.copy(wav("h.wav", seed=4), hidden / "inside_hidden_folder.wav")
    wait_until(lambda: "same content as job #1" in d.log(), 15, "the duplicate to be noticed")
    time.sleep(1.5)
    assert [j["path"] for j in d.jobs()] == [str(d.inbox / "a.wav")]


def test_bad_files_fail_with_a_reason_and_the_daemon_keeps_serving(daemon, fixtures_dir):
    d = daemon()
    bad = ["empty.wav", "truncated.mp3", "notes.wav", "random.flac", "nan.wav", "short.wav"]
    for name in bad:
        shutil.copy(fixtures_dir / "bad" / name, d.inbox / name)
    shutil.copy(fixtures_dir / "good" / "music.wav", d.inbox / "good.wav")
    jobs = _done(d, len(bad) + 1)
    by_name = {os.path.basename(j["path"]): j for j in jobs}
    assert by_name["good.wav"]["state"] == "done"
    for name in bad:
        job = by_name[name]
        assert job["state"] == "failed" and job["error"].startswith(job["path"] + ": "), job
        assert "\n" not in job["error"]
    d.send("/aimusic/ping")
    d.client.wait_for("/aimusic/pong")


def test_truncated_wav_waits_for_its_writer_then_fails_clearly(daemon, fixtures_dir):
    d = daemon()
    shutil.copy(fixtures_dir / "bad" / "truncated.wav", d.inbox / "cut.wav")
    time.sleep(3)
    assert d.jobs() == []           # the header promises more: a writer may still be at work
    assert d.alive()


def test_a_watched_folder_deleted_and_recreated_is_watched_again(daemon, wav):
    d = daemon()
    shutil.rmtree(d.inbox)
    wait_until(lambda: "is gone" in d.log(), 10, "the daemon to notice")
    d.inbox.mkdir()
    wait_until(lambda: "is back" in d.log(), 10, "the daemon to watch it again")
    shutil.copy(wav("after.wav"), d.inbox / "after.wav")
    [job] = _done(d, 1)
    assert job["path"].endswith("after.wav") and job["state"] == "done"


def test_many_files_at_once_each_once(daemon, wav):
    d = daemon()
    srcs = [wav(f"batch{i}.wav", seconds=3, seed=20 + i) for i in range(10)]
    for s in srcs:
        shutil.copy(s, d.inbox / s.name)
    jobs = _done(d, 10)
    assert sorted(os.path.basename(j["path"]) for j in jobs) == sorted(s.name for s in srcs)
    assert all(j["state"] == "done" for j in jobs)
