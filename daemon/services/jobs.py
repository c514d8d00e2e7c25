"""Job runner: a CNN worker and a Demucs worker draining the durable queue.

CNN work never waits behind Demucs: the CNN worker decodes, runs the fast pass (the CNN and the
image score) and gives a preliminary verdict within a second or two, then hands the job to the
Demucs worker if its mode (or the fast pass's doubt) asks for the slow engine. One Demucs worker,
since HTDemucs already uses every core.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..analysis import Analyzer
from ..config import Config, reports_path_for
from ..errors import AimusicError, QueueFullError
from ..report import Report, write_report
from .store import Job, Store

log = logging.getLogger("aimusicd.jobs")

DEMUCS_NICE_STEP = 10
_FAST_PASS = ("decode_s", "cnn_s", "images_s")   # the timings of the CNN worker's step


def _lower_this_threads_priority(step: int) -> None:
    """On Linux a nice value belongs to one thread, and the threads it starts (torch's OpenMP team
    for this worker) inherit it: Demucs then yields the CPU to live scoring, the CNN worker and the
    audio clients instead of making them miss their deadlines."""
    if not sys.platform.startswith("linux"):
        return  # elsewhere it would renice the whole daemon, live input included
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + step))
    except OSError as exc:
        log.debug("cannot lower the Demucs worker's priority: %s", exc)


@dataclass
class JobEvent:
    kind: str                  # queued | preliminary | result | failed
    job: Job
    report: Report | None = None
    message: str = ""


class JobRunner:
    def __init__(self, cfg: Config, store: Store, analyzer: Analyzer,
                 on_event: Callable[[JobEvent], None]):
        self.cfg = cfg
        self.store = store
        self.analyzer = analyzer
        self.on_event = on_event
        self._wake = {stage: threading.Condition() for stage in ("cnn", "demucs")}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.running: dict[str, Job | None] = {"cnn": None, "demucs": None}

    # -- submission ------------------------------------------------------------------------------
    def submit(self, path: str, mode: str, source: str, *, req_id: int | None = None,
               request_path: str | None = None, sender: tuple[str, int] | None = None,
               size: int | None = None, mtime: float | None = None, sha256: str | None = None) -> Job:
        job = self.store.add(path, mode, source, req_id=req_id, request_path=request_path,
                             sender=sender, size=size, mtime=mtime, sha256=sha256,
                             max_pending=self.cfg.jobs.max_queued)
        if job is None:
            raise QueueFullError(
                f"queue full ({self.cfg.jobs.max_queued} jobs waiting); {path} was not accepted")
        log.info("queued #%d %s (%s, from %s)", job.id, path, mode, source)
        self.on_event(JobEvent("queued", job))
        self._notify(job.stage)
        return job

    def _notify(self, stage: str) -> None:
        with self._wake[stage]:
            self._wake[stage].notify()

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> None:
        requeued, failed = self.store.recover()
        for job in requeued:
            log.warning("re-queued #%d %s (interrupted by a stop or crash)", job.id, job.path)
        for job in failed:
            log.error("failed #%d %s: interrupted %d times", job.id, job.path, job.interruptions)
        for stage, loop in (("cnn", self._cnn_step), ("demucs", self._demucs_step)):
            t = threading.Thread(target=self._loop, args=(stage, loop), name=f"{stage}-worker",
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, grace_s: float) -> bool:
        """Ask the workers to stop; True if they did within `grace_s`. A job still running stays
        'running' in the store and is re-queued at the next start, so nothing is lost."""
        self._stop.set()
        for stage in self._wake:
            self._notify(stage)
        for t in self._threads:
            t.join(timeout=grace_s)
        return not any(t.is_alive() for t in self._threads)

    def _loop(self, stage: str, step: Callable[[Job], None]) -> None:
        if stage == "demucs":
            _lower_this_threads_priority(DEMUCS_NICE_STEP)
        while not self._stop.is_set():
            job = self.store.claim(stage)
            if job is None:
                with self._wake[stage]:
                    self._wake[stage].wait(timeout=1.0)
                continue
            self.running[stage] = job
            try:
                step(job)
            except AimusicError as exc:
                self._fail(job, str(exc))
            except Exception as exc:  # noqa: BLE001 - a bug must fail one job, not the daemon
                log.exception("internal error on #%d %s", job.id, job.path)
                self._fail(job, f"{job.path}: internal error ({type(exc).__name__}: {exc})")
            finally:
                self.running[stage] = None

    # -- the two stages --------------------------------------------------------------------------
    def _cnn_step(self, job: Job) -> None:
        first = self.analyzer.first_pass(job.path, job.mode)
        report = first.report
        if first.demucs_reason:
            self.store.to_stage(job.id, "demucs", report.verdict,
                                report.cnn.probability_ai if report.cnn else None, report.sha256)
            log.info("#%d preliminary %s p=%.3f (by %s, %.2f s); demucs next: %s", job.id,
                     report.verdict, report.probability_ai, report.decided_by,
                     sum(report.timings.get(k, 0) for k in _FAST_PASS), first.demucs_reason)
            self.on_event(JobEvent("preliminary", self.store.get(job.id), report))
            self._notify("demucs")
        else:
            self._complete(job, report)

    def _demucs_step(self, job: Job) -> None:
        self._complete(job, self.analyzer.analyze(job.path, job.mode))

    def _complete(self, job: Job, report: Report) -> None:
        report_path = None
        if self.cfg.reports.enabled:
            try:
                report_path = str(write_report(report, reports_path_for(self.cfg, Path(job.path))))
            except OSError as exc:
                log.error("#%d cannot write report for %s: %s", job.id, job.path, exc)
        self.store.finish(
            job.id, verdict=report.verdict, probability_ai=report.probability_ai,
            cnn_prob=report.cnn.probability_ai if report.cnn else None,
            demucs_prob=report.demucs.probability_ai if report.demucs.ran else None,
            sha256=report.sha256, report_path=report_path,
        )
        log.info("#%d %s p=%.3f by %s in %.1f s: %s", job.id, report.verdict, report.probability_ai,
                 report.decided_by, sum(report.timings.get(k, 0) for k in (*_FAST_PASS, "demucs_s")),
                 job.path)
        self.on_event(JobEvent("result", self.store.get(job.id), report))

    def _fail(self, job: Job, message: str) -> None:
        self.store.fail(job.id, message)
        log.error("#%d failed: %s", job.id, message)
        self.on_event(JobEvent("failed", self.store.get(job.id), message=message))
