"""What the dashboard asks of the running daemon: its state, models and live input. A thin view
over the services it is given, so the web code depends on these few calls and not on the daemon."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..analysis import Analyzer
from ..config import Config
from ..config.paths import expand
from ..services.jobs import JobRunner
from ..services.live_control import LiveController


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
    def __init__(self, cfg: Config, db_path: Path, allowed_roots: list[Path], runner: JobRunner,
                 analyzer: Analyzer, live: LiveController):
        self.cfg = cfg
        self.db_path = db_path
        self._allowed_roots = allowed_roots
        self._runner = runner
        self._analyzer = analyzer
        self._live = live

    def readable_roots(self) -> list[Path]:
        """The allowed roots (as for OSC requests), the report store and the state folder."""
        roots = list(self._allowed_roots) + [self.db_path.parent]
        if self.cfg.reports.dir:
            roots.append(expand(self.cfg.reports.dir))
        return roots

    def running(self) -> dict[str, int | None]:
        return {stage: (job.id if job else None) for stage, job in self._runner.running.items()}

    def models(self) -> list[ModelRow]:
        analyzer = self._analyzer
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
        s = self._live.stats() if self._live.active else None
        if s is None:
            return LiveState(False, "", 0, 0, -1.0, -1.0)
        return LiveState(True, s.device, s.scores, s.overflows, s.latency_p50_ms, s.latency_p99_ms)

    def live_active(self) -> bool:
        return self._live.active

    def start_live(self, device: str | None) -> None:
        self._live.start(device)

    def stop_live(self) -> None:
        self._live.stop()
