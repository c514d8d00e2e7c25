"""From the CNN worker to the Demucs worker: the fast pass is computed once per job, saved with the
job (so a restart does not redo it), and completed by Demucs into the one report of the job."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

import daemon.analysis
from daemon.analysis import Analyzer
from daemon.config import load_config
from daemon.errors import ModelError
from daemon.hashing import sha256_file
from daemon.report import dumps_state, loads_state
from daemon.services.jobs import JobRunner
from daemon.services.store import Store
from support.daemon_proc import wait_until


class Counting(Analyzer):
    """The real analyzer, counting the fast passes, decodes and Demucs passes it runs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = {"first_pass": 0, "read": 0, "second_pass": 0}

    def first_pass(self, *args, **kwargs):
        self.calls["first_pass"] += 1
        return super().first_pass(*args, **kwargs)

    def read(self, path):
        self.calls["read"] += 1
        return super().read(path)

    def second_pass(self, first):
        self.calls["second_pass"] += 1
        return super().second_pass(first)


def _analyzer(tiny_models, cfg, cls=Counting):
    return cls(cfg, cnn=tiny_models.cnn(), demucs=tiny_models.demucs(1, cfg.engines.demucs_device),
               fusion=tiny_models.fusion(ai_threshold=cfg.engines.ai_threshold,
                                         human_threshold=cfg.engines.human_threshold))


@pytest.fixture
def cfg(tmp_path):
    return load_config(overrides={"engines": {"mode": "full", "demucs_excerpts": 1},
                                  "reports": {"enabled": True, "dir": str(tmp_path / "reports")}})


def _done(store, job_id, timeout=60):
    wait_until(lambda: store.get(job_id).state in ("done", "failed"), timeout, f"job #{job_id} to end")
    job = store.get(job_id)
    assert job.state == "done", job.error
    return job


def test_a_full_job_runs_the_fast_pass_once_and_hashes_the_file_once(tmp_path, tiny_models, cfg,
                                                                      wav, monkeypatch):
    path = wav("a.wav", seconds=6)
    digest = sha256_file(path)            # as the watcher's de-duplication took it
    hashed = []
    monkeypatch.setattr(daemon.analysis, "sha256_file", lambda p: hashed.append(p) or sha256_file(p))
    analyzer = _analyzer(tiny_models, cfg)
    store = Store(tmp_path / "q.sqlite")
    events = []
    runner = JobRunner(cfg, store, analyzer, events.append)
    runner.start()
    try:
        st = path.stat()
        job = runner.submit(str(path), "full", "watch", size=st.st_size, mtime=st.st_mtime, sha256=digest)
        done = _done(store, job.id)
    finally:
        runner.stop(5)
    assert analyzer.calls == {"first_pass": 1, "read": 2, "second_pass": 1}   # one decode per stage
    assert hashed == []
    assert done.fast_pass is None and done.demucs_reason == "mode full"   # not kept once done
    preliminary = next(e.report for e in events if e.kind == "preliminary")
    result = next(e.report for e in events if e.kind == "result")
    assert result.cnn == preliminary.cnn and result.fingerprint == preliminary.fingerprint
    assert result.demucs.ran and result.demucs.reason == "mode full"
    written = json.loads(open(done.report_path).read())
    assert written["sha256"] == digest
    assert written["engines"]["cnn"]["logit"] == round(preliminary.cnn.logit, 6)
    assert done.cnn_prob == preliminary.cnn.probability_ai
    assert done.demucs_prob == result.demucs.probability_ai
    store.close()


def test_a_restart_while_a_job_waits_for_demucs_finishes_it_from_the_saved_fast_pass(
        tmp_path, tiny_models, cfg, wav):
    entered, released = threading.Event(), threading.Event()

    class StoppedInDemucs(Counting):
        """The first daemon: stopped while its Demucs worker is busy with the job."""

        def second_pass(self, first):
            entered.set()
            released.wait(30)
            raise ModelError("the first daemon is gone")

    path = wav("b.wav", seconds=6, seed=3)
    db = tmp_path / "q.sqlite"
    first_store = Store(db)
    first_events = []
    first = JobRunner(cfg, first_store, _analyzer(tiny_models, cfg, StoppedInDemucs), first_events.append)
    first.start()
    job = first.submit(str(path), "full", "osc")
    wait_until(entered.is_set, 60, "the Demucs stage to start")
    assert not first.stop(0.2)                 # its job stays 'running', as after a crash
    saved = first_store.get(job.id)
    assert saved.state == "running" and saved.stage == "demucs" and saved.fast_pass
    preliminary = next(e.report for e in first_events if e.kind == "preliminary")

    store = Store(db)
    analyzer = _analyzer(tiny_models, cfg)
    events = []
    runner = JobRunner(cfg, store, analyzer, events.append)
    runner.start()
    try:
        done = _done(store, job.id)
    finally:
        runner.stop(5)
        released.set()
        first._threads["demucs"].join(10)
    assert analyzer.calls == {"first_pass": 0, "read": 1, "second_pass": 1}
    assert done.interruptions == 1 and done.state == "done"    # the first daemon's failure came too late
    result = next(e.report for e in events if e.kind == "result")
    assert result.cnn == preliminary.cnn and result.demucs.ran
    assert result.sha256 == preliminary.sha256 == sha256_file(path)
    store.close()
    first_store.close()


OLD_SCHEMA = """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, mode TEXT NOT NULL,
    source TEXT NOT NULL, req_id INTEGER, request_path TEXT, sender_host TEXT, sender_port INTEGER,
    state TEXT NOT NULL, stage TEXT NOT NULL, size INTEGER, mtime REAL, sha256 TEXT,
    interruptions INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, started REAL, finished REAL,
    verdict TEXT, probability_ai REAL, cnn_prob REAL, demucs_prob REAL, preliminary TEXT,
    report_path TEXT, error TEXT
);
"""


def test_an_old_database_is_migrated_and_its_job_at_the_demucs_stage_still_completes(
        tmp_path, tiny_models, cfg, wav):
    """Written by a version that saved no fast pass: the Demucs stage computes it itself."""
    path = wav("c.wav", seconds=6, seed=4)
    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(db)
    con.executescript(OLD_SCHEMA)
    con.execute("INSERT INTO jobs (path, mode, source, state, stage, created, preliminary, cnn_prob)"
                " VALUES (?, 'full', 'watch', 'running', 'demucs', 1.0, 'uncertain', 0.5)", (str(path),))
    con.commit()
    con.close()
    store = Store(db)
    columns = {r[1] for r in sqlite3.connect(db).execute("PRAGMA table_info(jobs)")}
    assert {"content_failed", "fast_pass", "demucs_reason"} <= columns
    analyzer = _analyzer(tiny_models, cfg)
    runner = JobRunner(cfg, store, analyzer, lambda e: None)
    runner.start()
    try:
        done = _done(store, 1)
    finally:
        runner.stop(5)
    assert analyzer.calls == {"first_pass": 1, "read": 1, "second_pass": 1}
    assert done.demucs_prob is not None and done.cnn_prob is not None and done.sha256 == sha256_file(path)
    store.close()


def test_a_file_changed_between_the_stages_is_analysed_afresh(tmp_path, tiny_models, cfg, wav):
    """The saved fast pass describes audio that is no longer there: not completed with new audio."""
    path = wav("d.wav", seconds=6, seed=5)
    analyzer = _analyzer(tiny_models, cfg)
    store = Store(tmp_path / "q.sqlite")
    st = path.stat()
    job = store.add(str(path), "full", "watch", size=st.st_size, mtime=st.st_mtime, sha256="stale")
    store.claim("cnn")
    fast = analyzer.first_pass(path, "full", sha256="stale")
    store.to_stage(job.id, "demucs", "uncertain", 0.5, "stale", fast_pass=dumps_state(fast.report),
                   demucs_reason=fast.demucs_reason)
    wav("d.wav", seconds=7, seed=6)            # rewritten in between
    runner = JobRunner(cfg, store, analyzer, lambda e: None)
    runner.start()
    try:
        done = _done(store, job.id)
    finally:
        runner.stop(5)
    assert analyzer.calls["first_pass"] == 2
    assert done.sha256 == sha256_file(path)
    store.close()


def test_the_saved_fast_pass_is_the_report_exactly(tiny_models, cfg, fixtures_dir):
    report = _analyzer(tiny_models, cfg).first_pass(fixtures_dir / "good" / "music.flac", "full").report
    assert report.fingerprint is not None and report.cnn.windows
    back = loads_state(dumps_state(report))
    assert back == report
    assert (back.cnn.embedding == report.cnn.embedding).all()         # arrays are left out of ==
    assert back.cnn.embedding.dtype == report.cnn.embedding.dtype
    assert (back.fingerprint.pack_inputs.spectrum == report.fingerprint.pack_inputs.spectrum).all()
