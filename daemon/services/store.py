"""Durable job queue and analysis history in one SQLite file (WAL).

A job is written and committed before it is acknowledged. Its state moves queued -> running ->
done | failed, in transactions, so after a crash every job is in exactly one state: running jobs
are re-queued at the next start (and failed after MAX_INTERRUPTIONS, so that one poison file
cannot crash the daemon forever), done jobs are never run again.

Every SQLite failure (a full disk, a read-only folder) surfaces as one `StoreError` naming the file
and SQLite's reason; a transaction that SQLite already rolled back is not rolled back twice, so
the reason is never hidden behind "cannot rollback". A database file deleted under the running
daemon is written back from the still-open connection (`restore_if_deleted`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import StoreError
from ..files import replaced

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
    error         TEXT,
    content_failed INTEGER NOT NULL DEFAULT 0,  -- failed because of the file itself: not retried
    fast_pass     TEXT,                        -- the CNN stage's report for the Demucs stage
                                               -- (report.dumps_state); cleared once the job ends
    demucs_reason TEXT                         -- why the Demucs stage runs
);
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs(state, stage, id);
CREATE INDEX IF NOT EXISTS jobs_identity ON jobs(path, size, mtime);
CREATE INDEX IF NOT EXISTS jobs_sha ON jobs(sha256);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(finished);
"""
# Columns that a history written by an earlier version lacks, added when it is opened.
ADDED_COLUMNS = {"content_failed": "INTEGER NOT NULL DEFAULT 0", "fast_pass": "TEXT",
                 "demucs_reason": "TEXT"}


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
    content_failed: int = 0
    fast_pass: str | None = None
    demucs_reason: str | None = None

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
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._open(path)
            self._identity = self._file_identity()
        except OSError as exc:
            raise StoreError(f"state database {path}: cannot create it ({exc.strerror})") from None
        except sqlite3.Error as exc:
            raise StoreError(f"state database {path}: cannot open it ({exc})") from None

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")   # an acknowledged job survives power loss too
        db.executescript(SCHEMA)
        columns = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
        for name, declaration in ADDED_COLUMNS.items():
            if name not in columns:
                db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {declaration}")
        return db

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Hold the lock; turn SQLite's errors into one StoreError naming the file and the reason."""
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise StoreError(f"state database {self.path}: cannot {what} ({exc})") from None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT; on error, ROLLBACK only if SQLite has not already done so
        (a full disk ends the transaction itself)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def restore_if_deleted(self) -> int | None:
        """If the database file was deleted or replaced under us, write the open connection's
        content back to its path and reopen it; returns the number of jobs restored, else None."""
        current = self._file_identity()
        if current is not None and current == self._identity:
            return None
        with self._guard("restore it"):
            with replaced(self.path) as tmp:
                copy = sqlite3.connect(str(tmp))
                try:
                    self._db.backup(copy)
                finally:
                    copy.close()
                self._db.close()   # checkpoints into the deleted file and removes its -wal and -shm
                for stale in ("-wal", "-shm"):   # never let the old file's log replay onto the copy
                    self.path.with_name(self.path.name + stale).unlink(missing_ok=True)
            self._db = self._open(self.path)
            self._identity = self._file_identity()
            (jobs,) = self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()
            return jobs

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
        with self._guard("queue a job"):
            with self._transaction():
                if max_pending is not None:
                    (pending,) = self._db.execute(
                        "SELECT COUNT(*) FROM jobs WHERE state IN ('queued','running')").fetchone()
                    if pending >= max_pending:
                        return None
                cur = self._db.execute(
                    "INSERT INTO jobs (path, mode, source, req_id, request_path, sender_host, sender_port,"
                    " state, stage, size, mtime, sha256, created) VALUES (?,?,?,?,?,?,?,'queued',?,?,?,?,?)",
                    (path, mode, source, req_id, request_path, sender[0] if sender else None,
                     sender[1] if sender else None, stage, size, mtime, sha256, time.time()),
                )
            return self._one("SELECT * FROM jobs WHERE id=?", (cur.lastrowid,))

    def known(self, path: str, size: int, mtime: float, sha256: str | None) -> Job | None:
        """A job for the same file (same path, size and mtime) or the same content that is
        pending, done, or failed because of the file itself (a retry would fail the same way)."""
        worth = "(state!='failed' OR content_failed=1)"
        with self._guard("read the history"):
            job = self._one(
                f"SELECT * FROM jobs WHERE path=? AND size=? AND mtime=? AND {worth} "
                "ORDER BY id DESC LIMIT 1", (path, size, mtime))
            if job is None and sha256:
                job = self._one(f"SELECT * FROM jobs WHERE sha256=? AND {worth} "
                                "ORDER BY id DESC LIMIT 1", (sha256,))
            return job

    # -- workers ---------------------------------------------------------------------------------
    def claim(self, stage: str) -> Job | None:
        with self._guard("claim a job"):
            with self._transaction():
                row = self._db.execute(
                    "SELECT id FROM jobs WHERE state='queued' AND stage=? ORDER BY id LIMIT 1", (stage,)
                ).fetchone()
                if row is None:
                    return None
                self._db.execute(
                    "UPDATE jobs SET state='running', started=? WHERE id=?",
                    (time.time(), row["id"]))
            return self._one("SELECT * FROM jobs WHERE id=?", (row["id"],))

    def to_stage(self, job_id: int, stage: str, preliminary: str, cnn_prob: float | None,
                 sha256: str, *, fast_pass: str | None = None, demucs_reason: str | None = None) -> None:
        """Queue a job for the next stage with what this one found (`fast_pass`: None, the next
        stage computes it itself)."""
        with self._guard("record a preliminary verdict"):
            self._db.execute(
                "UPDATE jobs SET state='queued', stage=?, preliminary=?, cnn_prob=?, sha256=?, "
                "fast_pass=?, demucs_reason=? WHERE id=? AND state='running'",
                (stage, preliminary, cnn_prob, sha256, fast_pass, demucs_reason, job_id))

    def finish(self, job_id: int, *, verdict: str, probability_ai: float, cnn_prob: float | None,
               demucs_prob: float | None, sha256: str, report_path: str | None) -> None:
        with self._guard("record a result"):
            self._db.execute(
                "UPDATE jobs SET state='done', finished=?, verdict=?, probability_ai=?, cnn_prob=?,"
                " demucs_prob=?, sha256=?, report_path=?, error=NULL, fast_pass=NULL"
                " WHERE id=? AND state='running'",
                (time.time(), verdict, probability_ai, cnn_prob, demucs_prob, sha256, report_path, job_id))

    def fail(self, job_id: int, error: str, content: bool = True) -> None:
        """`content`: the file itself is at fault (not the daemon's set-up): do not retry it."""
        with self._guard("record a failure"):
            self._db.execute(
                "UPDATE jobs SET state='failed', finished=?, error=?, content_failed=?, fast_pass=NULL "
                "WHERE id=? AND state IN ('queued','running')",
                (time.time(), error, int(content), job_id))

    def recover(self) -> tuple[list[Job], list[Job]]:
        """After a crash or stop: re-queue interrupted jobs; fail those that crashed too often."""
        with self._guard("recover interrupted jobs"), self._transaction():
            rows = self._db.execute("SELECT * FROM jobs WHERE state='running'").fetchall()
            requeued, failed = [], []
            for row in rows:
                job = Job(**dict(row))
                job.interruptions += 1
                if job.interruptions >= MAX_INTERRUPTIONS:
                    self._db.execute(
                        "UPDATE jobs SET state='failed', interruptions=?, finished=?, error=?,"
                        " content_failed=1, fast_pass=NULL WHERE id=?",
                        (job.interruptions, time.time(), f"{job.path}: analysis was interrupted "
                         f"{job.interruptions} times (the daemon stopped or crashed during it); giving up",
                         job.id))
                    failed.append(job)
                else:
                    self._db.execute("UPDATE jobs SET state='queued', interruptions=? WHERE id=?",
                                     (job.interruptions, job.id))
                    requeued.append(job)
        return requeued, failed

    # -- queries ---------------------------------------------------------------------------------
    def get(self, job_id: int) -> Job | None:
        with self._guard("read a job"):
            return self._one("SELECT * FROM jobs WHERE id=?", (job_id,))

    def counts(self) -> dict[str, int]:
        with self._guard("count jobs"):
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        counts = {"queued": 0, "running": 0, "done": 0, "failed": 0}
        counts.update({state: n for state, n in rows})
        return counts

    def history(self, since: float | None = None, limit: int = 100, states=("done", "failed")) -> list[Job]:
        marks = ",".join("?" * len(states))
        with self._guard("read the history"):
            rows = self._db.execute(
                f"SELECT * FROM jobs WHERE state IN ({marks}) AND COALESCE(finished, created) >= ? "
                "ORDER BY COALESCE(finished, created) DESC, id DESC LIMIT ?",
                (*states, since or 0.0, limit)).fetchall()
        return [Job(**dict(r)) for r in rows]

    def prune(self, older_than_days: int) -> int:
        cutoff = time.time() - older_than_days * 86400
        with self._guard("prune the history"):
            cur = self._db.execute(
                "DELETE FROM jobs WHERE state IN ('done','failed') AND finished < ?", (cutoff,))
            return cur.rowcount
