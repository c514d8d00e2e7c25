"""Detection metrics shared by training, the model card and `aimusicd eval`.

Labels: 1 = AI(-like), 0 = human. Probabilities are P(AI). Verdict metrics count the verdicts
("ai", "human", "uncertain") the fusion gave.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    y = np.asarray(y, bool)
    score = np.asarray(score, float)
    pos, neg = score[y], score[~y]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    values = np.concatenate([pos, neg])[order]
    i = 0
    while i < len(values):               # average ranks over ties
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def log_loss(y: np.ndarray, logit: np.ndarray) -> float:
    """Mean binary cross-entropy of labels y given logits (stable for large |logit|)."""
    return float(np.mean(np.logaddexp(0, logit) - y * logit))


def recall_at_fpr(y: np.ndarray, score: np.ndarray, fpr: float = 0.01) -> float:
    """AI recall at the strictest threshold that keeps human false positives at or below `fpr`."""
    y = np.asarray(y, bool)
    score = np.asarray(score, float)
    neg = np.sort(score[~y])
    if len(neg) == 0 or not y.any():
        return float("nan")
    allowed = int(np.floor(fpr * len(neg)))
    threshold = neg[len(neg) - allowed - 1] if allowed < len(neg) else -np.inf
    return float(np.mean(score[y] > threshold))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    y = np.asarray(y, float)
    p = np.asarray(p, float)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            ece += sel.mean() * abs(p[sel].mean() - y[sel].mean())
    return float(ece)


@dataclass
class Scores:
    n_ai: int
    n_human: int
    balanced_accuracy: float    # binary decisions at p = 0.5 (the verdict figures follow)
    auc: float
    recall_at_1pct_fpr: float
    human_fp_rate: float        # human called "ai"
    ai_recall: float            # ai called "ai"
    ai_called_human: float      # ai called "human": the worst mistake
    uncertain_human: float
    uncertain_ai: float
    ece: float

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def score_all(y, p, labels) -> Scores:
    """Ranking figures from the probabilities, verdict figures from the verdicts given."""
    y = np.asarray(y, int)
    p = np.asarray(p, float)
    labels = np.asarray(labels)
    ai, hu = y == 1, y == 0
    called_ai = labels == "ai"
    called_human = labels == "human"
    uncertain = labels == "uncertain"
    tpr = float(called_ai[ai].mean()) if ai.any() else float("nan")
    binary = [float((p[ai] >= 0.5).mean()) if ai.any() else np.nan,
              float((p[hu] < 0.5).mean()) if hu.any() else np.nan]
    return Scores(
        n_ai=int(ai.sum()), n_human=int(hu.sum()),
        balanced_accuracy=float(np.nanmean(binary)),
        auc=roc_auc(y, p), recall_at_1pct_fpr=recall_at_fpr(y, p, 0.01),
        human_fp_rate=float(called_ai[hu].mean()) if hu.any() else float("nan"),
        ai_recall=tpr,
        ai_called_human=float(called_human[ai].mean()) if ai.any() else float("nan"),
        uncertain_human=float(uncertain[hu].mean()) if hu.any() else float("nan"),
        uncertain_ai=float(uncertain[ai].mean()) if ai.any() else float("nan"),
        ece=expected_calibration_error(y, p),
    )
