"""The evaluation table: codec condition x engine, the same for training's held-out split and for
`aimusicd eval` on any labelled folders."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engines.fusion import Fusion, FusionParams
from .calibrate import FusionData, fused_probabilities
from .metrics import Scores, score_all

ENGINES = ("cnn", "demucs", "fused", "auto")


@dataclass
class Row:
    condition: str
    engine: str
    scores: Scores

    def to_dict(self) -> dict:
        return {"condition": self.condition, "engine": self.engine, **self.scores.to_dict()}


def engine_probabilities(params: FusionParams, data: FusionData) -> dict[str, np.ndarray]:
    """Each engine's P(AI), plus "auto": the CNN's verdict where it is sure, the fusion where the
    daemon's auto mode would have run Demucs."""
    probs = fused_probabilities(params, data)
    fusion = Fusion(params)
    auto = probs["cnn"].copy()
    for i, (p, lossy) in enumerate(zip(probs["cnn"], data.lossy)):
        if fusion.demucs_wanted(float(p), bool(lossy)) and not np.isnan(probs["fused"][i]):
            auto[i] = probs["fused"][i]
    probs["auto"] = auto
    return probs


def evaluate(params: FusionParams, by_condition: dict[str, FusionData],
             ai_threshold: float | None = None, human_threshold: float | None = None) -> list[Row]:
    ai_t = params.ai_threshold if ai_threshold is None else ai_threshold
    human_t = params.human_threshold if human_threshold is None else human_threshold
    rows = []
    for condition, data in by_condition.items():
        probs = engine_probabilities(params, data)
        for engine in ENGINES:
            p = probs[engine]
            ok = ~np.isnan(p)
            if ok.sum() == 0:
                continue
            rows.append(Row(condition, engine, score_all(data.y[ok], p[ok], ai_t, human_t)))
    return rows


def format_table(rows: list[Row]) -> str:
    head = (f"{'condition':<10} {'engine':<7} {'n_ai':>5} {'n_hum':>5} {'bal_acc':>7} {'auc':>6} "
            f"{'rec@1%':>6} {'hum_fp':>6} {'ai_rec':>6} {'unc_h':>6} {'unc_ai':>6} {'ece':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        s = r.scores
        lines.append(
            f"{r.condition:<10} {r.engine:<7} {s.n_ai:>5} {s.n_human:>5} {s.balanced_accuracy:>7.3f} "
            f"{s.auc:>6.3f} {s.recall_at_1pct_fpr:>6.3f} {s.human_fp_rate:>6.3f} {s.ai_recall:>6.3f} "
            f"{s.uncertain_human:>6.3f} {s.uncertain_ai:>6.3f} {s.ece:>6.3f}")
    return "\n".join(lines)
