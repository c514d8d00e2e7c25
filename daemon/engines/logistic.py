"""L2-regularised logistic regression on named, standardised features.

One small model type serves the Demucs engine's head, the fusion, and Platt-style calibration, and
stores itself as plain JSON (readable in review, no pickle).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np


@dataclass
class LogisticModel:
    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float

    def matrix(self, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        return np.array([[float(r[name]) for name in self.features] for r in rows], dtype=np.float64)

    def logit(self, x: np.ndarray) -> np.ndarray:
        z = (np.atleast_2d(x) - np.asarray(self.mean)) / np.asarray(self.scale)
        return z @ np.asarray(self.coef) + self.intercept

    def logit_of(self, row: Mapping[str, float]) -> float:
        return float(self.logit(self.matrix([row]))[0])

    def probability_of(self, row: Mapping[str, float]) -> float:
        return float(sigmoid(self.logit_of(row)))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "LogisticModel":
        return cls(list(d["features"]), list(map(float, d["mean"])), list(map(float, d["scale"])),
                   list(map(float, d["coef"])), float(d["intercept"]))

    @classmethod
    def fit(cls, features: list[str], x: np.ndarray, y: np.ndarray, l2: float = 1.0,
            offset: np.ndarray | None = None, weight: np.ndarray | None = None,
            iterations: int = 100) -> "LogisticModel":
        """Newton's method on the penalised log-likelihood (the intercept is not penalised).
        With `offset`, the model learns a correction added to that fixed logit per row, with no
        intercept: on centred features it moves logits up and down around the offset's, and
        cannot recalibrate the offset from the few rows it sees. `weight` weighs rows (in the
        likelihood and in the standardisation)."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        base = np.zeros(len(y)) if offset is None else np.asarray(offset, dtype=np.float64)
        w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=np.float64)
        w = w / w.mean()
        mean = np.average(x, axis=0, weights=w)
        scale = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=w))
        scale[scale < 1e-9] = 1.0
        with_intercept = offset is None
        z = (x - mean) / scale
        if with_intercept:
            z = np.hstack([z, np.ones((len(x), 1))])
        beta = np.zeros(z.shape[1])
        penalty = np.full(z.shape[1], l2 / max(len(y), 1))
        if with_intercept:
            penalty[-1] = 0.0
        for _ in range(iterations):
            p = sigmoid(z @ beta + base)
            grad = z.T @ (w * (p - y)) / len(y) + penalty * beta
            hess = (z * (w * p * (1 - p))[:, None]).T @ z / len(y) + np.diag(penalty + 1e-9)
            step = np.linalg.solve(hess, grad)
            beta -= step
            if np.abs(step).max() < 1e-8:
                break
        if not with_intercept:
            beta = np.append(beta, 0.0)
        return cls(list(features), mean.tolist(), scale.tolist(), beta[:-1].tolist(), float(beta[-1]))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def fit_platt(raw: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> tuple[float, float]:
    """p = sigmoid(a * raw + b) fitted on held-out logits."""
    m = LogisticModel.fit(["raw"], raw[:, None], y, l2=1e-3, weight=weight)
    a = m.coef[0] / m.scale[0]
    return float(a), float(m.intercept - a * m.mean[0])
