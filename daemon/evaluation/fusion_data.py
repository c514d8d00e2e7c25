"""The engines' evidence on many labelled examples, and each fusion model's P(AI) from it: what
the evaluation table scores, and what training fits the fusion and its thresholds on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engines.fingerprint import Match
from ..engines.fusion import Delivery, FusionParams, fusion_inputs
from ..engines.logistic import sigmoid


@dataclass
class FusionData:
    cnn: np.ndarray              # calibrated CNN logits
    demucs: np.ndarray           # head logits (nan where not measured)
    delivery: list[Delivery]     # codec evidence per example
    y: np.ndarray
    group: list[str]             # codec group the thresholds hold in: none | mp3 | ... | mp3-64 | ...
    images: np.ndarray | None = None   # image scores (nan where not measured; None: none are)
    weight: np.ndarray | None = None   # per row in the CNN path's fits (None: all alike)
    fingerprint: np.ndarray | None = None   # the best known generator's logit (nan: none known)
    matched: np.ndarray | None = None       # probability of a generator that fired (nan: none fired)

    def __post_init__(self) -> None:
        for name in ("images", "fingerprint", "matched"):
            if getattr(self, name) is None:
                setattr(self, name, np.full(len(self.y), np.nan))

    def subset(self, mask: np.ndarray) -> "FusionData":
        idx = np.nonzero(mask)[0]
        return FusionData(self.cnn[idx], self.demucs[idx], [self.delivery[i] for i in idx], self.y[idx],
                          [self.group[i] for i in idx], self.images[idx],
                          None if self.weight is None else self.weight[idx],
                          self.fingerprint[idx], self.matched[idx])

    def joined(self, other: "FusionData") -> "FusionData":
        """These rows and then other's (weights dropped: thresholds count every example fully)."""
        return FusionData(np.r_[self.cnn, other.cnn], np.r_[self.demucs, other.demucs],
                          self.delivery + other.delivery, np.r_[self.y, other.y], self.group + other.group,
                          np.r_[self.images, other.images], None, np.r_[self.fingerprint, other.fingerprint],
                          np.r_[self.matched, other.matched])

    def typical_values(self, i: int, sources: tuple[str, ...]) -> dict[str, float]:
        """Row i's evidence as the human limits read it (cf. fusion.Evidence.typical_values)."""
        cnn, demucs, images = self.evidence(i, sources)
        values = {"cnn_logit": cnn, "images_score": images, "demucs_logit": demucs}
        if "fingerprint" in sources and not np.isnan(self.fingerprint[i]):
            values["fingerprint_logit"] = float(self.fingerprint[i])
        return {**{k: v for k, v in values.items() if v is not None}, "bandlimit": self.delivery[i].bandlimit}

    def match(self, i: int, sources: tuple[str, ...]) -> Match | None:
        if "fingerprint" not in sources or np.isnan(self.matched[i]):
            return None
        return Match("generator", float(self.matched[i]), float("nan"), True)

    def evidence(self, i: int, sources: tuple[str, ...]) -> tuple[float | None, float | None, float | None]:
        """Row i's CNN logit, Demucs logit and image score, each None unless in `sources` and known."""
        def known(name: str, values: np.ndarray) -> float | None:
            return float(values[i]) if name in sources and not np.isnan(values[i]) else None
        return known("cnn", self.cnn), known("demucs", self.demucs), known("images", self.images)

    def inputs(self, i: int, sources: tuple[str, ...]) -> dict[str, float]:
        cnn, demucs, images = self.evidence(i, sources)
        return fusion_inputs(cnn, demucs, self.delivery[i], images)


# The fused probabilities the evaluation reports, and which evidence each uses. The fingerprint
# never enters a probability: it decides through its own threshold (a match) and the human limits.
ENGINE_SETS = {"cnn": ("cnn",), "demucs": ("demucs",), "cnn+img": ("cnn", "images", "fingerprint"),
               "fused": ("cnn", "images", "fingerprint", "demucs")}


def fused_probabilities(params: FusionParams, data: FusionData) -> dict[str, np.ndarray]:
    """P(AI) per example from each fusion model (nan where that model's inputs are missing)."""
    out = {}
    for key, sources in ENGINE_SETS.items():
        probs = []
        for i in range(len(data.y)):
            cnn, demucs, images = data.evidence(i, sources)
            if "demucs" in sources and demucs is None:
                probs.append(np.nan)
            else:
                probs.append(float(sigmoid(params.logit(cnn, demucs, data.delivery[i], images)[0])))
        out[key] = np.array(probs)
    return out
