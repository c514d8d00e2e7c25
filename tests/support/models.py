"""Tiny, randomly initialised models with the real interfaces: the whole analysis path in a few
seconds, for tests that check plumbing rather than accuracy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from daemon.engines.cnn import CnnEngine, CnnModelMeta, CnnNet, MelConfig, NetConfig, save_cnn
from daemon.engines.demucs.engine import DemucsEngine, DemucsHead
from daemon.engines.demucs.features import FEATURE_NAMES
from daemon.engines.demucs.separation import Separator, tiny_htdemucs
from daemon.engines.fusion import Fusion, FusionParams, engine_features, model_features
from daemon.engines.logistic import LogisticModel


def _logistic(features: list[str], coef: list[float], intercept: float = 0.0) -> LogisticModel:
    return LogisticModel(features, [0.0] * len(features), [1.0] * len(features), coef, intercept)


@dataclass
class TinyModels:
    cnn_path: Path
    head: DemucsHead
    params: FusionParams

    def cnn(self) -> CnnEngine:
        return CnnEngine(self.cnn_path)

    def demucs(self, excerpts: int = 1, device: str = "cpu") -> DemucsEngine:
        return DemucsEngine(Separator(tiny_htdemucs(), device), self.head, "tiny-htdemucs", "0" * 64, excerpts)

    def fusion(self, **thresholds) -> Fusion:
        return Fusion(self.params, "0" * 64, **thresholds)

    def analyzer(self, cfg):
        from daemon.analysis import Analyzer

        # The configured device, as the daemon's own: on a GPU machine these tests run Demucs there.
        return Analyzer(cfg, cnn=self.cnn(),
                        demucs=self.demucs(cfg.engines.demucs_excerpts, cfg.engines.demucs_device),
                        fusion=self.fusion(ai_threshold=cfg.engines.ai_threshold,
                                           human_threshold=cfg.engines.human_threshold))


def tiny_model_set(folder: Path) -> TinyModels:
    torch.manual_seed(0)
    cnn_path = folder / "cnn.safetensors"
    save_cnn(cnn_path, CnnNet(NetConfig(channels=(4, 8, 8, 8), hidden=8)).eval(),
             CnnModelMeta("tiny-cnn", NetConfig(channels=(4, 8, 8, 8), hidden=8), MelConfig()))
    rng = np.random.default_rng(0)
    head = DemucsHead("tiny-head", _logistic(list(FEATURE_NAMES), list(rng.normal(0, 0.1, len(FEATURE_NAMES)))),
                      "0" * 64)
    def fused(weights: dict[str, float], *engines: str) -> LogisticModel:
        names = model_features(*engines)
        return _logistic(names, [weights.get(n, 0.0) for n in names])

    params = FusionParams(
        name="tiny-fusion",
        cnn_only=fused({"cnn_logit": 1.0, "cnn_logit_x_lossy": -0.5}, "cnn"),
        demucs_only=fused({"demucs_logit": 1.0}, "demucs"),
        images_correction=_logistic(engine_features("images"), [0.5, 0.0, 0.0]),
        demucs_correction=_logistic(engine_features("demucs"), [1.0, 0.5, 0.0]),
        ai_threshold=0.8, human_threshold=0.2, lossy_band=(0.1, 0.9),
    )
    return TinyModels(cnn_path, head, params)
