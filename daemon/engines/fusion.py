"""Fusion: one calibrated probability and a verdict from whichever engines ran, aware of the input's
codec history (lossy input moves weight from the CNN to the Demucs engine, as learned in training).

With both engines the fused logit is the CNN-only model's plus a Demucs correction fitted on top of
it (stacking): far fewer examples carry Demucs features than CNN scores, and a correction that
has learned nothing stays near zero, so the fused verdict is never worse than the CNN's by more
than noise.

The verdict has three values. "uncertain" is an honest answer: thresholds are chosen on held-out
data so that human music is almost never called "ai".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.codec import CodecHistory
from ..errors import ModelError
from ..hashing import sha256_file
from .logistic import LogisticModel, sigmoid

PACKAGED_FUSION = Path(__file__).resolve().parents[1] / "models" / "fusion.json"
VERDICTS = ("ai", "human", "uncertain")


@dataclass(frozen=True)
class Verdict:
    label: str
    probability_ai: float
    decided_by: str


@dataclass(frozen=True)
class FusionParams:
    name: str
    cnn_only: LogisticModel
    demucs_only: LogisticModel
    demucs_correction: LogisticModel   # added to cnn_only's logit when both engines ran
    ai_threshold: float
    human_threshold: float
    lossy_band: tuple[float, float]   # auto mode: with lossy input, run Demucs for CNN p inside this

    def to_dict(self) -> dict:
        return {
            "name": self.name, "cnn_only": self.cnn_only.to_dict(),
            "demucs_only": self.demucs_only.to_dict(),
            "demucs_correction": self.demucs_correction.to_dict(),
            "ai_threshold": self.ai_threshold, "human_threshold": self.human_threshold,
            "lossy_band": list(self.lossy_band),
        }

    def logit(self, cnn_logit: float | None, demucs_logit: float | None,
              delivery: Delivery) -> tuple[float, str]:
        """The fused logit from whichever engines ran, and which ones that was."""
        row = fusion_inputs(cnn_logit, demucs_logit, delivery)
        if cnn_logit is not None and demucs_logit is not None and self.weighs_demucs:
            return self.cnn_only.logit_of(row) + self.demucs_correction.logit_of(row), "cnn+demucs"
        if cnn_logit is not None:
            return self.cnn_only.logit_of(row), "cnn"
        if demucs_logit is not None:
            return self.demucs_only.logit_of(row), "demucs"
        raise ValueError("no engine evidence to fuse")

    @property
    def weighs_demucs(self) -> bool:
        """False where training zeroed the Demucs correction (it did not help on held-out tracks):
        a verdict is then the CNN's alone, and says so, even when Demucs ran."""
        return any(c != 0.0 for c in self.demucs_correction.coef)

    @classmethod
    def from_dict(cls, d: dict) -> "FusionParams":
        return cls(
            name=d["name"], cnn_only=LogisticModel.from_dict(d["cnn_only"]),
            demucs_only=LogisticModel.from_dict(d["demucs_only"]),
            demucs_correction=LogisticModel.from_dict(d["demucs_correction"]),
            ai_threshold=float(d["ai_threshold"]),
            human_threshold=float(d["human_threshold"]),
            lossy_band=(float(d["lossy_band"][0]), float(d["lossy_band"][1])),
        )


FULL_BAND_HZ = 20000.0


@dataclass(frozen=True)
class Delivery:
    """What the fusion knows of the input's codec history."""

    lossy: bool            # a lossy container, or a lossy encoder's band edge found in the audio
    bandlimit: float       # 0 for full band, rising as the band edge falls (0.45 at 11 kHz)

    @classmethod
    def of(cls, codec: CodecHistory) -> "Delivery":
        return cls.of_band(codec.lossy, codec.bandwidth_hz)

    @classmethod
    def of_band(cls, lossy: bool, bandwidth_hz: float) -> "Delivery":
        return cls(lossy, float(np.clip(1.0 - bandwidth_hz / FULL_BAND_HZ, 0.0, 1.0)))


LIVE = Delivery(lossy=False, bandlimit=0.0)   # live input: PCM straight from the interface


def fusion_inputs(cnn_logit: float | None, demucs_logit: float | None, delivery: Delivery) -> dict[str, float]:
    """The named inputs every fusion model draws its features from: each engine's logit alone and
    scaled by the codec evidence, so that a lossy or band-limited input can shift the weights."""
    q, b = (1.0 if delivery.lossy else 0.0), delivery.bandlimit
    row = {"lossy": q, "bandlimit": b}
    for name, logit in (("cnn_logit", cnn_logit), ("demucs_logit", demucs_logit)):
        if logit is not None:
            row.update({name: logit, f"{name}_x_lossy": logit * q, f"{name}_x_bandlimit": logit * b})
    return row


def model_features(*engines: str) -> list[str]:
    """The feature list of a fusion model over the given engines ("cnn", "demucs")."""
    names = ["lossy", "bandlimit"]
    for engine in engines:
        names += engine_features(engine)
    return names


def engine_features(engine: str) -> list[str]:
    """One engine's logit alone and scaled by the codec evidence (the Demucs correction's inputs)."""
    return [f"{engine}_logit", f"{engine}_logit_x_lossy", f"{engine}_logit_x_bandlimit"]


class Fusion:
    def __init__(self, params: FusionParams, sha256: str = "",
                 ai_threshold: float | None = None, human_threshold: float | None = None):
        self.params = params
        self.sha256 = sha256
        self.ai_threshold = params.ai_threshold if ai_threshold is None else ai_threshold
        self.human_threshold = params.human_threshold if human_threshold is None else human_threshold
        if not self.human_threshold < self.ai_threshold:
            raise ModelError(
                f"human_threshold ({self.human_threshold}) must be below ai_threshold ({self.ai_threshold})"
            )

    @classmethod
    def load(cls, path: Path = PACKAGED_FUSION, **thresholds) -> "Fusion":
        if not path.is_file():
            raise ModelError(f"fusion model not found at {path}; rebuild it with `aimusicd train`")
        try:
            params = FusionParams.from_dict(json.loads(path.read_text()))
        except KeyError as exc:
            raise ModelError(f"{path}: not a fusion model of this version (no {exc}); rebuild it with "
                             "`aimusicd train`") from None
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: cannot load the fusion model ({exc})") from None
        return cls(params, sha256_file(path), **thresholds)

    def label(self, p: float) -> str:
        if p >= self.ai_threshold:
            return "ai"
        if p <= self.human_threshold:
            return "human"
        return "uncertain"

    def cnn_probability(self, cnn_logit: float, delivery: Delivery) -> float:
        return self.params.cnn_only.probability_of(fusion_inputs(cnn_logit, None, delivery))

    def demucs_wanted(self, p_cnn: float, delivery: Delivery) -> str | None:
        """Auto mode: why the Demucs engine should run after the CNN, or None if it need not."""
        if self.label(p_cnn) == "uncertain":
            return "cnn uncertain"
        lo, hi = self.params.lossy_band
        if delivery.lossy and lo < p_cnn < hi:
            return "lossy input and weak cnn evidence"
        return None

    def combine(self, cnn_logit: float | None, demucs_logit: float | None, delivery: Delivery) -> Verdict:
        logit, by = self.params.logit(cnn_logit, demucs_logit, delivery)
        p = float(sigmoid(logit))
        return Verdict(self.label(p), p, by)
