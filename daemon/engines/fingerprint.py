"""Spectral-fingerprint engine (after Deezer's "fakeprint", ISMIR 2025): the long-term average
spectrum of the whole track at fine resolution, its lower envelope removed, leaves the narrow
stationary peaks a generator's decoder puts at fixed frequencies; a small linear model per known
generator learns where they sit.

It recognises the generators it was taught, and only those: the peaks' *positions* are the
fingerprint. So it never speaks alone for "human": a file it does not match is judged by the
position-free evidence (CNN, image score, Demucs), and a match turns the verdict to "ai" only above
that generator's own threshold, set on human music. Bins above the detected band edge are zeroed,
so lossy input is handled by construction (a codec's cut removes bins, never adds peaks there).

Cost: one 16384-point float32 FFT per frame, at most MAX_FRAMES frames spread over the track: about
15 ms per track on one core, whatever its length.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..audio.filters import grey_opening
from ..errors import ModelError
from ..hashing import sha256_file
from .logistic import LogisticModel, sigmoid

if TYPE_CHECKING:
    from .packs import PackInputs, PackModel

N_FFT = 16384            # 2.7 Hz bins at 44.1 kHz
MAX_FRAMES = 96          # frames (26 s) spread evenly over a longer track: stationary peaks need no more
ENVELOPE_HZ = 60.0       # wider than a decoder's peak, narrower than a formant: what is removed
POOL = 8                 # peak heights max-pooled to 21.5 Hz: a peak may wander a bin or two
LOW_HZ = 30.0
EDGE_MARGIN_HZ = 250.0   # below the band edge: the codec's transition band is not a peak
RESIDUAL_CAP_DB = 30.0
PEAK_DB = 6.0            # a pooled bin this far above the envelope is listed as a peak
MAX_PEAKS = 12
GENERATORS_DIR = Path(__file__).resolve().parents[1] / "models" / "generators"


@dataclass(frozen=True)
class Spectrum:
    """The pooled peak spectrum of one track: dB above the lower envelope per 21.5 Hz bin (0 above
    the band edge)."""
    residual_db: np.ndarray
    hz_step: float
    band_edge_hz: float

    def peaks(self) -> list[float]:
        idx = np.nonzero(self.residual_db >= PEAK_DB)[0]
        top = idx[np.argsort(-self.residual_db[idx])][:MAX_PEAKS]
        return sorted(round(float((i + 0.5) * self.hz_step), 1) for i in top)


def feature_names(n: int) -> list[str]:
    return [f"bin{i}" for i in range(n)]


def long_term_spectrum(mono: np.ndarray, rate: int, band_edge_hz: float) -> Spectrum:
    """The whole track's lower-envelope-removed long-term spectrum, pooled."""
    hop = N_FFT
    count = max(1, (len(mono) - N_FFT) // hop + 1) if len(mono) >= N_FFT else 0
    if count == 0:
        frames = np.pad(mono, (0, N_FFT - len(mono)))[None]
    else:
        starts = np.linspace(0, len(mono) - N_FFT, min(count, MAX_FRAMES)).astype(int)
        frames = np.stack([mono[s:s + N_FFT] for s in starts])
    window = np.hanning(N_FFT).astype(np.float32)
    spec = np.fft.rfft(frames.astype(np.float32) * window, axis=1)   # float32 throughout
    power = spec.real ** 2 + spec.imag ** 2
    ltas = 10 * np.log10(power.mean(axis=0) + 1e-20)
    bin_hz = rate / N_FFT
    width = max(3, int(round(ENVELOPE_HZ / bin_hz)) | 1)
    residual = np.clip(ltas - grey_opening(ltas, size=width), 0.0, RESIDUAL_CAP_DB)
    freqs = np.arange(len(ltas)) * bin_hz
    top = min(band_edge_hz - EDGE_MARGIN_HZ, rate / 2 - EDGE_MARGIN_HZ)
    residual[(freqs < LOW_HZ) | (freqs > top)] = 0.0
    n = len(residual) // POOL
    pooled = residual[:n * POOL].reshape(n, POOL).max(axis=1)
    return Spectrum(pooled.astype(np.float32), bin_hz * POOL, float(band_edge_hz))


@dataclass(frozen=True)
class GeneratorFingerprint:
    """One known generator: a logistic model over the peak spectrum, Platt-calibrated, and the
    probability above which it matches (set on human music: a match is an "ai" verdict)."""
    name: str
    model: LogisticModel
    threshold: float
    description: str = ""
    metrics: dict = field(default_factory=dict)

    def logit(self, spectrum: Spectrum) -> float:
        return self.logit_of_spectrum(spectrum.residual_db)

    def logit_of_spectrum(self, residual_db: np.ndarray) -> float:
        return float(self.model.logit(np.asarray(residual_db, np.float64)[None])[0])

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "threshold": self.threshold,
                "metrics": self.metrics, "model": self.model.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "GeneratorFingerprint":
        return cls(d["name"], LogisticModel.from_dict(d["model"]), float(d["threshold"]),
                   d.get("description", ""), d.get("metrics", {}))

    @classmethod
    def load(cls, path: Path) -> "GeneratorFingerprint":
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{path}: cannot load the generator fingerprint ({exc})") from None


@dataclass
class Match:
    name: str
    probability: float
    logit: float
    fired: bool
    pack: bool = False      # a model pack of the user's (`aimusicd learn`), not a shipped model

    def to_dict(self) -> dict:
        return {"name": self.name, "probability": round(self.probability, 6),
                "logit": round(self.logit, 4), "fired": self.fired, "pack": self.pack}


@dataclass
class FingerprintEvidence:
    band_edge_hz: float
    peaks_hz: list[float]
    matches: list[Match]            # every known generator, best first
    residual_db: list[float]        # the pooled peak spectrum, for the report's picture
    hz_step: float
    seconds: float = 0.0
    pack_inputs: PackInputs | None = field(default=None, repr=False, compare=False)   # what packs read (not reported)

    @property
    def matched(self) -> Match | None:
        """The best generator that fired, if any."""
        return next((m for m in self.matches if m.fired), None)

    @property
    def best_logit(self) -> float | None:
        """The most generator-like logit of any shipped generator (None: none known). Packs are
        left out: the human limits were set on the shipped ones, and a pack speaks only by firing."""
        return max((m.logit for m in self.matches if not m.pack), default=None)

    def to_dict(self) -> dict:
        m = self.matched
        return {"band_edge_hz": round(self.band_edge_hz, 1), "peaks_hz": self.peaks_hz,
                "matched": m.name if m else None, "matches": [x.to_dict() for x in self.matches],
                "hz_step": round(self.hz_step, 4), "residual_db": [round(float(v), 2) for v in self.residual_db]}


class FingerprintEngine:
    """The known generators' fingerprints (the shipped ones and any others given) and the user's
    model packs (`aimusicd learn`), loaded once. Packs read the fast pass's other evidence too (the
    CNN's embedding, the image score) and, those learned with `--demucs`, the Demucs features: such
    a pack is scored by `with_demucs` once Demucs has run, and not at all where it did not."""

    def __init__(self, generators: list[GeneratorFingerprint], sha256: dict[str, str] | None = None,
                 packs: list[PackModel] | None = None):
        self.generators = generators
        self.sha256 = sha256 or {}
        self.packs = list(packs or [])

    @classmethod
    def load(cls, folder: Path = GENERATORS_DIR, extra: list[GeneratorFingerprint] | None = None,
             packs: list[PackModel] | None = None) -> "FingerprintEngine":
        files = sorted(folder.glob("*.json")) if folder.is_dir() else []
        generators = [GeneratorFingerprint.load(f) for f in files] + list(extra or [])
        return cls(generators, {f.stem: sha256_file(f) for f in files}, packs)

    def with_thresholds(self, own: dict[str, float]) -> "FingerprintEngine":
        """Each generator's and pack's threshold as `aimusicd calibrate` set it, where it did."""
        self.generators = [replace(g, threshold=own.get(g.name, g.threshold)) for g in self.generators]
        self.packs = [replace(p, threshold=own.get(p.name, p.threshold)) for p in self.packs]
        return self

    def measure(self, mono: np.ndarray, rate: int, band_edge_hz: float, embedding: np.ndarray | None = None,
                images_score: float | None = None) -> FingerprintEvidence:
        """The spectrum and every generator's match; packs too, from the CNN embedding and the
        image score of the same pass where given."""
        from .packs import PackInputs

        t0 = time.perf_counter()
        spectrum = long_term_spectrum(mono, rate, band_edge_hz)
        matches = []
        for g in self.generators:
            z = g.logit(spectrum)
            p = float(sigmoid(z))
            matches.append(Match(g.name, p, z, p >= g.threshold))
        inputs = PackInputs(spectrum.residual_db, embedding, images_score)
        matches += self._pack_matches(inputs, [p for p in self.packs if not p.needs_demucs])
        matches.sort(key=lambda m: -m.logit)
        return FingerprintEvidence(band_edge_hz, spectrum.peaks(), matches,
                                   spectrum.residual_db.tolist(), spectrum.hz_step,
                                   time.perf_counter() - t0, inputs)

    def with_demucs(self, evidence: FingerprintEvidence, demucs_features: dict[str, float]) -> FingerprintEvidence:
        """The evidence with the matches of the packs learned with --demucs added (Demucs ran)."""
        wanted = [p for p in self.packs if p.needs_demucs]
        if not wanted or evidence.pack_inputs is None or not demucs_features:
            return evidence
        evidence.pack_inputs = replace(evidence.pack_inputs, demucs=dict(demucs_features))
        evidence.matches = sorted([m for m in evidence.matches if m.name not in {p.name for p in wanted}]
                                  + self._pack_matches(evidence.pack_inputs, wanted), key=lambda m: -m.logit)
        return evidence

    @staticmethod
    def _pack_matches(inputs: PackInputs, packs: list[PackModel]) -> list[Match]:
        matches = []
        for pack in packs:
            z = pack.logit(inputs)
            if z is None:
                continue          # a piece it reads was not measured (e.g. live windows: no embedding)
            p = float(sigmoid(z))
            matches.append(Match(pack.name, p, z, p >= pack.threshold, pack=True))
        return matches
