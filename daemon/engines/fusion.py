"""Fusion: one calibrated probability and a verdict from whichever evidence there is, aware of the
input's codec history (lossy input moves weight from the CNN to the Demucs engine, as learned in
training).

The fused logit is the CNN-only model's plus a correction per further source of evidence, each
fitted on top of what came before it (stacking): the spectral-image score (every file has one, live
windows none) and then the Demucs engine's (far fewer examples carry it). A correction that has
learned nothing stays near zero, and one that did not help on held-out music is zeroed in training,
so the fused verdict is never worse than the CNN's by more than noise.

The verdict has three values. "ai": the fused probability is above a threshold that holds the
false-positive rate on human calibration music, or a known generator's fingerprint matched.
"human" is said only where the probability is low *and* every piece of evidence lies inside the
range human calibration music spans (a file whose evidence is unlike human music, even if it is
unlike the fakes too, is not vouched for). Everything else is "uncertain", an honest answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..audio.codec import CodecHistory
from ..errors import ModelError
from ..hashing import sha256_file
from .fingerprint import FingerprintEvidence, Match
from .logistic import LogisticModel, sigmoid

PACKAGED_FUSION = Path(__file__).resolve().parents[1] / "models" / "fusion.json"
VERDICTS = ("ai", "human", "uncertain")


@dataclass(frozen=True)
class Verdict:
    label: str
    probability_ai: float
    decided_by: str
    matched: str | None = None         # the known generator whose fingerprint fired
    atypical: tuple[str, ...] = ()     # evidence outside the human range (why not "human")


@dataclass(frozen=True)
class Evidence:
    """What the engines measured on one input (None: not measured)."""
    cnn_logit: float | None = None
    images_score: float | None = None
    demucs_logit: float | None = None
    fingerprint: FingerprintEvidence | None = None

    def typical_values(self, delivery: Delivery) -> dict[str, float]:
        """Each piece of evidence on the scale the human limits are set on, the band included."""
        values = {"cnn_logit": self.cnn_logit, "images_score": self.images_score,
                  "demucs_logit": self.demucs_logit,
                  "fingerprint_logit": self.fingerprint.best_logit if self.fingerprint else None}
        return {**{k: float(v) for k, v in values.items() if v is not None}, "bandlimit": delivery.bandlimit}


def decide(p: float, values: dict[str, float], match: Match | None, ai_threshold: float,
           human_threshold: float, human_limits: dict[str, float]) -> tuple[str, float, tuple[str, ...]]:
    """The verdict, the probability it reports and the evidence that kept it from "human"."""
    if match is not None:
        return "ai", max(p, match.probability), ()
    if p >= ai_threshold:
        return "ai", p, ()
    atypical = tuple(k for k, v in values.items() if k in human_limits and v > human_limits[k])
    if p <= human_threshold and not atypical:
        return "human", p, ()
    return "uncertain", p, atypical


@dataclass(frozen=True)
class FusionParams:
    name: str
    cnn_only: LogisticModel
    demucs_only: LogisticModel
    images_correction: LogisticModel   # added to cnn_only's logit when the image score is known
    demucs_correction: LogisticModel   # added on top when the Demucs engine ran too
    ai_threshold: float
    human_threshold: float
    lossy_band: tuple[float, float]   # auto mode: with lossy input, run Demucs for fast-pass p inside this
    # The highest value of each piece of evidence ("cnn_logit", "images_score", "demucs_logit",
    # "fingerprint_logit") at which "human" may still be said: the range of human calibration music;
    # and "bandlimit", fixed at BANDLIMIT_LIMIT.
    human_limits: dict[str, float] = field(default_factory=dict)
    narrow_human_limits: dict[str, float] = field(default_factory=dict)   # band edge below NARROW_BAND_HZ

    def limits_for(self, delivery: Delivery) -> dict[str, float]:
        """The human limits for this delivery's band (the wide band's where no narrow ones were fitted)."""
        if delivery.bandlimit > NARROW_BANDLIMIT and self.narrow_human_limits:
            return self.narrow_human_limits
        return self.human_limits

    def to_dict(self) -> dict:
        return {
            "name": self.name, "cnn_only": self.cnn_only.to_dict(),
            "demucs_only": self.demucs_only.to_dict(),
            "images_correction": self.images_correction.to_dict(),
            "demucs_correction": self.demucs_correction.to_dict(),
            "ai_threshold": self.ai_threshold, "human_threshold": self.human_threshold,
            "lossy_band": list(self.lossy_band), "human_limits": self.human_limits,
            "narrow_human_limits": self.narrow_human_limits,
        }

    def logit(self, cnn_logit: float | None, demucs_logit: float | None, delivery: Delivery,
              images_score: float | None = None) -> tuple[float, str]:
        """The fused logit from whichever evidence there is, and which of it counted."""
        row = fusion_inputs(cnn_logit, demucs_logit, delivery, images_score)
        if cnn_logit is not None:
            logit, used = self.cnn_only.logit_of(row), ["cnn"]
            if images_score is not None and self.weighs_images:
                logit += self.images_correction.logit_of(row)
                used.append("images")
            if demucs_logit is not None and self.weighs_demucs:
                logit += self.demucs_correction.logit_of(row)
                used.append("demucs")
            return logit, "+".join(used)
        if demucs_logit is not None:
            return self.demucs_only.logit_of(row), "demucs"
        raise ValueError("no engine evidence to fuse")

    @property
    def weighs_demucs(self) -> bool:
        """False where training zeroed the Demucs correction (it did not help on held-out tracks):
        a verdict is then decided without it, and says so, even when Demucs ran."""
        return _weighs(self.demucs_correction)

    @property
    def weighs_images(self) -> bool:
        return _weighs(self.images_correction)

    @classmethod
    def from_dict(cls, d: dict) -> "FusionParams":
        return cls(
            name=d["name"], cnn_only=LogisticModel.from_dict(d["cnn_only"]),
            demucs_only=LogisticModel.from_dict(d["demucs_only"]),
            images_correction=LogisticModel.from_dict(d["images_correction"]),
            demucs_correction=LogisticModel.from_dict(d["demucs_correction"]),
            ai_threshold=float(d["ai_threshold"]),
            human_threshold=float(d["human_threshold"]),
            lossy_band=(float(d["lossy_band"][0]), float(d["lossy_band"][1])),
            human_limits={k: float(v) for k, v in d.get("human_limits", {}).items()},
            narrow_human_limits={k: float(v) for k, v in d.get("narrow_human_limits", {}).items()},
        )


def _weighs(correction: LogisticModel) -> bool:
    return any(c != 0.0 for c in correction.coef)


FULL_BAND_HZ = 20000.0
# "human" is never said below this band edge: there (16 kHz files: low-rate generators write them)
# the fast pass does not tell our fakes from human calibration music (the model card's band table).
MIN_HUMAN_BAND_HZ = 9000.0
BANDLIMIT_LIMIT = round(1.0 - MIN_HUMAN_BAND_HZ / FULL_BAND_HZ, 4)   # the human limit on `bandlimit`
# Below this band edge (MP3 at 64 kbps, low-rate files) the human limits are the narrow band's own.
NARROW_BAND_HZ = 14000.0
NARROW_BANDLIMIT = round(1.0 - NARROW_BAND_HZ / FULL_BAND_HZ, 4)


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


# Each source of evidence as the fusion reads it: the engines' logits, and the image score (the
# log of the spectral-image coherence over chance, on its own scale).
EVIDENCE = {"cnn": "cnn_logit", "demucs": "demucs_logit", "images": "images_score"}


def fusion_inputs(cnn_logit: float | None, demucs_logit: float | None, delivery: Delivery,
                  images_score: float | None = None) -> dict[str, float]:
    """The named inputs every fusion model draws its features from: each piece of evidence alone
    and scaled by the codec evidence, so that a lossy or band-limited input can shift the weights."""
    q, b = (1.0 if delivery.lossy else 0.0), delivery.bandlimit
    row = {"lossy": q, "bandlimit": b}
    for source, value in (("cnn", cnn_logit), ("demucs", demucs_logit), ("images", images_score)):
        if value is not None:
            name = EVIDENCE[source]
            row.update({name: value, f"{name}_x_lossy": value * q, f"{name}_x_bandlimit": value * b})
    return row


def model_features(*sources: str) -> list[str]:
    """The feature list of a fusion model over the given evidence ("cnn", "demucs", "images")."""
    names = ["lossy", "bandlimit"]
    for source in sources:
        names += engine_features(source)
    return names


def engine_features(source: str) -> list[str]:
    """One source's evidence alone and scaled by the codec evidence (a correction's inputs)."""
    name = EVIDENCE[source]
    return [name, f"{name}_x_lossy", f"{name}_x_bandlimit"]


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

    def label(self, p: float, values: dict[str, float] | None = None) -> str:
        """The verdict for a probability alone (live windows), or with the evidence behind it."""
        return decide(p, values or {}, None, self.ai_threshold, self.human_threshold,
                      self.params.human_limits)[0]

    def cnn_probability(self, cnn_logit: float, delivery: Delivery,
                        images_score: float | None = None) -> float:
        """P(AI) from the fast pass alone: the CNN and, for files, the image score."""
        return float(sigmoid(self.params.logit(cnn_logit, None, delivery, images_score)[0]))

    def demucs_wanted(self, p_cnn: float, delivery: Delivery) -> str | None:
        """Auto mode: why the Demucs engine should run after the CNN, or None if it need not."""
        if self.label(p_cnn) == "uncertain":
            return "cnn uncertain"
        lo, hi = self.params.lossy_band
        if delivery.lossy and lo < p_cnn < hi:
            return "lossy input and weak cnn evidence"
        return None

    def combine(self, evidence: Evidence, delivery: Delivery) -> Verdict:
        logit, by = self.params.logit(evidence.cnn_logit, evidence.demucs_logit, delivery,
                                      evidence.images_score)
        match = evidence.fingerprint.matched if evidence.fingerprint else None
        label, p, atypical = decide(float(sigmoid(logit)), evidence.typical_values(delivery), match,
                                    self.ai_threshold, self.human_threshold, self.params.limits_for(delivery))
        if match is not None:
            by += "+fingerprint"
        return Verdict(label, p, by, match.name if match else None, atypical)
