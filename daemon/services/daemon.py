"""The daemon: wires the store, job runner, OSC server, folder watcher and live input together,
and supervises them: a dead job worker is restarted (the daemon exits 1 when that keeps failing,
or when the OSC server or the watcher dies, so that systemd/launchd restart it), and a state
database deleted under it is written back from the open connection."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from ..analysis import Analyzer
from ..config import Config, state_dir
from ..config.paths import expand
from ..errors import AimusicError, ModelError, StoreError
from .intake import Intake
from .jobs import JobEvent, JobRunner
from .live_control import LiveController
from .lock import hold_state_lock
from .osc.handlers import Handlers
from .osc.pushes import Pushes
from .osc.server import OscServer
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
        self.osc_server = OscServer(cfg.osc) if cfg.osc.enabled else None
        pushes = Pushes(self.osc_server) if self.osc_server else None
        self.runner = JobRunner(cfg, self.store, self.analyzer, pushes.job_event if pushes else _unheard)
        capture_dir = expand(cfg.live.capture_dir) if cfg.live.capture_dir else self.state_dir / "captures"
        self.live = LiveController(cfg.live, self.analyzer, capture_dir, self.runner)
        roots = cfg.osc.allowed_roots or [*cfg.watch.folders, "~"]
        self.allowed_roots = [expand(r).resolve() for r in roots]
        if pushes:
            Handlers(pushes.server, self.runner, self.store, self.live, self.analyzer.loaded_models,
                     self.allowed_roots, default_mode=cfg.engines.mode)
            self.live.on_score.append(pushes.live_score)
            self.live.on_alert.append(pushes.live_alert)
        intake = Intake(self.store, self.runner, cfg.watch.mode, cfg.engines.max_file_mb)
        self.watcher = (FolderWatcher(cfg.watch, intake.file_ready, self.allowed_roots)
                        if cfg.watch.enabled else None)
        self._stop = threading.Event()
        self.web = None
        if cfg.web.enabled:
            from ..web.host import DashboardHost
            from ..web.server import WebServer   # here: the web stack loads only when it is wanted

            host = DashboardHost(cfg, self.store.path, self.allowed_roots, self.runner, self.analyzer,
                                 self.live)
            self.web = WebServer(cfg.web, host)
            feed = self.web.live
            self.live.on_score.append(lambda score: feed.publish(score.p, score.smoothed, score.verdict))

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
        if self.osc_server:
            self.osc_server.start()
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
                self.live.start(None)
            except AimusicError as exc:
                log.error("live input not started: %s", exc)
        log.info("aimusicd ready")

    def stop(self) -> bool:
        """Stop every service; False if a job was still running (it stays 'running' in the store
        and is re-queued at the next start)."""
        log.info("aimusicd stopping")
        if self.watcher:
            self.watcher.stop()
        self.live.stop()
        if self.web:
            self.web.stop()
        if self.osc_server:
            self.osc_server.stop()
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
        if self.osc_server and not self.osc_server.alive:
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


def _unheard(event: JobEvent) -> None:
    """Job events where no OSC server is there to push them."""
