"""The durable queue: what is acknowledged is stored; every job ends done or failed, once."""

from __future__ import annotations

import sqlite3

from daemon.services.store import MAX_INTERRUPTIONS, Store


def test_job_life_cycle_and_history(tmp_path):
    store = Store(tmp_path / "q.sqlite")
    job = store.add("/music/a.wav", "full", "watch", size=10, mtime=1.0, sha256="ab")
    assert job.state == "queued" and job.stage == "cnn"
    claimed = store.claim("cnn")
    assert claimed.id == job.id and claimed.state == "running" and claimed.interruptions == 0
    assert store.claim("cnn") is None
    store.to_stage(job.id, "demucs", "uncertain", 0.5, "ab")
    assert store.get(job.id).state == "queued" and store.get(job.id).preliminary == "uncertain"
    assert store.claim("demucs").id == job.id
    store.finish(job.id, verdict="human", probability_ai=0.1, cnn_prob=0.5, demucs_prob=0.05,
                 sha256="ab", report_path="/music/a.wav.aimusic.json")
    done = store.get(job.id)
    assert done.state == "done" and done.verdict == "human" and done.finished
    assert [j.id for j in store.history()] == [job.id]
    assert store.counts() == {"queued": 0, "running": 0, "done": 1, "failed": 0}


def test_demucs_mode_starts_at_the_demucs_stage(tmp_path):
    store = Store(tmp_path / "q.sqlite")
    store.add("/x.wav", "demucs", "osc")
    assert store.claim("cnn") is None and store.claim("demucs") is not None


def test_the_queue_is_bounded(tmp_path):
    store = Store(tmp_path / "q.sqlite")
    assert store.add("/1.wav", "cnn", "osc", max_pending=2)
    assert store.add("/2.wav", "cnn", "osc", max_pending=2)
    assert store.add("/3.wav", "cnn", "osc", max_pending=2) is None
    store.claim("cnn")
    assert store.add("/3.wav", "cnn", "osc", max_pending=2) is None   # running still counts
    assert store.counts()["queued"] == 1


def test_an_acknowledged_job_survives_a_new_process_and_running_jobs_are_requeued(tmp_path):
    db = tmp_path / "q.sqlite"
    first = Store(db)
    a = first.add("/a.wav", "cnn", "watch")
    b = first.add("/b.wav", "cnn", "watch")
    first.claim("cnn")                         # a is running when "the process dies"
    second = Store(db)                         # no close(): as after kill -9
    requeued, failed = second.recover()
    assert [j.id for j in requeued] == [a.id] and not failed
    assert {second.get(a.id).state, second.get(b.id).state} == {"queued"}


def test_a_job_that_keeps_crashing_the_daemon_is_failed_not_retried_forever(tmp_path):
    store = Store(tmp_path / "q.sqlite")
    job = store.add("/poison.wav", "cnn", "watch")
    for _ in range(MAX_INTERRUPTIONS):
        store.claim("cnn")
        store.recover()
    final = store.get(job.id)
    assert final.state == "failed" and "interrupted" in final.error


def test_known_matches_same_file_or_same_content(tmp_path):
    store = Store(tmp_path / "q.sqlite")
    store.add("/a.wav", "full", "watch", size=5, mtime=2.0, sha256="feed")
    assert store.known("/a.wav", 5, 2.0, None)
    assert store.known("/a.wav", 6, 2.0, None) is None
    assert store.known("/copy.wav", 5, 3.0, "feed")
    job = store.add("/b.wav", "full", "watch", size=1, mtime=1.0, sha256="beef")
    store.fail(job.id, "boom")
    assert store.known("/b.wav", 1, 1.0, "beef").id == job.id   # the file failed: not again
    other = store.add("/c.wav", "full", "watch", size=2, mtime=1.0, sha256="cafe")
    store.fail(other.id, "model missing", content=False)
    assert store.known("/c.wav", 2, 1.0, "cafe") is None     # a set-up failure may be tried again


def test_the_database_is_in_wal_mode(tmp_path):
    Store(tmp_path / "q.sqlite")
    mode = sqlite3.connect(tmp_path / "q.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_old_history_is_pruned_but_pending_jobs_never(tmp_path):
    store = Store(tmp_path / "q.sqlite")
    old = store.add("/old.wav", "cnn", "watch")
    store.claim("cnn")
    store.finish(old.id, verdict="human", probability_ai=0.1, cnn_prob=0.1, demucs_prob=None,
                 sha256="a", report_path=None)
    pending = store.add("/pending.wav", "cnn", "watch")
    store._db.execute("UPDATE jobs SET finished = finished - 400 * 86400, created = created - 400 * 86400")
    assert store.prune(365) == 1
    assert store.get(old.id) is None and store.get(pending.id).state == "queued"
