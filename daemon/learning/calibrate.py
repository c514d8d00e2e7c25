"""Thresholds set on the user's own human music: the shipped fusion's "ai" threshold and each known
generator's and pack's own, each placed where at most the requested share of the user's excerpts,
in every codec condition, lie above it (with the same odds margin training uses).

A rate can only be held on enough music: MIN_ABOVE excerpts above the threshold, so 1 % needs 300
excerpts (150 minutes), 0.5 % needs 600. Fewer is an error that says how much is needed.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engines.fingerprint import GeneratorFingerprint
from ..engines.fusion import Delivery, Fusion
from ..engines.logistic import sigmoid
from ..errors import UsageError
from .features import EXCERPT_S, Measured
from .learn import ODDS_MARGIN, THRESHOLD_RANGE, odds_shift

MIN_ABOVE = 3


@dataclass(frozen=True)
class ConditionCheck:
    condition: str
    excerpts: int
    shipped_fp: float     # excerpts called "ai" with the thresholds in force before
    calibrated_fp: float  # ...and with the ones written


@dataclass(frozen=True)
class Calibration:
    ai_threshold: float
    human_threshold: float | None     # written only where the shipped one would not stay below
    fingerprints: dict[str, float]
    checks: list[ConditionCheck]
    excerpts: int
    minutes: float


def needed_excerpts(fpr: float) -> int:
    return math.ceil(MIN_ABOVE / fpr)


def check_enough(have: int, minutes: float, files: int, fpr: float, folders: list[Path]) -> None:
    need = needed_excerpts(fpr)
    if have < need:
        raise UsageError(
            f"calibrate --fpr {fpr:g} needs at least {need} excerpts of human music ({EXCERPT_S:g} s each, "
            f"about {need * EXCERPT_S / 60:.0f} min); {', '.join(map(str, folders))} gave {have} "
            f"({minutes:.1f} min in {files} readable files): add music or raise --fpr to at least "
            f"{MIN_ABOVE / max(have, 1):.3g}")


def measured_excerpts(measured: list[Measured]) -> tuple[int, float, int]:
    """Excerpts, minutes and files measured (counted once, not per condition)."""
    first = measured[0].condition if measured else None
    rows = [m for m in measured if m.condition == first]
    return int(sum(len(m.seconds) for m in rows)), sum(float(m.seconds.sum()) for m in rows) / 60, len(rows)


def _quantile_threshold(p: np.ndarray, condition: np.ndarray, fpr: float) -> float:
    tops = [np.quantile(p[condition == c], 1 - fpr, method="higher") for c in sorted(set(condition))]
    return round(float(np.clip(odds_shift(max(tops), ODDS_MARGIN), *THRESHOLD_RANGE)), 4)


def calibrate(measured: list[Measured], fusion: Fusion, generators: list[GeneratorFingerprint],
              fpr: float) -> Calibration:
    spectra = np.vstack([m.spectrum for m in measured]).astype(np.float64)
    condition = np.concatenate([[m.condition] * len(m.seconds) for m in measured])
    fused = np.concatenate([
        [float(sigmoid(fusion.params.logit(float(c), None, Delivery.of_band(bool(q), float(bw)), float(img))[0]))
         for c, img, q, bw in zip(m.cnn_logit, m.images_score, m.lossy, m.bandwidth_hz)]
        for m in measured])
    ai_t = _quantile_threshold(fused, condition, fpr)
    human_t = None if fusion.human_threshold < ai_t else round(ai_t / 2, 4)
    probs = {g.name: sigmoid(g.model.logit(spectra)) for g in generators}
    own = {g.name: _quantile_threshold(probs[g.name], condition, fpr) for g in generators}

    def called_ai(ai_threshold: float, thresholds: dict[str, float]) -> np.ndarray:
        fired = np.zeros(len(fused), bool)
        for name, p in probs.items():
            fired |= p >= thresholds[name]
        return fired | (fused >= ai_threshold)

    before = called_ai(fusion.ai_threshold, {g.name: g.threshold for g in generators})
    after = called_ai(ai_t, own)
    checks = [ConditionCheck(str(c), int((condition == c).sum()), float(before[condition == c].mean()),
                             float(after[condition == c].mean())) for c in dict.fromkeys(condition)]
    excerpts, minutes, _ = measured_excerpts(measured)
    return Calibration(ai_t, human_t, own, checks, excerpts, minutes)


def write_thresholds(path: Path, cal: Calibration, fpr: float, folders: list[Path], conditions: list[str]) -> None:
    """The thresholds file load_config merges under the presets; written whole, then renamed."""
    created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    lines = [
        "# Written by `aimusicd calibrate`; rerun it rather than editing. A preset's own [engines]",
        "# thresholds take precedence over these.",
        "[calibration]",
        f'created = "{created}"',
        f"fpr = {fpr!r}",
        f"excerpts = {cal.excerpts}",
        f"minutes = {cal.minutes:.1f}",
        "folders = [" + ", ".join(_quote(str(f.resolve())) for f in folders) + "]",
        "conditions = [" + ", ".join(_quote(c) for c in conditions) + "]",
        "",
        "[engines]",
        f"ai_threshold = {cal.ai_threshold!r}",
        *([f"human_threshold = {cal.human_threshold!r}"] if cal.human_threshold is not None else []),
        "",
        "[fingerprints]",
        *(f"{_quote(name)} = {t!r}" for name, t in sorted(cal.fingerprints.items())),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_checks(cal: Calibration) -> str:
    head = f"{'condition':<10} {'excerpts':>8} {'fp before':>9} {'fp after':>9}"
    rows = [f"{c.condition:<10} {c.excerpts:>8} {c.shipped_fp:>9.3f} {c.calibrated_fp:>9.3f}" for c in cal.checks]
    own = ", ".join(f"{n} {t}" for n, t in sorted(cal.fingerprints.items())) or "none known"
    return "\n".join([head, "-" * len(head), *rows,
                      f"ai_threshold {cal.ai_threshold}; fingerprint thresholds: {own}"])
