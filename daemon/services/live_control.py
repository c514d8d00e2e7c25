"""Live input as the daemon offers it: started and stopped from OSC, the dashboard or the config
(one monitor at a time, whichever thread asks), its scores and alerts handed to listeners, and
flagged captures queued for a full analysis."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..analysis import Analyzer
from ..config.schema import LiveConfig
from ..engines.fusion import LIVE
from ..errors import QueueFullError
from .jobs import JobRunner
from .live import LiveMonitor, LiveStats

log = logging.getLogger("aimusicd.live")

Requester = tuple[str, int]   # an OSC client that started live input: it gets the scores too


@dataclass(frozen=True)
class LiveScore:
    p: float
    smoothed: float
    verdict: str
    requesters: tuple[Requester, ...]


@dataclass(frozen=True)
class LiveAlert:
    p: float
    since_s: float
    requesters: tuple[Requester, ...]


class LiveController:
    def __init__(self, cfg: LiveConfig, analyzer: Analyzer, capture_dir: Path, runner: JobRunner):
        self.cfg = cfg
        self._analyzer = analyzer
        self._capture_dir = capture_dir
        self._runner = runner
        self.on_score: list[Callable[[LiveScore], None]] = []
        self.on_alert: list[Callable[[LiveAlert], None]] = []
        self._monitor: LiveMonitor | None = None
        # Replaced, never changed in place: the scoring thread reads it without the lock.
        self._requesters: frozenset[Requester] = frozenset()
        self._lock = threading.Lock()   # OSC and the dashboard may start or stop it at once

    @property
    def active(self) -> bool:
        monitor = self._monitor
        return monitor is not None and monitor.active

    def stats(self) -> LiveStats | None:
        """Of the running or last monitor; None if live input was never started."""
        monitor = self._monitor
        return monitor.stats() if monitor else None

    def start(self, device: str | None, requester: Requester | None = None) -> None:
        with self._lock:
            if requester:
                self._requesters |= {requester}
            if self._monitor and self._monitor.active:
                return
            cnn, fusion = self._analyzer.cnn, self._analyzer.fusion
            self._monitor = LiveMonitor(
                self.cfg, cnn.meta.window_s,
                score=lambda mono: fusion.cnn_probability(cnn.window_logit(mono), LIVE),
                label=fusion.label, on_score=self._score, on_alert=self._alert,
                on_capture=self._capture, capture_dir=self._capture_dir,
            )
            self._monitor.start(device)

    def stop(self) -> None:
        with self._lock:
            if self._monitor:
                self._monitor.stop()
                stats = self._monitor.stats()
                log.info("live input stopped: %d scores, %d overflows, latency p50 %.0f ms p99 %.0f ms",
                         stats.scores, stats.overflows, stats.latency_p50_ms, stats.latency_p99_ms)
            self._requesters = frozenset()

    def _score(self, p: float, smoothed: float, verdict: str) -> None:
        event = LiveScore(p, smoothed, verdict, tuple(self._requesters))
        for listener in self.on_score:
            listener(event)

    def _alert(self, p: float, since_s: float) -> None:
        log.warning("live input sounds AI-generated: p=%.2f for %.0f s", p, since_s)
        event = LiveAlert(p, since_s, tuple(self._requesters))
        for listener in self.on_alert:
            listener(event)

    def _capture(self, path: Path) -> None:
        if self.cfg.demucs_check:
            try:
                self._runner.submit(str(path), "full", "live")
            except QueueFullError as exc:
                log.error("%s", exc)
