"""DemucsEngine: separate a few excerpts with HTDemucs, measure the residual and the stems' bleed,
and turn the features into a calibrated probability with a small learned head."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...audio import Audio
from ...errors import ModelError
from ...hashing import sha256_file
from ..logistic import LogisticModel, sigmoid
from .features import aggregate, excerpt_features
from .separation import Separator

PACKAGED_HEAD = Path(__file__).resolve().parents[2] / "models" / "demucs_head.json"
EDGE_SKIP = 0.05   # fade-ins and fade-outs say little about the production; skip 5 % at each end


@dataclass
class Excerpt:
    start: float
    end: float


@dataclass
class DemucsEvidence:
    ran: bool
    reason: str
    model: str = ""
    model_sha256: str = ""
    device: str = ""          # cpu | cuda | mps: results agree to rounding, not bit for bit
    excerpts: list[Excerpt] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)
    probability_ai: float | None = None
    logit: float | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class DemucsHead:
    name: str
    model: LogisticModel
    sha256: str

    @classmethod
    def load(cls, path: Path = PACKAGED_HEAD) -> "DemucsHead":
        if not path.is_file():
            raise ModelError(f"Demucs feature head not found at {path}; rebuild it with `aimusicd train`")
        try:
            data = json.loads(path.read_text())
            return cls(data["name"], LogisticModel.from_dict(data["model"]), sha256_file(path))
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{path}: cannot load the Demucs feature head ({exc})") from None


def choose_excerpts(mono: np.ndarray, length: int, count: int) -> list[tuple[int, int]]:
    """Up to `count` excerpts of `length` samples, spread over the track: the track (minus its
    edges) is cut into `count` zones and each zone gives its loudest half-overlapping candidate,
    so that silence and breaks are avoided without bunching the excerpts together."""
    total = mono.shape[-1]
    if total <= length:
        return [(0, total)]
    lo = int(total * EDGE_SKIP) if total * (1 - 2 * EDGE_SKIP) >= length * count else 0
    hi = total - lo - length
    if hi <= lo:
        lo, hi = 0, total - length
    stride = max(1, length // 2)
    candidates = list(range(lo, hi + 1, stride))
    if candidates[-1] != hi:
        candidates.append(hi)
    energy = np.array([float(np.mean(mono[s:s + length] ** 2)) for s in candidates])
    zones = np.array_split(np.arange(len(candidates)), min(count, len(candidates)))
    chosen = [candidates[int(zone[np.argmax(energy[zone])])] for zone in zones if len(zone)]
    return [(s, s + length) for s in sorted(set(chosen))]


class DemucsEngine:
    def __init__(self, separator: Separator, head: DemucsHead | None, model_name: str,
                 model_sha256: str, excerpts: int = 3):
        self.separator = separator
        self.head = head
        self.model_name = model_name
        self.model_sha256 = model_sha256
        self.excerpts = excerpts

    def measure(self, stereo: np.ndarray) -> tuple[list[Excerpt], dict[str, float], list[dict]]:
        """The excerpts, aggregated features and per-excerpt features of a (2, n) signal."""
        return self._measure(stereo.mean(axis=0), lambda start, end: stereo[:, start:end])

    def _measure(self, mono: np.ndarray, excerpt: Callable[[int, int], np.ndarray]
                 ) -> tuple[list[Excerpt], dict[str, float], list[dict]]:
        """Choose the excerpts on the mid, then read and separate them one at a time (batching is
        slower on CPU and doubles the peak memory)."""
        rate = self.separator.sample_rate
        spans = choose_excerpts(mono, self.separator.segment_samples, self.excerpts)
        per_excerpt = []
        for start, end in spans:
            mix = excerpt(start, end)
            stems = self.separator.separate(mix[None])[0]
            per_excerpt.append(excerpt_features(mix, stems, rate))
        excerpts = [Excerpt(round(s / rate, 3), round(e / rate, 3)) for s, e in spans]
        return excerpts, aggregate(per_excerpt), per_excerpt

    def analyze(self, audio: Audio, reason: str) -> DemucsEvidence:
        """A decoded file: only its excerpts are read as stereo (level-normalised, at the engine rate)."""
        if self.head is None:
            raise ModelError("the Demucs engine has no feature head loaded")
        started = time.perf_counter()
        excerpts, features, _ = self._measure(audio.mono, audio.normalised)
        logit = self.head.model.logit_of(features)
        return DemucsEvidence(
            ran=True, reason=reason, model=self.model_name, model_sha256=self.model_sha256,
            device=self.separator.device.type, excerpts=excerpts,
            features={k: round(v, 6) for k, v in features.items()},
            probability_ai=float(sigmoid(logit)), logit=float(logit),
            seconds=time.perf_counter() - started,
        )
