"""One batch run: list the sources, hash them, skip what the output folder already holds, analyse
one file of each new content (in this process or on Ray), and give every listed file one row."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..analysis import Analyzer
from ..config import Config
from ..errors import BatchError
from .results import INPUT_ERROR, INTERNAL_ERROR, ResultRow, ResultStore
from .sources import list_sources
from .stages import AnalyzerFactory, Outcome


@dataclass
class BatchOptions:
    sources: list[str]
    out: Path
    mode: str
    ray: str | None = None          # None: in this process; on_ray.LOCAL or a cluster address
    csv: bool = False


@dataclass
class BatchResult:
    rows: list[ResultRow]           # one per file this run listed, in listing order
    analysed: int                   # files analysed now
    already_done: int               # content the output folder held a result for
    duplicates: int                 # files with the same content as another file of this run
    seconds: float
    tables: list[Path] = field(default_factory=list)

    @property
    def failed(self) -> list[ResultRow]:
        return [r for r in self.rows if r.error]


def run_batch(cfg: Config, opts: BatchOptions, make_analyzer: AnalyzerFactory = Analyzer,
              echo: Callable[[ResultRow], None] = lambda row: None) -> BatchResult:
    """`echo` sees each row as it is recorded (the CLI prints the errors)."""
    started = time.perf_counter()
    listing = list_sources(opts.sources, cfg.watch.patterns, cfg.watch.ignore)
    store = ResultStore(opts.out)
    if opts.ray is None:
        from .local import LocalExecutor

        executor = LocalExecutor(cfg, opts.mode, make_analyzer)
    else:
        from .on_ray import RayExecutor

        executor = RayExecutor(cfg, opts.mode, opts.ray, make_analyzer)
    rows: dict[str, ResultRow] = {}

    def record(row: ResultRow) -> None:
        rows[row.file] = row
        store.add(row)
        echo(row)

    try:
        for source, message in listing.errors:
            record(ResultRow.of_error(source, message, INPUT_ERROR))
        plan = _plan(executor.hash(listing.files), store, rows, record)
        _analyse(executor, plan, store, rows, record)
        tables = store.write_tables(opts.csv)
    finally:
        executor.close()
        store.close()
    order = [source for source, _ in listing.errors] + listing.files
    return BatchResult([rows[f] for f in order], len(plan.analyse), plan.already_done,
                       sum(map(len, plan.copies.values())), time.perf_counter() - started, tables)


@dataclass
class _Plan:
    analyse: list[tuple[str, str]] = field(default_factory=list)    # (file, sha256): one per content
    copies: dict[str, list[str]] = field(default_factory=dict)      # sha256 -> the other files
    already_done: int = 0


def _plan(hashed, store: ResultStore, rows: dict[str, ResultRow], record) -> _Plan:
    """The first file of each new content is analysed and the others share its row; a file the
    folder already holds keeps its row, and a new name for content it holds gets a copy of it."""
    done = store.done_by_hash()
    plan = _Plan()
    for file, sha256, error in hashed:
        if error:
            record(ResultRow.of_error(file, error, INPUT_ERROR))
        elif sha256 in done:
            plan.already_done += 1
            previous = store.rows.get(file)
            if previous is not None and previous.sha256 == sha256 and previous.final:
                rows[file] = previous
            else:
                record(done[sha256].copied_to(file))
        elif sha256 in plan.copies:
            plan.copies[sha256].append(file)
        else:
            plan.copies[sha256] = []
            plan.analyse.append((file, sha256))
    return plan


def _analyse(executor, plan: _Plan, store: ResultStore, rows: dict[str, ResultRow], record) -> None:
    from ..cli.scan import progress_bar

    def record_with_copies(row: ResultRow, sha256: str) -> None:
        record(row)
        for file in plan.copies[sha256]:
            record(row.copied_to(file))

    progress = progress_bar(0 if executor.shows_progress else len(plan.analyse))
    failure = "no result came back from the workers"
    try:
        for outcome in executor.analyse(plan.analyse):
            if outcome.file not in rows:        # else a retried task's second answer
                record_with_copies(_row_of(outcome, store), outcome.sha256)
            progress.update()
    except BatchError as exc:       # the files not answered yet get its message as their error
        failure = str(exc)
    finally:
        progress.close()
    for file, sha256 in plan.analyse:
        if file not in rows:
            record_with_copies(ResultRow.of_error(file, f"{file}: not analysed ({failure})", INTERNAL_ERROR,
                                                  sha256), sha256)


def _row_of(outcome: Outcome, store: ResultStore) -> ResultRow:
    if outcome.report is None:
        return ResultRow.of_error(outcome.file, outcome.error, outcome.error_kind, outcome.sha256)
    return ResultRow.of_report(outcome.file, outcome.report, store.write_report(outcome.report), outcome.seconds)
