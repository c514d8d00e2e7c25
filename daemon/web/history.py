"""Read-only queries of the job history for the dashboard: filters, sorting, pages, CSV.

The dashboard opens its own read-only connections (WAL lets them read while the workers write),
so a slow page never holds the store's lock that the workers take."""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import time
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..services.store import Job

VERDICTS = ("ai", "human", "uncertain", "failed")
SORTS = {"finished": "COALESCE(finished, created)", "name": "basename(path)", "folder": "dirname(path)",
         "verdict": "COALESCE(verdict, 'failed')", "probability": "probability_ai"}
CSV_COLUMNS = ("id", "finished", "path", "verdict", "probability_ai", "cnn_prob", "demucs_prob", "mode",
               "source", "sha256", "report_path", "error")


class BadQuery(ValueError):
    """A filter the dashboard cannot apply (the page says which)."""


@dataclass(frozen=True)
class HistoryQuery:
    verdict: str = ""
    folder: str = ""
    since: str = ""       # YYYY-MM-DD, inclusive
    until: str = ""       # YYYY-MM-DD, inclusive
    q: str = ""           # part of the file name
    sort: str = "finished"
    order: str = "desc"
    page: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> "HistoryQuery":
        values = {f.name: params.get(f.name, "").strip() for f in fields(cls) if params.get(f.name)}
        try:
            values["page"] = max(1, int(values.get("page", 1)))
        except ValueError:
            raise BadQuery(f"page {values['page']!r} is not a number") from None
        query = cls(**values)
        if query.verdict and query.verdict not in VERDICTS:
            raise BadQuery(f"verdict {query.verdict!r}: expected one of {', '.join(VERDICTS)}")
        if query.sort not in SORTS:
            raise BadQuery(f"sort {query.sort!r}: expected one of {', '.join(SORTS)}")
        if query.order not in ("asc", "desc"):
            raise BadQuery(f"order {query.order!r}: expected asc or desc")
        for name in ("since", "until"):
            _day(getattr(query, name), name)
        return query

    def params(self, **changes: Any) -> dict[str, str]:
        """This query as URL parameters (defaults left out), with `changes` applied."""
        merged = {**{f.name: getattr(self, f.name) for f in fields(self)}, **changes}
        defaults = HistoryQuery()
        return {k: str(v) for k, v in merged.items() if v != getattr(defaults, k)}

    def where(self) -> tuple[str, list[Any]]:
        clauses, args = ["state IN ('done', 'failed')"], []
        if self.verdict == "failed":
            clauses.append("state = 'failed'")
        elif self.verdict:
            clauses += ["state = 'done'", "verdict = ?"]
            args.append(self.verdict)
        if self.folder:
            clauses.append("(dirname(path) = ? OR path LIKE ? ESCAPE '\\')")
            args += [self.folder, _like_prefix(self.folder.rstrip("/") + "/")]
        if self.since:
            clauses.append("COALESCE(finished, created) >= ?")
            args.append(_timestamp(_day(self.since, "since")))
        if self.until:
            clauses.append("COALESCE(finished, created) < ?")
            args.append(_timestamp(_day(self.until, "until") + timedelta(days=1)))
        if self.q:
            clauses.append("basename(path) LIKE ? ESCAPE '\\'")
            args.append("%" + _escape_like(self.q) + "%")
        return " AND ".join(clauses), args


@dataclass(frozen=True)
class HistoryPage:
    jobs: list[Job]
    total: int
    page: int
    pages: int


class HistoryReader:
    def __init__(self, db: Path):
        self.db = db

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10, check_same_thread=False)
        con.row_factory = sqlite3.Row
        con.create_function("basename", 1, lambda p: os.path.basename(p or ""), deterministic=True)
        con.create_function("dirname", 1, lambda p: os.path.dirname(p or ""), deterministic=True)
        return con

    def available(self) -> bool:
        return self.db.exists()

    def page(self, query: HistoryQuery, size: int) -> HistoryPage:
        if not self.available():
            return HistoryPage([], 0, 1, 1)
        where, args = query.where()
        con = self._connect()
        try:
            (total,) = con.execute(f"SELECT COUNT(*) FROM jobs WHERE {where}", args).fetchone()
            pages = max(1, -(-total // size))
            page = min(query.page, pages)
            rows = con.execute(
                f"SELECT * FROM jobs WHERE {where} ORDER BY {SORTS[query.sort]} {query.order}, id {query.order} "
                "LIMIT ? OFFSET ?", (*args, size, (page - 1) * size)).fetchall()
        finally:
            con.close()
        return HistoryPage([Job(**dict(r)) for r in rows], total, page, pages)

    def all(self, query: HistoryQuery) -> Iterator[Job]:
        if not self.available():
            return
        where, args = query.where()
        con = self._connect()
        try:
            for row in con.execute(
                    f"SELECT * FROM jobs WHERE {where} ORDER BY {SORTS[query.sort]} {query.order}, id", args):
                yield Job(**dict(row))
        finally:
            con.close()

    def folders(self) -> list[str]:
        if not self.available():
            return []
        con = self._connect()
        try:
            return [r[0] for r in con.execute(
                "SELECT DISTINCT dirname(path) FROM jobs WHERE state IN ('done', 'failed') ORDER BY 1")]
        finally:
            con.close()

    def job(self, job_id: int) -> Job | None:
        if not self.available():
            return None
        con = self._connect()
        try:
            row = con.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        finally:
            con.close()
        return Job(**dict(row)) if row else None

    def pending(self, limit: int = 100) -> list[Job]:
        if not self.available():
            return []
        con = self._connect()
        try:
            rows = con.execute("SELECT * FROM jobs WHERE state IN ('queued', 'running') ORDER BY id LIMIT ?",
                               (limit,)).fetchall()
        finally:
            con.close()
        return [Job(**dict(r)) for r in rows]

    def counts(self) -> dict[str, int]:
        counts = {"queued": 0, "running": 0, "done": 0, "failed": 0}
        if not self.available():
            return counts
        con = self._connect()
        try:
            counts.update({s: n for s, n in con.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state")})
        finally:
            con.close()
        return counts


def to_csv(jobs: Iterator[Job]) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for job in jobs:
        row = job.to_dict()
        row["verdict"] = row["verdict"] if job.state == "done" else "failed"
        row["finished"] = format_time(job.finished or job.created, iso=True)
        writer.writerow([row.get(c) if row.get(c) is not None else "" for c in CSV_COLUMNS])
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    if buf.getvalue():
        yield buf.getvalue()


def format_time(ts: float | None, iso: bool = False) -> str:
    if ts is None:
        return ""
    fmt = "%Y-%m-%dT%H:%M:%S%z" if iso else "%Y-%m-%d %H:%M:%S"
    return time.strftime(fmt, time.localtime(ts))


def _day(text: str, name: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadQuery(f"{name} {text!r}: expected a date such as 2026-11-30") from None


def _timestamp(day: date) -> float:
    return datetime(day.year, day.month, day.day).timestamp()


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like_prefix(prefix: str) -> str:
    return _escape_like(prefix) + "%"
