"""The two stages of a batch, each around the one `Analyzer` that `scan` and the daemon use:

- `FastStage`: decode + fast pass (`Analyzer.first_pass`) of one file;
- `DemucsStage`: Demucs + fusion (`Analyzer.second_pass`) for the files the mode sends there.

Both run in this process (`aimusicd batch`) or on Ray actors (`--ray`), where the fast-pass
outcome crosses to a Demucs actor as a small pickled `Outcome` (no audio) and the Demucs actor
decodes the file again. A bad file never raises out of a stage: it becomes an `Outcome` with an
error, so one corrupt upload cannot fail a job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..analysis import Analyzer, Pass
from ..config import Config
from ..errors import AimusicError, AudioError
from ..report import Report
from .results import INPUT_ERROR, INTERNAL_ERROR
from .sources import is_uri, local_copy

log = logging.getLogger(__name__)

AnalyzerFactory = Callable[[Config], Analyzer]


@dataclass
class Outcome:
    file: str                       # as listed: a local path or a URI
    sha256: str
    report: Report | None = None
    demucs_reason: str | None = None  # set: the Demucs stage still has to run
    error: str = ""
    error_kind: str = ""
    seconds: dict[str, float] = field(default_factory=dict)   # decode_s, fast_s, demucs_s, total_s


def _failed(outcome: Outcome, exc: Exception) -> Outcome:
    """The file's error row; messages name the file as listed (a URI, not its temporary copy)."""
    if isinstance(exc, AudioError):
        kind, message = INPUT_ERROR, f"{outcome.file}: {exc.reason}"
    elif isinstance(exc, AimusicError):
        kind, message = INTERNAL_ERROR, f"{outcome.file}: {exc}"
    else:
        log.exception("analysing %s failed", outcome.file)    # a bug: keep its traceback in the log
        kind, message = INTERNAL_ERROR, f"{outcome.file}: internal error ({type(exc).__name__}: {exc})"
    outcome.report, outcome.demucs_reason = None, None
    outcome.error, outcome.error_kind = message, kind
    return outcome


class FastStage:
    """Decode and fast pass; models load when the stage is made (once per Ray actor)."""

    def __init__(self, analyzer: Analyzer, mode: str):
        self.mode = mode
        self.analyzer = analyzer
        analyzer.preload(demucs=False)

    def run(self, file: str, sha256: str) -> tuple[Outcome, Pass | None]:
        """The outcome, and the pass (with its audio) for a Demucs stage in the same process."""
        outcome = Outcome(file, sha256)
        t0 = time.perf_counter()
        try:
            with local_copy(file) as path:
                first = self.analyzer.first_pass(path, self.mode, sha256=sha256 or None)
        except Exception as exc:    # noqa: BLE001 - every failure becomes this file's error row
            return _failed(outcome, exc), None
        if is_uri(file):
            first.report.file = file
        decode_s = first.report.timings.get("decode_s", 0.0)
        outcome.report, outcome.demucs_reason = first.report, first.demucs_reason
        outcome.seconds = {"decode_s": decode_s, "fast_s": time.perf_counter() - t0 - decode_s}
        outcome.seconds["total_s"] = sum(outcome.seconds.values())
        first.report.timings["total_s"] = outcome.seconds["total_s"]
        return outcome, first


class DemucsStage:
    """Demucs and fusion for an outcome whose fast pass asked for it."""

    def __init__(self, analyzer: Analyzer):
        self.analyzer = analyzer
        analyzer.preload(demucs=True)

    def run(self, outcome: Outcome, first: Pass | None = None) -> Outcome:
        """`first` is the fast pass's own result when it ran in this process; without it (a Ray
        actor) the file is decoded again."""
        if not outcome.demucs_reason:
            return outcome
        t0 = time.perf_counter()
        try:
            if first is None:
                with local_copy(outcome.file) as path:
                    audio = self.analyzer.read(path)
                first = Pass(outcome.report, outcome.demucs_reason, audio)
            report = self.analyzer.second_pass(first)
        except Exception as exc:    # noqa: BLE001 - as in FastStage.run
            return _failed(outcome, exc)
        outcome.report, outcome.demucs_reason = report, None
        outcome.seconds["demucs_s"] = time.perf_counter() - t0
        outcome.seconds["total_s"] += outcome.seconds["demucs_s"]
        report.timings["total_s"] = outcome.seconds["total_s"]
        return outcome
