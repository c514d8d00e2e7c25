"""Run a batch as a Ray Data pipeline. Ray only orchestrates; the work is the stages of `stages`:

    files -> content hash (tasks) -> driver: skip what is done, one of each duplicate
          -> FastStage on an actor pool of CPU workers (models loaded once per actor)
          -> DemucsStage on a second actor pool, with a GPU each where the cluster has GPUs
             (`engines.demucs_device`); a row whose fast pass did not ask for Demucs passes through
          -> driver: reports, journal, table

Ray Data restarts an actor that dies (SIGKILL, a preempted node) and runs its task again; the
driver keeps one row per file whatever arrives twice.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator

from ..analysis import Analyzer
from ..config import Config
from ..errors import AudioError, BatchError
from .sources import content_hash
from .stages import AnalyzerFactory, DemucsStage, FastStage, Outcome

log = logging.getLogger(__name__)

INSTALL_HINT = "--ray needs Ray, which is not installed: pip install 'aimusicd[ray]' (in a checkout: pip install '.[ray]')"
LOCAL = "local"     # --ray without an address: start a Ray instance on this machine


def import_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise BatchError(INSTALL_HINT) from None
    return ray


def _set_threads(cfg: Config) -> None:
    """One torch thread per CPU Ray gave this actor (or [engines] threads), so actors sharing a
    node do not oversubscribe it."""
    import ray
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(cfg.engines.threads or max(1, int(cpus)))


def _hash_row(row: dict) -> dict:
    try:
        return {"file": row["file"], "sha256": content_hash(row["file"]), "error": ""}
    except AudioError as exc:
        return {"file": row["file"], "sha256": "", "error": str(exc)}


class FastActor:
    def __init__(self, cfg: Config, mode: str, make_analyzer: AnalyzerFactory):
        _set_threads(cfg)
        self.stage = FastStage(make_analyzer(cfg), mode)

    def __call__(self, row: dict) -> dict:
        outcome, _ = self.stage.run(row["file"], row["sha256"])
        return {"file": row["file"], "outcome": pickle.dumps(outcome)}


class DemucsActor:
    def __init__(self, cfg: Config, make_analyzer: AnalyzerFactory):
        _set_threads(cfg)
        self.stage = DemucsStage(make_analyzer(cfg))

    def __call__(self, row: dict) -> dict:
        outcome: Outcome = pickle.loads(row["outcome"])
        if not outcome.demucs_reason:
            return row
        return {"file": row["file"], "outcome": pickle.dumps(self.stage.run(outcome))}


class RayExecutor:
    shows_progress = True       # Ray Data draws its own progress bars

    def __init__(self, cfg: Config, mode: str, address: str, make_analyzer: AnalyzerFactory = Analyzer):
        self.ray = import_ray()
        self.cfg, self.mode, self.make_analyzer = cfg, mode, make_analyzer
        try:
            if address == LOCAL:
                self.ray.init(include_dashboard=False, logging_level="warning")
            else:
                self.ray.init(address=address, logging_level="warning")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BatchError(f"cannot reach the Ray cluster at {address}: {exc}") from None
        resources = self.ray.cluster_resources()
        self.cpus = max(1, int(resources.get("CPU", 1)))
        self.gpus = int(resources.get("GPU", 0))

    def _demucs_on_gpus(self) -> bool:
        device = self.cfg.engines.demucs_device
        if device == "cuda" and not self.gpus:
            raise BatchError('engines.demucs_device is "cuda" but the Ray cluster has no GPU')
        return device in ("auto", "cuda") and self.gpus > 0

    def _pool(self, most: int):
        """Ray Data grows the pool from one actor as the work backs up."""
        return self.ray.data.ActorPoolStrategy(min_size=1, max_size=most)

    def _items(self, rows: list[dict]):
        # small blocks: a lost worker costs a retry of a few files, and actors share the work evenly
        return self.ray.data.from_items(rows, override_num_blocks=min(len(rows), 10_000))

    def hash(self, files: list[str]) -> Iterator[tuple[str, str, str]]:
        if not files:
            return
        for row in self._items([{"file": f} for f in files]).map(_hash_row).iter_rows():
            yield row["file"], row["sha256"], row["error"]

    def analyse(self, todo: list[tuple[str, str]]) -> Iterator[Outcome]:
        if not todo:
            return
        ds = self._items([{"file": f, "sha256": s} for f, s in todo]).map(
            FastActor, fn_constructor_kwargs={"cfg": self.cfg, "mode": self.mode,
                                              "make_analyzer": self.make_analyzer},
            compute=self._pool(self.cpus), num_cpus=1)
        if self.mode != "cnn":
            resources = {"num_gpus": 1} if self._demucs_on_gpus() else {"num_cpus": 1}
            ds = ds.map(DemucsActor, fn_constructor_kwargs={"cfg": self.cfg, "make_analyzer": self.make_analyzer},
                        compute=self._pool(self.gpus if "num_gpus" in resources else self.cpus), **resources)
        try:
            for row in ds.iter_rows():
                yield pickle.loads(row["outcome"])
        except Exception as exc:    # noqa: BLE001 - Ray Data raises several kinds; all end the run alike
            log.warning("the Ray pipeline failed", exc_info=True)
            first = str(exc).strip().splitlines()
            raise BatchError(f"the Ray pipeline failed: {first[0] if first else type(exc).__name__}") from exc

    def close(self) -> None:
        self.ray.shutdown()
