"""The versioned JSON report of one analysis (schema "aimusicd.report/1"), and the report's exact
state as JSON (`dumps_state`/`loads_state`) for a job handed from one worker to the next."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .audio.codec import CodecHistory
from .engines.cnn import CnnEvidence, WindowScore
from .engines.demucs.engine import DemucsEvidence, Excerpt
from .engines.fingerprint import FingerprintEvidence, Match
from .engines.images import ImageEvidence
from .engines.packs import PackInputs
from .files import replaced

SCHEMA = "aimusicd.report/1"


@dataclass
class Report:
    file: str
    sha256: str
    mode: str
    duration_s: float
    sample_rate: int
    channels: int
    codec: CodecHistory
    verdict: str
    probability_ai: float
    decided_by: str
    cnn: CnnEvidence | None
    images: ImageEvidence | None   # measured with the CNN, in the fast pass
    demucs: DemucsEvidence
    thresholds: dict[str, float]
    fusion_model: str
    fingerprint: FingerprintEvidence | None = None   # fast pass too
    matched: str | None = None      # the known generator whose fingerprint fired
    atypical: list[str] = field(default_factory=list)   # evidence outside the human range
    timings: dict[str, float] = field(default_factory=dict)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    version: str = __version__

    @property
    def engines_ran(self) -> str:
        ran = (["cnn"] if self.cnn else []) + (["demucs"] if self.demucs.ran else [])
        return "+".join(ran)

    def to_dict(self) -> dict[str, Any]:
        cnn = None
        if self.cnn is not None:
            cnn = {
                "model": self.cnn.model, "model_sha256": self.cnn.model_sha256,
                "probability_ai": round(self.cnn.probability_ai, 6), "logit": round(self.cnn.logit, 6),
                "windows": [asdict(w) for w in self.cnn.windows],
            }
        images = None if self.images is None else {
            "score": self.images.score, "latent_rate_hz": self.images.latent_rate_hz}
        d = self.demucs
        demucs = {
            "ran": d.ran, "reason": d.reason, "model": d.model, "model_sha256": d.model_sha256,
            "device": d.device, "excerpts": [asdict(e) for e in d.excerpts], "features": d.features,
            "probability_ai": None if d.probability_ai is None else round(d.probability_ai, 6),
        }
        return {
            "schema": SCHEMA,
            "file": self.file,
            "sha256": self.sha256,
            "duration_s": round(self.duration_s, 3),
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "codec": {**asdict(self.codec), "reason": self.codec.reason},
            "mode": self.mode,
            "verdict": self.verdict,
            "probability_ai": round(self.probability_ai, 6),
            "decided_by": self.decided_by,
            "matched": self.matched,
            "atypical": self.atypical,
            "thresholds": self.thresholds,
            "fusion_model": self.fusion_model,
            "engines": {"cnn": cnn, "images": images,
                        "fingerprint": None if self.fingerprint is None else self.fingerprint.to_dict(),
                        "demucs": demucs},
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "created": self.created,
            "version": self.version,
        }


def _finite(value: Any) -> Any:
    """NaN and infinities are not JSON: evidence that is not a number is written as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_report(report: Report, dest: Path) -> Path:
    text = json.dumps(_finite(report.to_dict()), indent=2, allow_nan=False)
    with replaced(dest) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return dest


def dumps_state(report: Report) -> str:
    """Every field as it is (no rounding, NaN kept): `loads_state` gives back an equal Report, so
    evidence that crosses a restart fuses exactly as it would have in memory."""
    return json.dumps(asdict(report), default=_plain)


def loads_state(text: str) -> Report:
    d = json.loads(text)
    cnn, images, fingerprint, demucs = d["cnn"], d["images"], d["fingerprint"], d["demucs"]
    d.update(
        codec=CodecHistory(**d["codec"]),
        cnn=None if cnn is None else CnnEvidence(
            **{**cnn, "windows": [WindowScore(**w) for w in cnn["windows"]], "embedding": _array(cnn["embedding"])}),
        images=None if images is None else ImageEvidence(**images),
        fingerprint=None if fingerprint is None else FingerprintEvidence(
            **{**fingerprint, "matches": [Match(**m) for m in fingerprint["matches"]],
               "pack_inputs": _pack_inputs(fingerprint["pack_inputs"])}),
        demucs=DemucsEvidence(**{**demucs, "excerpts": [Excerpt(**e) for e in demucs["excerpts"]]}),
    )
    return Report(**d)


def _array(values: list[float] | None) -> np.ndarray | None:
    return None if values is None else np.asarray(values, np.float32)   # the engines' dtype: exact


def _pack_inputs(d: dict | None) -> PackInputs | None:
    return None if d is None else PackInputs(**{**d, "spectrum": _array(d["spectrum"]),
                                                "embedding": _array(d["embedding"])})


def _plain(value: Any) -> Any:
    """numpy scalars and arrays (evidence straight from the engines) as Python numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
