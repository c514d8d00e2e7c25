"""Job runner: a CNN worker and a Demucs worker draining the durable queue.

CNN work never waits behind Demucs: the CNN worker decodes, runs the fast pass (the CNN and the
image score) and gives a preliminary verdict within a second or two, then hands the job to the
Demucs worker if its mode (or the fast pass's doubt) asks for the slow engine. One Demucs worker,
since HTDemucs already uses every core.

The hand-over goes through the store: the fast pass's report is saved with the job, so that it is
computed once per job, survives a restart, and the Demucs worker completes that same report. The
Demucs worker decodes the file itself (its one decode) rather than receiving the decoded audio:
a queue of jobs waiting for Demucs would otherwise hold hundreds of MB of audio each.

Supervision: a worker never dies of a job. Any exception fails that job with its reason and the
worker goes on; a state database that cannot be written (full disk) holds the worker on that job,
retrying with back-off, until it can be written again; an event that cannot be delivered is logged.
Should a worker thread die all the same, `check_workers` (called by the daemon) fails its job and
restarts it, up to MAX_RESTARTS times.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, TypeVar

from ..analysis import Analyzer, Pass
from ..config import Config, reports_path_for
from ..errors import AimusicError, AudioError, ModelError, QueueFullError, StoreError
from ..report import Report, dumps_state, loads_state, write_report
from .store import Job, Store

log = logging.getLogger("aimusicd.jobs")

DEMUCS_NICE_STEP = 10
MAX_RESTARTS = 5
STORE_RETRY_S = (0.5, 10.0)   # back-off while the state database cannot be written: first, longest
STAGES = ("cnn", "demucs")
T = TypeVar("T")


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
class WorkerHealth:
    state: str = "starting"          # idle | busy #N | waiting: <why> | dead
    last_done: float | None = None   # time.time() when it last completed a job (result or failure)
    restarts: int = 0


@dataclass
class JobEvent:
    kind: str                  # queued | preliminary | result | failed
    job: Job
    report: Report | None = None   # preliminary: the fast pass's; result: the same one, completed
    message: str = ""


class JobRunner:
    def __init__(self, cfg: Config, store: Store, analyzer: Analyzer,
                 on_event: Callable[[JobEvent], None]):
        self.cfg = cfg
        self.store = store
        self.analyzer = analyzer
        self.on_event = on_event
        self._wake = {stage: threading.Condition() for stage in STAGES}
        self._stop = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._steps = {"cnn": self._cnn_step, "demucs": self._demucs_step}
        self.running: dict[str, Job | None] = {stage: None for stage in STAGES}
        self._health = {stage: WorkerHealth() for stage in STAGES}

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
        for stage in STAGES:
            self._start_worker(stage)

    def _start_worker(self, stage: str) -> None:
        t = threading.Thread(target=self._loop, args=(stage,), name=f"{stage}-worker", daemon=True)
        self._threads[stage] = t
        t.start()

    def stop(self, grace_s: float) -> bool:
        """Ask the workers to stop; True if they did within `grace_s`. A job still running stays
        'running' in the store and is re-queued at the next start, so nothing is lost."""
        self._stop.set()
        for stage in self._wake:
            self._notify(stage)
        for t in self._threads.values():
            t.join(timeout=grace_s)
        return not any(t.is_alive() for t in self._threads.values())

    def health(self) -> dict[str, WorkerHealth]:
        return {stage: replace(h) for stage, h in self._health.items()}

    def check_workers(self) -> bool:
        """Restart a worker thread that died, failing the job it held; False once one has died
        more than MAX_RESTARTS times (the daemon then exits non-zero for its service manager)."""
        for stage, t in list(self._threads.items()):
            if t.is_alive() or self._stop.is_set():
                continue
            health = self._health[stage]
            health.state = "dead"
            job = self.running[stage]
            log.error("the %s worker died%s", stage, f" during #{job.id} {job.path}" if job else "")
            if job is not None:   # no retry here: the supervisor must not wait on a full disk
                self.running[stage] = None
                message = f"{job.path}: the {stage} worker died during its analysis"
                try:
                    self.store.fail(job.id, message)
                except StoreError as exc:
                    log.error("#%d stays running until the next start: %s", job.id, exc)
                else:
                    log.error("#%d failed: %s", job.id, message)
                    self._emit(JobEvent("failed", job, message=message))
            if health.restarts >= MAX_RESTARTS:
                log.critical("the %s worker died %d times; giving up", stage, health.restarts + 1)
                return False
            health.restarts += 1
            log.warning("restarting the %s worker (restart %d of at most %d)", stage,
                        health.restarts, MAX_RESTARTS)
            self._start_worker(stage)
        return True

    def _loop(self, stage: str) -> None:
        if stage == "demucs":
            _lower_this_threads_priority(DEMUCS_NICE_STEP)
        health = self._health[stage]
        while not self._stop.is_set():
            try:
                job = self._persist(stage, lambda: self.store.claim(stage))
            except StoreError:
                return   # stopping; nothing was claimed
            if job is None:
                health.state = "idle"
                with self._wake[stage]:
                    self._wake[stage].wait(timeout=1.0)
                continue
            self._run(stage, job)

    def _run(self, stage: str, job: Job) -> None:
        health = self._health[stage]
        self.running[stage] = job
        health.state = f"busy #{job.id}"
        try:
            try:
                self._steps[stage](job)
            except AimusicError as exc:
                if isinstance(exc, StoreError) and self._stop.is_set():
                    raise
                # the file is at fault unless the daemon's own set-up is (a missing model)
                self._fail(job, str(exc), content=not isinstance(exc, (ModelError, StoreError)))
            except Exception as exc:  # noqa: BLE001 - a bug must fail one job, not the worker
                log.exception("internal error on #%d %s", job.id, job.path)
                self._fail(job, f"{job.path}: internal error ({type(exc).__name__}: {exc})")
            health.last_done = time.time()
        except StoreError:
            pass   # only while stopping: the job stays 'running' and is re-queued at the next start
        # Not in a `finally`: should the thread die here, check_workers still sees the job it held.
        self.running[stage] = None
        health.state = "idle"

    def _persist(self, stage: str, write: Callable[[], T]) -> T:
        """Run a store operation, retrying while the state database cannot be written (e.g. a full
        disk); raises StoreError only once the runner is stopping."""
        health = self._health[stage]
        delay, longest = STORE_RETRY_S
        stalled = False
        while True:
            try:
                result = write()
            except StoreError as exc:
                if self._stop.is_set():
                    raise
                if not stalled:
                    log.error("%s worker waiting: %s; retrying until it can be written", stage, exc)
                    stalled = True
                health.state = f"waiting: {exc}"
                self._stop.wait(delay)
                delay = min(delay * 2, longest)
                continue
            if stalled:
                log.warning("%s worker: the state database can be written again", stage)
                job = self.running[stage]
                health.state = f"busy #{job.id}" if job else "idle"
            return result

    def _emit(self, event: JobEvent) -> None:
        """Deliver an event; a failure to deliver it (an OSC client gone wrong) never stops a worker."""
        try:
            self.on_event(event)
        except Exception:  # noqa: BLE001
            log.exception("cannot deliver the %s event of #%d %s", event.kind, event.job.id, event.job.path)

    # -- the two stages --------------------------------------------------------------------------
    def _cnn_step(self, job: Job) -> None:
        digest = job.sha256 if _unchanged(job) else None
        first = self.analyzer.first_pass(job.path, job.mode, sha256=digest)
        report = first.report
        _require_finite(job, report)
        if first.demucs_reason:
            state = dumps_state(report)
            self._persist("cnn", lambda: self.store.to_stage(
                job.id, "demucs", report.verdict,
                report.cnn.probability_ai if report.cnn else None, report.sha256,
                fast_pass=state, demucs_reason=first.demucs_reason))
            log.info("#%d preliminary %s p=%.3f (by %s, %.2f s); demucs next: %s", job.id,
                     report.verdict, report.probability_ai, report.decided_by,
                     report.timings.get("fast_s", 0.0), first.demucs_reason)
            self._emit(JobEvent("preliminary", self._persist("cnn", lambda: self.store.get(job.id)), report))
            self._notify("demucs")
        else:
            self._complete("cnn", job, report)

    def _demucs_step(self, job: Job) -> None:
        first = self._handed_over(job)
        report = self.analyzer.second_pass(first) if first.demucs_reason else first.report
        _require_finite(job, report)
        self._complete("demucs", job, report)

    def _handed_over(self, job: Job) -> Pass:
        """The CNN stage's pass, with the file decoded again. Computed here instead where there is
        none (a job of mode demucs starts at this stage; a database of an earlier version) or the
        file changed since it was queued (that pass would describe other audio)."""
        unchanged = _unchanged(job)
        saved = _saved_report(job) if unchanged else None
        if saved is None:
            return self.analyzer.first_pass(job.path, job.mode, sha256=job.sha256 if unchanged else None)
        return Pass(saved, job.demucs_reason, self.analyzer.read(Path(job.path)))

    def _complete(self, stage: str, job: Job, report: Report) -> None:
        report_path = None
        if self.cfg.reports.enabled:
            try:
                report_path = str(write_report(report, reports_path_for(self.cfg, Path(job.path))))
            except OSError as exc:
                log.error("#%d cannot write report for %s: %s", job.id, job.path, exc)
        self._persist(stage, lambda: self.store.finish(
            job.id, verdict=report.verdict, probability_ai=report.probability_ai,
            cnn_prob=report.cnn.probability_ai if report.cnn else None,
            demucs_prob=report.demucs.probability_ai if report.demucs.ran else None,
            sha256=report.sha256, report_path=report_path,
        ))
        log.info("#%d %s p=%.3f by %s in %.1f s: %s", job.id, report.verdict, report.probability_ai,
                 report.decided_by, report.timings.get("fast_s", 0.0) + report.timings.get("demucs_s", 0.0),
                 job.path)
        self._emit(JobEvent("result", self._persist(stage, lambda: self.store.get(job.id)), report))

    def _fail(self, job: Job, message: str, content: bool = True) -> None:
        stage = job.stage
        self._persist(stage, lambda: self.store.fail(job.id, message, content=content))
        log.error("#%d failed: %s", job.id, message)
        self._emit(JobEvent("failed", self._persist(stage, lambda: self.store.get(job.id)) or job,
                            message=message))


def _unchanged(job: Job) -> bool:
    """The file still has the size and mtime it had when the job was queued (True where none were
    recorded: live captures)."""
    if job.size is None or job.mtime is None:
        return True
    try:
        st = os.stat(job.path)
    except OSError:
        return False
    return (st.st_size, st.st_mtime) == (job.size, job.mtime)


def _saved_report(job: Job) -> Report | None:
    if job.fast_pass is None:
        return None
    try:
        return loads_state(job.fast_pass)
    except (ValueError, KeyError, TypeError) as exc:   # saved by a version with other evidence
        log.warning("#%d: the saved fast pass cannot be read (%s); running it again", job.id, exc)
        return None


def _require_finite(job: Job, report: Report) -> None:
    """A probability that is not a number must never reach a report, OSC or the history."""
    values = {"probability_ai": report.probability_ai,
              "cnn": report.cnn.probability_ai if report.cnn else None,
              "demucs": report.demucs.probability_ai if report.demucs.ran else None}
    bad = [name for name, v in values.items() if v is not None and not math.isfinite(v)]
    if bad:
        raise AudioError(job.path, f"the analysis gave a non-finite probability ({', '.join(bad)}); "
                                   "the audio's level or content is out of the engines' range")
