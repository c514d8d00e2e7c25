"""Fit what sits on top of the engines: the Demucs head, the CNN's Platt scaling, the fusion, and
the verdict thresholds - each on data the layer below never trained on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engines.demucs.features import FEATURE_NAMES
from ..engines.fusion import FusionParams, fusion_inputs
from ..engines.logistic import LogisticModel, sigmoid
from .scoring import Scored

HEAD_L2 = 2.0
FUSION_L2 = 1.0
MAX_HUMAN_FP = 0.01        # at most 1 % of human music called "ai"...
MAX_HUMAN_UNCERTAIN = 0.05  # ...and at most 5 % left "uncertain", in every codec group
THRESHOLD_MARGIN = 0.02    # a little room above the worst human seen in calibration


def fit_head(train: list[Scored]) -> LogisticModel:
    rows = [s for s in train if s.features is not None]
    x = np.array([[s.features[f] for f in FEATURE_NAMES] for s in rows])
    y = np.array([s.label for s in rows])
    return LogisticModel.fit(list(FEATURE_NAMES), x, y, l2=HEAD_L2)


def fit_platt(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """p = sigmoid(a * raw + b) fitted on held-out logits."""
    m = LogisticModel.fit(["raw"], raw[:, None], y, l2=1e-3)
    a = m.coef[0] / m.scale[0]
    return float(a), float(m.intercept - a * m.mean[0])


def head_logit(head: LogisticModel, s: Scored) -> float | None:
    return None if s.features is None else head.logit_of(s.features)


@dataclass
class FusionData:
    cnn: np.ndarray          # calibrated CNN logits
    demucs: np.ndarray       # head logits (nan where not measured)
    lossy: np.ndarray
    y: np.ndarray
    group: list[str]         # codec family: none | mp3 | aac | opus


def fusion_data(scored: list[Scored], platt: tuple[float, float], head: LogisticModel) -> FusionData:
    a, b = platt
    demucs = [head_logit(head, s) for s in scored]
    return FusionData(
        cnn=np.array([a * s.cnn_raw + b for s in scored]),
        demucs=np.array([np.nan if d is None else d for d in demucs]),
        lossy=np.array([s.lossy for s in scored], bool),
        y=np.array([s.label for s in scored]),
        group=[s.codec.split("-")[0] for s in scored],
    )


def _fit_rows(data: FusionData, names: list[str], mask: np.ndarray) -> LogisticModel:
    rows = []
    for c, d, q in zip(data.cnn[mask], data.demucs[mask], data.lossy[mask]):
        rows.append(fusion_inputs(float(c) if "cnn_logit" in names else None,
                                  float(d) if "demucs_logit" in names else None, bool(q)))
    x = np.array([[r[n] for n in names] for r in rows])
    return LogisticModel.fit(names, x, data.y[mask], l2=FUSION_L2)


def fit_fusion(data: FusionData, name: str) -> FusionParams:
    has_demucs = ~np.isnan(data.demucs)
    cnn_only = _fit_rows(data, ["cnn_logit", "lossy", "cnn_logit_x_lossy"], np.ones(len(data.y), bool))
    demucs_only = _fit_rows(data, ["demucs_logit", "lossy", "demucs_logit_x_lossy"], has_demucs)
    both = _fit_rows(data, ["cnn_logit", "demucs_logit", "lossy", "cnn_logit_x_lossy",
                            "demucs_logit_x_lossy"], has_demucs)
    params = FusionParams(name, cnn_only, demucs_only, both, ai_threshold=0.5, human_threshold=0.5,
                          lossy_band=(0.0, 1.0))
    probs = fused_probabilities(params, data)
    # The paths auto and full mode take (CNN alone, or both engines) set the thresholds; the
    # Demucs-only model serves only the explicit "demucs" mode and is reported, not tuned for.
    ai_t, human_t = choose_thresholds({k: probs[k] for k in ("cnn", "fused")}, data)
    return FusionParams(name, cnn_only, demucs_only, both, ai_t, human_t,
                        lossy_band=widened_band(human_t, ai_t))


def fused_probabilities(params: FusionParams, data: FusionData) -> dict[str, np.ndarray]:
    """P(AI) per example from each fusion model (nan where that model's inputs are missing)."""
    out = {}
    for key, model in (("cnn", params.cnn_only), ("demucs", params.demucs_only), ("fused", params.both)):
        p = []
        for c, d, q in zip(data.cnn, data.demucs, data.lossy):
            needs_d = "demucs_logit" in model.features
            if needs_d and np.isnan(d):
                p.append(np.nan)
                continue
            row = fusion_inputs(float(c) if "cnn_logit" in model.features else None,
                                float(d) if needs_d else None, bool(q))
            p.append(float(sigmoid(model.logit_of(row))))
        out[key] = np.array(p)
    return out


def choose_thresholds(probs: dict[str, np.ndarray], data: FusionData) -> tuple[float, float]:
    """ai: above the (1 - MAX_HUMAN_FP) quantile of human probabilities in the worst codec group
    and model; human: at the (1 - MAX_HUMAN_UNCERTAIN) quantile likewise (but below ai)."""
    human = data.y == 0
    groups = sorted(set(data.group))
    hi_q, mid_q = [], []
    for p in probs.values():
        for g in groups:
            sel = human & np.array([x == g for x in data.group]) & ~np.isnan(p)
            if sel.sum() == 0:
                continue
            hi_q.append(np.quantile(p[sel], 1 - MAX_HUMAN_FP, method="higher"))
            mid_q.append(np.quantile(p[sel], 1 - MAX_HUMAN_UNCERTAIN, method="higher"))
    ai_t = float(np.clip(max(hi_q) + THRESHOLD_MARGIN, 0.5, 0.995))
    human_t = float(np.clip(max(mid_q) + THRESHOLD_MARGIN, 0.01, ai_t - 0.01))
    return round(ai_t, 4), round(human_t, 4)


def widened_band(human_t: float, ai_t: float) -> tuple[float, float]:
    """Auto mode, lossy input: Demucs also runs where the CNN is outside the uncertain band but not
    far outside it (the band widened by a factor of e in odds on each side)."""
    def odds_shift(p: float, k: float) -> float:
        return float(sigmoid(np.log(p / (1 - p)) + k))
    return round(odds_shift(human_t, -1.0), 4), round(odds_shift(ai_t, 1.0), 4)
