"""What a report page shows, read from an `aimusicd.report/1` document: typed, with every optional
part (fingerprint, Demucs, the audio itself) allowed to be missing, as in older reports."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AimusicError

PACKAGED_HUMAN_REFERENCE = Path(__file__).resolve().parents[1] / "models" / "human_reference.json"
ENVELOPE_POINTS = 1200       # min/max pairs drawn for the waveform: finer than the figure's pixels


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    p: float


@dataclass(frozen=True)
class Fingerprint:
    score: float | None
    band_edge_hz: float | None
    peaks_hz: list[float]
    matched: str | None
    matches: list[tuple[str, float]]
    ltas_db: list[float] | None
    ltas_hz_step: float | None
    packs: tuple[str, ...] = ()     # the matches that are the user's model packs (`aimusicd learn`)


@dataclass(frozen=True)
class Envelope:
    """The waveform, reduced to the min and max of the mono signal in equal slices of time."""
    times: np.ndarray
    lows: np.ndarray
    highs: np.ndarray


@dataclass(frozen=True)
class HumanRange:
    p05: float
    p50: float
    p95: float


@dataclass
class ReportView:
    doc: dict[str, Any]
    source: Path | None                  # the .aimusic.json it was read from, if any
    envelope: Envelope | None = None     # None when the audio could not be read
    human_reference: dict[str, HumanRange] = field(default_factory=dict)

    # -- the top line ----------------------------------------------------------------------------
    @property
    def file(self) -> str:
        return self.doc.get("file", "")

    @property
    def name(self) -> str:
        return Path(self.file).name or "(unnamed)"

    @property
    def verdict(self) -> str:
        return self.doc.get("verdict", "uncertain")

    @property
    def probability(self) -> float:
        return float(self.doc.get("probability_ai", 0.5))

    @property
    def ai_threshold(self) -> float:
        return float(self.doc.get("thresholds", {}).get("ai", math.nan))

    @property
    def human_threshold(self) -> float:
        return float(self.doc.get("thresholds", {}).get("human", math.nan))

    @property
    def atypical(self) -> list[str]:
        """The evidence outside the range of human music, which kept the verdict from "human"."""
        return [str(a) for a in self.doc.get("atypical") or []]

    @property
    def decided_by(self) -> list[str]:
        return [s for s in str(self.doc.get("decided_by", "")).split("+") if s and s != "none"]

    @property
    def duration_s(self) -> float:
        return float(self.doc.get("duration_s", 0.0))

    @property
    def codec(self) -> dict[str, Any]:
        return self.doc.get("codec") or {}

    @property
    def lossy(self) -> bool:
        return bool(self.codec.get("lossy"))

    # -- engines ---------------------------------------------------------------------------------
    def _engine(self, name: str) -> dict[str, Any] | None:
        return (self.doc.get("engines") or {}).get(name)

    @property
    def cnn_probability(self) -> float | None:
        cnn = self._engine("cnn")
        return None if cnn is None else float(cnn["probability_ai"])

    @property
    def windows(self) -> list[Window]:
        cnn = self._engine("cnn") or {}
        return [Window(float(w["start"]), float(w["end"]), float(w["p"])) for w in cnn.get("windows", [])]

    @property
    def images_score(self) -> float | None:
        images = self._engine("images")
        return None if images is None else float(images["score"])

    @property
    def images_rate_hz(self) -> float | None:
        images = self._engine("images")
        return None if images is None else float(images["latent_rate_hz"])

    @property
    def demucs(self) -> dict[str, Any]:
        return self._engine("demucs") or {"ran": False, "reason": "not in this report"}

    @property
    def demucs_probability(self) -> float | None:
        p = self.demucs.get("probability_ai")
        return None if p is None or not self.demucs.get("ran") else float(p)

    @property
    def residual_bands(self) -> list[tuple[str, str, float]]:
        """(feature key, band label, residual dB) of each band the Demucs engine measured."""
        out = []
        for key, value in (self.demucs.get("features") or {}).items():
            if key.startswith("residual_db_"):
                lo, hi = key.removeprefix("residual_db_").split("_", 1)
                out.append((key, f"{_khz(lo)}-{_khz(hi)}", float(value)))
        return out

    @property
    def fingerprint(self) -> Fingerprint | None:
        fp = self._engine("fingerprint")
        if not fp:
            return None
        return Fingerprint(
            score=_float_or_none(fp.get("score")), band_edge_hz=_float_or_none(fp.get("band_edge_hz")),
            peaks_hz=[float(f) for f in fp.get("peaks_hz") or []], matched=fp.get("matched"),
            matches=[(m["name"], float(m["probability"])) for m in fp.get("matches") or []],
            ltas_db=[float(v) for v in fp["ltas_db"]] if fp.get("ltas_db") else None,
            ltas_hz_step=_float_or_none(fp.get("ltas_hz_step")),
            packs=tuple(m["name"] for m in fp.get("matches") or [] if m.get("pack")),
        )

    def decisive_windows(self) -> list[Window]:
        """The CNN windows that moved its track score most, on the side that score fell: the
        track logit is the mean of the window logits, so these are the ones that decided it."""
        windows, p = self.windows, self.cnn_probability
        if not windows or p is None:
            return []
        count = max(1, math.ceil(0.15 * len(windows)))
        if p >= 0.5:
            chosen = sorted((w for w in windows if w.p >= 0.5), key=lambda w: -w.p)
        else:
            chosen = sorted((w for w in windows if w.p < 0.5), key=lambda w: w.p)
        return sorted(chosen[:count], key=lambda w: w.start)


def _khz(text: str) -> str:
    if text == "nyq":
        return "Nyquist"
    hz = int(text)
    return f"{hz / 1000:g}k" if hz >= 1000 else str(hz)


def _float_or_none(value) -> float | None:
    return None if value is None else float(value)


def read_report(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise AimusicError(f"{path}: cannot read the report ({exc})") from None
    except json.JSONDecodeError as exc:
        raise AimusicError(f"{path}: not a JSON report ({exc})") from None
    if not isinstance(doc, dict) or not str(doc.get("schema", "")).startswith("aimusicd.report/"):
        raise AimusicError(f"{path}: not an aimusicd report (no aimusicd.report schema)")
    return doc


def load_human_reference(path: Path = PACKAGED_HUMAN_REFERENCE) -> dict[str, HumanRange]:
    """Per-feature quantiles of the Demucs features on human calibration music (the shipped
    `human_reference.json`, written by `aimusicd train`); {} when not shipped."""
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))["demucs_features"]
        return {k: HumanRange(float(v["p05"]), float(v["p50"]), float(v["p95"]))
                for k, v in raw.items() if v.get("n")}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AimusicError(f"{path}: not a human reference file ({exc})") from None


def envelope_of(mono: np.ndarray, sample_rate: int, points: int = ENVELOPE_POINTS) -> Envelope:
    usable = (mono.size // points) * points
    if usable == 0:
        t = np.arange(mono.size) / sample_rate
        return Envelope(t, mono.copy(), mono.copy())
    slices = mono[:usable].reshape(points, -1)
    step = slices.shape[1] / sample_rate
    return Envelope((np.arange(points) + 0.5) * step, slices.min(axis=1), slices.max(axis=1))


def audio_envelope(path: Path) -> Envelope | None:
    """The waveform of the analysed file, or None when it is gone or unreadable (the page then
    shows the CNN's windows alone)."""
    from ..audio import load_audio

    try:
        audio = load_audio(path)
    except (AimusicError, OSError):
        return None
    return envelope_of(audio.mono, audio.sample_rate)


def view_of(doc: dict[str, Any], source: Path | None, with_audio: bool = True,
            human_reference: dict[str, HumanRange] | None = None) -> ReportView:
    """A report ready to draw: its waveform read from the analysed file when that is still there."""
    envelope = audio_envelope(Path(doc["file"])) if with_audio and doc.get("file") else None
    reference = load_human_reference() if human_reference is None else human_reference
    return ReportView(doc, source, envelope, reference)
