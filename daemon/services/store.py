"""Durable job queue and analysis history in one SQLite file (WAL).

A job is written and committed before it is acknowledged. Its state moves queued -> running ->
done | failed, in transactions, so after a crash every job is in exactly one state: running jobs
are re-queued at the next start (and failed after MAX_INTERRUPTIONS, so that one poison file
cannot crash the daemon forever), done jobs are never run again.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_INTERRUPTIONS = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    path          TEXT    NOT NULL,
    mode          TEXT    NOT NULL,
    source        TEXT    NOT NULL,            -- watch | osc | live | cli
    req_id        INTEGER,                     -- the OSC request id echoed in replies
    request_path  TEXT,                        -- the path as the OSC client wrote it (echoed)
    sender_host   TEXT,                        -- the OSC client: replies are routed from it
    sender_port   INTEGER,
    state         TEXT    NOT NULL,            -- queued | running | done | failed
    stage         TEXT    NOT NULL,            -- cnn | demucs: which worker takes it next
    size          INTEGER,
    mtime         REAL,
    sha256        TEXT,
    interruptions INTEGER NOT NULL DEFAULT 0,   -- stops or crashes while it was running
    created       REAL    NOT NULL,
    started       REAL,
    finished      REAL,
    verdict       TEXT,
    probability_ai REAL,
    cnn_prob      REAL,
    demucs_prob   REAL,
    preliminary   TEXT,                        -- verdict of the CNN pass while Demucs is pending
    report_path   TEXT,
    error         TEXT
);
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs(state, stage, id);
CREATE INDEX IF NOT EXISTS jobs_identity ON jobs(path, size, mtime);
CREATE INDEX IF NOT EXISTS jobs_sha ON jobs(sha256);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(finished);
"""


@dataclass
class Job:
    id: int
    path: str
    mode: str
    source: str
    req_id: int | None
    request_path: str | None
    sender_host: str | None
    sender_port: int | None
    state: str
    stage: str
    size: int | None
    mtime: float | None
    sha256: str | None
    interruptions: int
    created: float
    started: float | None
    finished: float | None
    verdict: str | None
    probability_ai: float | None
    cnn_prob: float | None
    demucs_prob: float | None
    preliminary: str | None
    report_path: str | None
    error: str | None

    @property
    def request_id(self) -> int:
        return self.req_id if self.req_id is not None else self.id

    @property
    def reply_path(self) -> str:
        return self.request_path or self.path

    @property
    def sender(self) -> tuple[str, int] | None:
        return (self.sender_host, self.sender_port) if self.sender_host else None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Store:
    """Thread-safe: one connection, serialised by a lock (writes are tiny and rare)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")   # an acknowledged job survives power loss too
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _one(self, sql: str, args: tuple = ()) -> Job | None:
        row = self._db.execute(sql, args).fetchone()
        return Job(**dict(row)) if row else None

    # -- submission ------------------------------------------------------------------------------
    def add(self, path: str, mode: str, source: str, *, req_id: int | None = None,
            request_path: str | None = None, sender: tuple[str, int] | None = None,
            size: int | None = None,
            mtime: float | None = None, sha256: str | None = None, max_pending: int | None = None) -> Job | None:
        """Insert a queued job and commit; None if `max_pending` jobs are already waiting."""
        stage = "demucs" if mode == "demucs" else "cnn"
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if max_pending is not None:
                    (pending,) = self._db.execute(
                        "SELECT COUNT(*) FROM jobs WHERE state IN ('queued','running')").fetchone()
                    if pending >= max_pending:
                        self._db.execute("ROLLBACK")
                        return None
                cur = self._db.execute(
                    "INSERT INTO jobs (path, mode, source, req_id, request_path, sender_host, sender_port,"
                    " state, stage, size, mtime, sha256, created) VALUES (?,?,?,?,?,?,?,'queued',?,?,?,?,?)",
                    (path, mode, source, req_id, request_path, sender[0] if sender else None,
                     sender[1] if sender else None, stage, size, mtime, sha256, time.time()),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return self._one("SELECT * FROM jobs WHERE id=?", (cur.lastrowid,))

    def known(self, path: str, size: int, mtime: float, sha256: str | None) -> Job | None:
        """A job for the same file (same path, size and mtime) or the same content, not failed."""
        with self._lock:
            job = self._one(
                "SELECT * FROM jobs WHERE path=? AND size=? AND mtime=? AND state!='failed' "
                "ORDER BY id DESC LIMIT 1", (path, size, mtime))
            if job is None and sha256:
                job = self._one("SELECT * FROM jobs WHERE sha256=? AND state!='failed' "
                                "ORDER BY id DESC LIMIT 1", (sha256,))
            return job

    # -- workers ---------------------------------------------------------------------------------
    def claim(self, stage: str) -> Job | None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute(
                "SELECT id FROM jobs WHERE state='queued' AND stage=? ORDER BY id LIMIT 1", (stage,)
            ).fetchone()
            if row is None:
                self._db.execute("COMMIT")
                return None
            self._db.execute(
                "UPDATE jobs SET state='running', started=? WHERE id=?",
                (time.time(), row["id"]))
            self._db.execute("COMMIT")
            return self._one("SELECT * FROM jobs WHERE id=?", (row["id"],))

    def to_stage(self, job_id: int, stage: str, preliminary: str, cnn_prob: float | None,
                 sha256: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state='queued', stage=?, preliminary=?, cnn_prob=?, sha256=? "
                "WHERE id=? AND state='running'", (stage, preliminary, cnn_prob, sha256, job_id))

    def finish(self, job_id: int, *, verdict: str, probability_ai: float, cnn_prob: float | None,
               demucs_prob: float | None, sha256: str, report_path: str | None) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state='done', finished=?, verdict=?, probability_ai=?, cnn_prob=?,"
                " demucs_prob=?, sha256=?, report_path=?, error=NULL WHERE id=? AND state='running'",
                (time.time(), verdict, probability_ai, cnn_prob, demucs_prob, sha256, report_path, job_id))

    def fail(self, job_id: int, error: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state='failed', finished=?, error=? WHERE id=? AND state IN ('queued','running')",
                (time.time(), error, job_id))

    def recover(self) -> tuple[list[Job], list[Job]]:
        """After a crash or stop: re-queue interrupted jobs; fail those that crashed too often."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            rows = self._db.execute("SELECT * FROM jobs WHERE state='running'").fetchall()
            requeued, failed = [], []
            for row in rows:
                job = Job(**dict(row))
                job.interruptions += 1
                if job.interruptions >= MAX_INTERRUPTIONS:
                    self._db.execute(
                        "UPDATE jobs SET state='failed', interruptions=?, finished=?, error=? WHERE id=?",
                        (job.interruptions, time.time(), f"{job.path}: analysis was interrupted "
                         f"{job.interruptions} times (the daemon stopped or crashed during it); giving up",
                         job.id))
                    failed.append(job)
                else:
                    self._db.execute("UPDATE jobs SET state='queued', interruptions=? WHERE id=?",
                                     (job.interruptions, job.id))
                    requeued.append(job)
            self._db.execute("COMMIT")
            return requeued, failed

    # -- queries ---------------------------------------------------------------------------------
    def get(self, job_id: int) -> Job | None:
        with self._lock:
            return self._one("SELECT * FROM jobs WHERE id=?", (job_id,))

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        counts = {"queued": 0, "running": 0, "done": 0, "failed": 0}
        counts.update({state: n for state, n in rows})
        return counts

    def history(self, since: float | None = None, limit: int = 100, states=("done", "failed")) -> list[Job]:
        marks = ",".join("?" * len(states))
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM jobs WHERE state IN ({marks}) AND COALESCE(finished, created) >= ? "
                "ORDER BY COALESCE(finished, created) DESC, id DESC LIMIT ?",
                (*states, since or 0.0, limit)).fetchall()
        return [Job(**dict(r)) for r in rows]

    def prune(self, older_than_days: int) -> int:
        cutoff = time.time() - older_than_days * 86400
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM jobs WHERE state IN ('done','failed') AND finished < ?", (cutoff,))
            return cur.rowcount
