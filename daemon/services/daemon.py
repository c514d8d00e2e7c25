"""The daemon: wires the store, job runner, OSC server, folder watcher and live input together,
and supervises them: a dead job worker is restarted (the daemon exits 1 when that keeps failing,
or when the OSC server or the watcher dies, so that systemd/launchd restart it), and a state
database deleted under it is written back from the open connection."""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from pathlib import Path

from ..analysis import Analyzer
from ..config import Config, state_dir
from ..config.paths import expand
from ..engines.fusion import LIVE
from ..errors import AimusicError, ModelError, QueueFullError, StoreError
from .intake import Intake
from .jobs import JobEvent, JobRunner
from .live import LiveMonitor
from .lock import hold_state_lock
from .osc import protocol as osc
from .osc.handlers import Handlers
from .osc.server import Address, OscServer
from .store import Store
from .watcher import FolderWatcher

log = logging.getLogger("aimusicd")

STOP_GRACE_S = 3.0
SUPERVISE_EVERY_S = 0.5
STORE_CHECK_EVERY_S = 2.0
EXIT_SUPERVISION = 1


class Daemon:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.state_dir = state_dir(cfg)
        self._lock_file = hold_state_lock(self.state_dir)
        self.store = Store(self.state_dir / "aimusicd.sqlite")
        self.analyzer = Analyzer(cfg)
        self.runner = JobRunner(cfg, self.store, self.analyzer, self._on_job_event)
        self.osc = OscServer(cfg.osc) if cfg.osc.enabled else None
        if self.osc:
            Handlers(self.osc, self)
        roots = cfg.osc.allowed_roots or [*cfg.watch.folders, "~"]
        self.allowed_roots = [expand(r).resolve() for r in roots]
        intake = Intake(self.store, self.runner, cfg.watch.mode, cfg.engines.max_file_mb)
        self.watcher = (FolderWatcher(cfg.watch, intake.file_ready, self.allowed_roots)
                        if cfg.watch.enabled else None)
        self.live: LiveMonitor | None = None
        self._live_requesters: set[Address] = set()
        self._stop = threading.Event()
        self.web = None
        if cfg.web.enabled:
            from ..web.host import DashboardHost
            from ..web.server import WebServer   # here: the web stack loads only when it is wanted

            self.web = WebServer(cfg.web, DashboardHost(self))

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> None:
        log.info("aimusicd starting (config %s, state %s)", self.cfg.source, self.state_dir)
        needs_demucs = self.cfg.watch.mode in ("full", "demucs") or self.cfg.engines.mode != "cnn"
        self.analyzer.preload(demucs=False)
        if needs_demucs:
            try:
                self.analyzer.preload(demucs=True)
            except ModelError as exc:
                log.error("%s; jobs that need the Demucs engine will fail until then", exc)
        log.info("models loaded: %s", ", ".join(self.analyzer.loaded_models()))
        pruned = self.store.prune(self.cfg.jobs.keep_done_days)
        if pruned:
            log.info("history: removed %d entries older than %d days", pruned, self.cfg.jobs.keep_done_days)
        if self.osc:
            self.osc.start()
        self.runner.start()
        if self.web:
            try:
                self.web.start()
            except AimusicError as exc:
                log.error("%s; the daemon runs without it", exc)
                self.web = None
        if self.watcher:
            self.watcher.start()
        if self.cfg.live.enabled:
            try:
                self.start_live(None, requester=None)
            except AimusicError as exc:
                log.error("live input not started: %s", exc)
        log.info("aimusicd ready")

    def stop(self) -> bool:
        """Stop every service; False if a job was still running (it stays 'running' in the store
        and is re-queued at the next start)."""
        log.info("aimusicd stopping")
        if self.watcher:
            self.watcher.stop()
        self.stop_live()
        if self.web:
            self.web.stop()
        if self.osc:
            self.osc.stop()
        finished = self.runner.stop(STOP_GRACE_S)
        if not finished:
            log.warning("a job was still running; it is re-queued at the next start")
        self.store.close()
        log.info("aimusicd stopped")
        return finished

    def run_forever(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self._stop.set())
        self.start()
        code = 0
        last_store_check = time.monotonic()
        while not self._stop.wait(SUPERVISE_EVERY_S):
            failure = self.supervise()
            if failure:
                log.critical("%s; exiting so that the service manager restarts the daemon", failure)
                code = EXIT_SUPERVISION
                break
            if time.monotonic() - last_store_check > STORE_CHECK_EVERY_S:
                last_store_check = time.monotonic()
                self._check_store()
        if not self.stop():
            # A worker is still inside a long torch call; interpreter shutdown would abort under
            # it. Everything is committed and logged, so leave without waiting for it.
            logging.shutdown()
            os._exit(code)
        return code

    def supervise(self) -> str | None:
        """Restart dead job workers; the reason to exit if a service cannot be kept running."""
        if not self.runner.check_workers():
            return "a job worker keeps dying"
        if self.osc and not self.osc.alive:
            return "the OSC server thread died"
        if self.watcher and not self.watcher.alive:
            return "the folder watcher thread died"
        return None

    def _check_store(self) -> None:
        try:
            restored = self.store.restore_if_deleted()
        except StoreError as exc:
            log.error("%s", exc)
            return
        if restored is not None:
            log.error("state database %s was deleted or replaced; wrote back its %d jobs from the "
                      "open connection", self.store.path, restored)

    # -- job events -> OSC -----------------------------------------------------------------------
    def _on_job_event(self, event: JobEvent) -> None:
        if self.osc is None or event.kind == "queued":
            return
        job = event.job
        requester = (job.sender,) if job.sender else ()
        if event.kind == "preliminary":
            r = event.report
            self.osc.push(osc.PRELIMINARY, job.request_id, job.reply_path, r.verdict,
                          _osc_float(r.probability_ai), _osc_float(r.cnn.probability_ai if r.cnn else None),
                          senders=requester)
        elif event.kind == "result":
            r = event.report
            self.osc.push(osc.RESULT, job.request_id, job.reply_path, r.verdict,
                          _osc_float(r.probability_ai), _osc_float(r.cnn.probability_ai if r.cnn else None),
                          _osc_float(r.demucs.probability_ai if r.demucs.ran else None),
                          job.report_path or "", senders=requester)
        elif event.kind == "failed":
            self.osc.push(osc.ERROR, job.request_id, osc.ANALYZE, event.message, senders=requester)

    # -- live input ------------------------------------------------------------------------------
    def start_live(self, device: str | None, requester: Address | None) -> None:
        if requester:
            self._live_requesters.add(requester)
        if self.live and self.live.active:
            return
        cnn, fusion = self.analyzer.cnn, self.analyzer.fusion
        capture_dir = expand(self.cfg.live.capture_dir) if self.cfg.live.capture_dir else (
            self.state_dir / "captures")
        self.live = LiveMonitor(
            self.cfg.live, cnn.meta.window_s,
            score=lambda mono: fusion.cnn_probability(cnn.window_logit(mono), LIVE),
            label=fusion.label, on_score=self._on_live_score, on_alert=self._on_live_alert,
            on_capture=self._on_live_capture, capture_dir=capture_dir,
        )
        self.live.start(device)

    def stop_live(self) -> None:
        if self.live:
            self.live.stop()
            stats = self.live.stats()
            log.info("live input stopped: %d scores, %d overflows, latency p50 %.0f ms p99 %.0f ms",
                     stats.scores, stats.overflows, stats.latency_p50_ms, stats.latency_p99_ms)
        self._live_requesters.clear()

    def _on_live_score(self, p: float, smoothed: float, verdict: str) -> None:
        if self.web:
            self.web.live.publish(p, smoothed, verdict)
        if self.osc:
            self.osc.push(osc.LIVE_SCORE, p, smoothed, verdict, senders=tuple(self._live_requesters))

    def _on_live_alert(self, p: float, since_s: float) -> None:
        log.warning("live input sounds AI-generated: p=%.2f for %.0f s", p, since_s)
        if self.osc:
            self.osc.push(osc.LIVE_ALERT, p, since_s, senders=tuple(self._live_requesters))

    def _on_live_capture(self, path: Path) -> None:
        if self.cfg.live.demucs_check:
            try:
                self.runner.submit(str(path), "full", "live")
            except QueueFullError as exc:
                log.error("%s", exc)


def _osc_float(value: float | None) -> float:
    """What OSC promises as a float stays one: -1 where there is no finite number."""
    return float(value) if value is not None and math.isfinite(value) else -1.0
