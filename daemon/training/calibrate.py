"""Fit what sits on top of the engines: the Demucs head, the CNN's Platt scaling, the fusion, and
the verdict thresholds - each on data the layer below never trained on."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..engines.demucs.features import FEATURE_NAMES
from ..engines.fusion import Delivery, FusionParams, engine_features, fusion_inputs, model_features
from ..engines.logistic import LogisticModel, sigmoid
from .metrics import log_loss
from .scoring import Scored

HEAD_L2 = 2.0
FUSION_L2 = 1.0
CORRECTION_L2 = 10.0       # the Demucs correction learns from few examples: shrink it harder
MAX_HUMAN_FP = 0.01        # at most 1 % of human music called "ai"...
MAX_HUMAN_UNCERTAIN = 0.05  # ...and at most 5 % left "uncertain", in every codec group
THRESHOLD_MARGIN = 0.02    # a little room above the worst human seen in calibration
AI_THRESHOLD_RANGE = (0.5, 0.995)   # never "ai" below even odds; never out of reach


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
    cnn: np.ndarray              # calibrated CNN logits
    demucs: np.ndarray           # head logits (nan where not measured)
    delivery: list[Delivery]     # codec evidence per example
    y: np.ndarray
    group: list[str]             # codec family: none | mp3 | aac | opus

    def logits(self, i: int, engines: tuple[str, ...]) -> tuple[float | None, float | None]:
        return (float(self.cnn[i]) if "cnn" in engines else None,
                float(self.demucs[i]) if "demucs" in engines else None)

    def inputs(self, i: int, engines: tuple[str, ...]) -> dict[str, float]:
        return fusion_inputs(*self.logits(i, engines), self.delivery[i])


# The three fused probabilities the evaluation reports, and which engines' evidence each uses.
ENGINE_SETS = {"cnn": ("cnn",), "demucs": ("demucs",), "fused": ("cnn", "demucs")}


def fusion_data(scored: list[Scored], platt: tuple[float, float], head: LogisticModel) -> FusionData:
    a, b = platt
    demucs = [head_logit(head, s) for s in scored]
    return FusionData(
        cnn=np.array([a * s.cnn_raw + b for s in scored]),
        demucs=np.array([np.nan if d is None else d for d in demucs]),
        delivery=[s.delivery for s in scored],
        y=np.array([s.label for s in scored]),
        group=[s.codec.split("-")[0] for s in scored],
    )


def _fit(data: FusionData, names: list[str], engines: tuple[str, ...], mask: np.ndarray, l2: float,
         offset: np.ndarray | None = None) -> LogisticModel:
    rows = (data.inputs(i, engines) for i in np.nonzero(mask)[0])
    x = np.array([[row[n] for n in names] for row in rows])
    return LogisticModel.fit(names, x, data.y[mask], l2=l2,
                             offset=None if offset is None else offset[mask])


@dataclass(frozen=True)
class CorrectionCheck:
    """Leave-one-track-out test of the Demucs correction on the rows that carry Demucs features:
    mean log-loss of the CNN-only logits, and of those plus a correction fitted without the track."""
    rows: int
    tracks: int
    logloss_cnn: float
    logloss_corrected: float

    @property
    def kept(self) -> bool:
        return self.logloss_corrected < self.logloss_cnn

    def to_dict(self) -> dict:
        return {"rows": self.rows, "tracks": self.tracks, "logloss_cnn": round(self.logloss_cnn, 4),
                "logloss_corrected": round(self.logloss_corrected, 4), "kept": self.kept}


def fit_fusion(data: FusionData, tracks: list[str], name: str) -> tuple[FusionParams, CorrectionCheck]:
    """The fusion models and thresholds; `tracks` names each row's source track, the unit the
    Demucs correction is tested on. A correction that does not beat the CNN alone out of fold is
    zeroed, so "fused" is then the CNN-only model exactly: Demucs evidence enters a verdict only
    where it has been shown to help on music no fit saw."""
    everyone = np.ones(len(data.y), bool)
    has_demucs = ~np.isnan(data.demucs)
    cnn_only = _fit(data, model_features("cnn"), ("cnn",), everyone, FUSION_L2)
    cnn_logits = np.array([cnn_only.logit_of(data.inputs(i, ("cnn",))) for i in range(len(data.y))])
    correction = _fit(data, engine_features("demucs"), ("cnn", "demucs"), has_demucs, CORRECTION_L2,
                      offset=cnn_logits)
    check = check_correction(data, tracks, cnn_logits)
    if not check.kept:
        correction = replace(correction, coef=[0.0] * len(correction.coef))
    params = FusionParams(
        name,
        cnn_only=cnn_only,
        demucs_only=_fit(data, model_features("demucs"), ("demucs",), has_demucs, FUSION_L2),
        demucs_correction=correction,
        ai_threshold=0.5, human_threshold=0.5, lossy_band=(0.0, 1.0))
    probs = fused_probabilities(params, data)
    # The paths auto and full mode take (CNN alone, or both engines) set the thresholds; the
    # Demucs-only model serves only the explicit "demucs" mode and is reported, not tuned for.
    ai_t, human_t = choose_thresholds({k: probs[k] for k in ("cnn", "fused")}, data)
    params = replace(params, ai_threshold=ai_t, human_threshold=human_t,
                     lossy_band=widened_band(human_t, ai_t))
    return params, check


def check_correction(data: FusionData, tracks: list[str], cnn_logits: np.ndarray) -> CorrectionCheck:
    has_demucs = ~np.isnan(data.demucs)
    names = sorted({tracks[i] for i in np.nonzero(has_demucs)[0]})
    z, y = cnn_logits[has_demucs], data.y[has_demucs]
    if len(names) < 2:   # nothing to hold out: no evidence that the correction helps
        loss = log_loss(y, z) if len(y) else 0.0
        return CorrectionCheck(len(y), len(names), loss, loss)
    held_out = np.zeros(len(data.y))
    for track in names:
        test = has_demucs & np.array([t == track for t in tracks])
        fit = _fit(data, engine_features("demucs"), ("cnn", "demucs"), has_demucs & ~test,
                   CORRECTION_L2, offset=cnn_logits)
        held_out[test] = [fit.logit_of(data.inputs(i, ("cnn", "demucs"))) for i in np.nonzero(test)[0]]
    return CorrectionCheck(len(y), len(names), log_loss(y, z),
                           log_loss(y, z + held_out[has_demucs]))


def fused_probabilities(params: FusionParams, data: FusionData) -> dict[str, np.ndarray]:
    """P(AI) per example from each fusion model (nan where that model's inputs are missing)."""
    out = {}
    for key, engines in ENGINE_SETS.items():
        out[key] = np.array([
            np.nan if "demucs" in engines and np.isnan(data.demucs[i])
            else float(sigmoid(params.logit(*data.logits(i, engines), data.delivery[i])[0]))
            for i in range(len(data.y))
        ])
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
    ai_t = float(np.clip(max(hi_q) + THRESHOLD_MARGIN, *AI_THRESHOLD_RANGE))
    human_t = float(np.clip(max(mid_q) + THRESHOLD_MARGIN, 0.01, ai_t - 0.01))
    return round(ai_t, 4), round(human_t, 4)


def widened_band(human_t: float, ai_t: float) -> tuple[float, float]:
    """Auto mode, lossy input: Demucs also runs where the CNN is outside the uncertain band but not
    far outside it (the band widened by a factor of e in odds on each side)."""
    def odds_shift(p: float, k: float) -> float:
        return float(sigmoid(np.log(p / (1 - p)) + k))
    return round(odds_shift(human_t, -1.0), 4), round(odds_shift(ai_t, 1.0), 4)
