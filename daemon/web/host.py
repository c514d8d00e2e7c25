"""What the dashboard asks of the running daemon: its state, models and live input. A thin view,
so the web code depends on these few calls and not on the daemon's insides."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Config
from ..config.paths import expand

if TYPE_CHECKING:
    from ..services.daemon import Daemon


@dataclass(frozen=True)
class ModelRow:
    name: str
    loaded: bool
    detail: str


@dataclass(frozen=True)
class LiveState:
    active: bool
    device: str
    scores: int
    overflows: int
    latency_p50_ms: float
    latency_p99_ms: float


class DashboardHost:
    def __init__(self, daemon: "Daemon"):
        self._daemon = daemon

    @property
    def cfg(self) -> Config:
        return self._daemon.cfg

    @property
    def db_path(self) -> Path:
        return self._daemon.state_dir / "aimusicd.sqlite"

    def readable_roots(self) -> list[Path]:
        """The allowed roots (as for OSC requests), the report store and the state folder."""
        roots = list(self._daemon.allowed_roots) + [self._daemon.state_dir]
        if self.cfg.reports.dir:
            roots.append(expand(self.cfg.reports.dir))
        return roots

    def running(self) -> dict[str, int | None]:
        return {stage: (job.id if job else None) for stage, job in self._daemon.runner.running.items()}

    def models(self) -> list[ModelRow]:
        analyzer = self._daemon.analyzer
        loaded = set(analyzer.loaded_models())
        rows = []
        cnn = analyzer.cnn if "cnn" in loaded else None
        rows.append(ModelRow("CNN", cnn is not None,
                             f"{cnn.meta.name}, sha256 {cnn.sha256[:12]}" if cnn else "not loaded"))
        fusion = analyzer.fusion
        rows.append(ModelRow("fusion", True, f"{fusion.params.name}: ai >= {fusion.ai_threshold:.3g}, "
                                             f"human <= {fusion.human_threshold:.3g}"))
        demucs = analyzer.demucs if "demucs" in loaded else None
        rows.append(ModelRow("Demucs", demucs is not None,
                             f"{demucs.model_name} on {demucs.separator.device}, "
                             f"{demucs.excerpts} excerpt{'s' if demucs.excerpts != 1 else ''} per file"
                             if demucs else "loaded on first use"))
        return rows

    def live(self) -> LiveState:
        live = self._daemon.live
        if live is None or not live.active:
            return LiveState(False, "", 0, 0, -1.0, -1.0)
        s = live.stats()
        return LiveState(True, s.device, s.scores, s.overflows, s.latency_p50_ms, s.latency_p99_ms)

    def live_active(self) -> bool:
        live = self._daemon.live
        return live is not None and live.active

    def start_live(self, device: str | None) -> None:
        self._daemon.start_live(device, requester=None)

    def stop_live(self) -> None:
        self._daemon.stop_live()
