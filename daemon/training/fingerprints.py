"""Fit a known generator's fingerprint model: a logistic model over the peak spectrum of its
output against everything else (human music and every other family, so that a match names this
generator), Platt-scaled on calibration music, with a threshold that holds the false-positive
rate on human calibration music."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engines.fingerprint import GeneratorFingerprint, feature_names
from ..engines.logistic import LogisticModel, fit_platt, sigmoid
from ..evaluation.metrics import roc_auc
from .calibrate import ai_threshold, codec_groups
from .scoring import Scored

L2 = 300.0   # a thousand correlated bins, a few hundred examples: shrink hard


@dataclass(frozen=True)
class FingerprintFit:
    generator: GeneratorFingerprint
    calib_auc: float          # this generator's calibration examples against human ones
    calib_human_fp: float     # human calibration examples at or above the threshold


def _xy(scored: list[Scored], name: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.stack([s.spectrum for s in scored]).astype(np.float64)
    return x, np.array([1 if s.family == name else 0 for s in scored])


def fit_generator(name: str, description: str, train: list[Scored], calib: list[Scored],
                  conditions: list[Scored] = ()) -> FingerprintFit:
    """`calib` Platt-scales the model; the threshold holds on it and on `conditions` (human music
    under each evaluation condition) alike."""
    x, y = _xy(train, name)
    if y.sum() == 0 or (y == 0).sum() == 0:
        raise ValueError(f"fingerprint {name}: training needs examples of it and of other music")
    weight = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))   # both sides weigh alike
    model = LogisticModel.fit(feature_names(x.shape[1]), x, y, l2=L2, weight=weight)
    cx, cy = _xy(calib, name)
    raw = model.logit(cx)
    a, b = fit_platt(raw, cy, np.where(cy == 1, 0.5 / max(cy.mean(), 1e-9), 0.5 / max(1 - cy.mean(), 1e-9)))
    model = LogisticModel(model.features, model.mean, model.scale, [c * a for c in model.coef],
                          model.intercept * a + b)
    p = sigmoid(model.logit(cx))
    human = np.array([s.label == 0 for s in calib])
    under = sigmoid(model.logit(_xy(list(conditions), name)[0])) if conditions else np.zeros(0)
    threshold = ai_threshold([np.r_[p, under]], np.array([s.label for s in [*calib, *conditions]]),
                             codec_groups(calib) + codec_groups(list(conditions), by_condition=True))
    mine = cy == 1
    auc = roc_auc(np.r_[np.ones(mine.sum()), np.zeros(human.sum())], np.r_[p[mine], p[human]])
    fp = float(np.mean(p[human] >= threshold))
    generator = GeneratorFingerprint(name, model, threshold, description,
                                     {"calib_auc": round(auc, 4), "calib_human_fp": round(fp, 4),
                                      "train_examples": int(len(y)), "train_positive": int(y.sum())})
    return FingerprintFit(generator, auc, fp)


def apply(generators: list[GeneratorFingerprint], scored: list[Scored]) -> None:
    """Fill in each example's best generator logit and, where one fired, its probability."""
    for s in scored:
        logits = [(g.logit_of_spectrum(s.spectrum), g) for g in generators]
        if not logits:
            continue
        s.fingerprint = max(z for z, _ in logits)
        fired = [float(sigmoid(z)) for z, g in logits if sigmoid(z) >= g.threshold]
        s.matched_p = max(fired) if fired else None
