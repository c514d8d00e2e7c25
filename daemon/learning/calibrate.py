"""Thresholds set on the user's own human music: the shipped fusion's "ai" threshold and each known
generator's and pack's own, each placed so that at most the requested share of the user's human
music, in every codec condition, lies above it, with 95 % confidence, not merely on the excerpts
measured (then at twice the odds, the margin training uses).

The rule is the binomial order statistic: of n human excerpts, the r-th largest score has a share
of human music above it that is Beta(r, n - r + 1) distributed, so the threshold is the r-th
largest with r the largest rank for which P(Binomial(n, fpr) <= r - 1) <= 5 %. The quantile of the
sample itself (r = n * fpr) is exceeded by half of the catalogue's own unseen music as often as
not; this rule is exceeded one time in twenty. The "ai" verdict fires when the fusion or any
generator or pack fires, so the fusion's threshold is set on the excerpts no generator or pack
already called: their union holds the rate.

A rate can only be held on enough music: with r = 1, (1 - fpr)^n <= 5 %, so 1 % needs 299 excerpts
(150 minutes), 0.5 % needs 598. Fewer is an error that says how much is needed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..engines.fingerprint import GeneratorFingerprint
from ..engines.fusion import Delivery, Fusion
from ..engines.logistic import sigmoid
from ..engines.packs import PackModel
from ..errors import AimusicError, UsageError
from ..files import replaced
from .features import EXCERPT_S, Measured
from .learn import ODDS_MARGIN, THRESHOLD_RANGE, odds_shift

CONFIDENCE = 0.95     # the written thresholds hold the rate on the catalogue with this confidence


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
    not_calibrated: list[str] = field(default_factory=list)   # packs that read Demucs features


def needed_excerpts(fpr: float) -> int:
    """The fewest excerpts on which a rate can be held: (1 - fpr)^n <= 1 - CONFIDENCE."""
    return math.ceil(math.log(1 - CONFIDENCE) / math.log1p(-fpr) - 1e-9)


def lowest_fpr(excerpts: int) -> float:
    """The lowest rate that many excerpts can hold."""
    return 1 - (1 - CONFIDENCE) ** (1 / max(excerpts, 1))


def order_rank(n: int, fpr: float) -> int:
    """The largest r such that the r-th largest of n scores has, with CONFIDENCE, at most fpr of
    the music they were drawn from above it (0: n is too small)."""
    from scipy.stats import binom

    if n <= 0:
        return 0
    return int(np.sum(binom.cdf(np.arange(n), n, fpr) <= 1 - CONFIDENCE))


def held_threshold(p: np.ndarray, condition: np.ndarray, fpr: float) -> float:
    """The order-statistic threshold in the worst condition, at twice its odds, within range."""
    tops = []
    for c in sorted(set(condition)):
        scores = np.sort(p[condition == c])[::-1]
        r = order_rank(len(scores), fpr)
        tops.append(1.0 if r == 0 else float(scores[r - 1]))
    top = max(tops)
    return THRESHOLD_RANGE[1] if not np.isfinite(top) or top >= 1.0 else \
        round(float(np.clip(odds_shift(top, ODDS_MARGIN), *THRESHOLD_RANGE)), 4)


def check_enough(have: int, minutes: float, files: int, fpr: float, folders: list[Path]) -> None:
    need = needed_excerpts(fpr)
    if have < need:
        raise UsageError(
            f"calibrate --fpr {fpr:g} needs at least {need} excerpts of human music ({EXCERPT_S:g} s each, "
            f"about {need * EXCERPT_S / 60:.0f} min); {', '.join(map(str, folders))} gave {have} "
            f"({minutes:.1f} min in {files} readable files): add music or raise --fpr to at least "
            f"{lowest_fpr(have):.3g}")


def measured_excerpts(measured: list[Measured]) -> tuple[int, float, int]:
    """Excerpts, minutes and files measured (counted once, not per condition)."""
    first = measured[0].condition if measured else None
    rows = [m for m in measured if m.condition == first]
    return int(sum(len(m.seconds) for m in rows)), sum(float(m.seconds.sum()) for m in rows) / 60, len(rows)


def pack_probabilities(pack: PackModel, measured: list[Measured], spectra: np.ndarray) -> np.ndarray:
    x = {"spectrum": spectra}
    if "embedding" in pack.pieces:
        x["embedding"] = np.vstack([m.embedding for m in measured]).astype(np.float64)
    if "images" in pack.pieces:
        x["images"] = np.concatenate([m.images_score for m in measured]).astype(np.float64)[:, None]
    return sigmoid(pack.logits(x))


def calibrate(measured: list[Measured], fusion: Fusion, generators: list[GeneratorFingerprint],
              fpr: float, packs: list[PackModel] | None = None) -> Calibration:
    spectra = np.vstack([m.spectrum for m in measured]).astype(np.float64)
    condition = np.concatenate([[m.condition] * len(m.seconds) for m in measured])
    fused = np.concatenate([
        [float(sigmoid(fusion.params.logit(float(c), None, Delivery.of_band(bool(q), float(bw)), float(img))[0]))
         for c, img, q, bw in zip(m.cnn_logit, m.images_score, m.lossy, m.bandwidth_hz)]
        for m in measured])
    probs = {g.name: sigmoid(g.model.logit(spectra)) for g in generators}
    shipped = {g.name: g.threshold for g in generators}
    skipped = []
    for pack in packs or []:
        if pack.needs_demucs:
            skipped.append(pack.name)     # calibrate measures no Demucs features: its own threshold stays
            continue
        probs[pack.name] = pack_probabilities(pack, measured, spectra)
        shipped[pack.name] = pack.threshold
    own = {name: held_threshold(p, condition, fpr) for name, p in probs.items()}

    def fired(thresholds: dict[str, float]) -> np.ndarray:
        out = np.zeros(len(fused), bool)
        for name, p in probs.items():
            out |= p >= thresholds[name]
        return out

    # the fusion's threshold on what no generator or pack called already: the union holds the rate
    ai_t = held_threshold(np.where(fired(own), np.inf, fused), condition, fpr)
    human_t = None if fusion.human_threshold < ai_t else round(ai_t / 2, 4)
    before = fired(shipped) | (fused >= fusion.ai_threshold)
    after = fired(own) | (fused >= ai_t)
    checks = [ConditionCheck(str(c), int((condition == c).sum()), float(before[condition == c].mean()),
                             float(after[condition == c].mean())) for c in dict.fromkeys(condition)]
    excerpts, minutes, _ = measured_excerpts(measured)
    return Calibration(ai_t, human_t, own, checks, excerpts, minutes, skipped)


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
    _replace(path, "\n".join(lines))


def forget_threshold(path: Path, name: str) -> bool:
    """Drop one pack's calibrated threshold (the pack is being removed or relearned: the value was
    set for a model that is gone). True if the file named it."""
    if not path.is_file():
        return False
    lines = path.read_text().splitlines()
    key = f"{_quote(name)} = "
    kept = [line for line in lines if not line.startswith(key)]
    if len(kept) == len(lines):
        return False
    _replace(path, "\n".join(kept) + "\n")
    return True


def _replace(path: Path, text: str) -> None:
    """The thresholds file written whole, then renamed over the old one; one line if it cannot be."""
    try:
        with replaced(path) as tmp:
            tmp.write_text(text)
    except OSError as exc:
        raise AimusicError(f"{path}: cannot be written ({exc.strerror}); it is unchanged") from None


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_checks(cal: Calibration) -> str:
    head = f"{'condition':<10} {'excerpts':>8} {'fp before':>9} {'fp after':>9}"
    rows = [f"{c.condition:<10} {c.excerpts:>8} {c.shipped_fp:>9.3f} {c.calibrated_fp:>9.3f}" for c in cal.checks]
    own = ", ".join(f"{n} {t}" for n, t in sorted(cal.fingerprints.items())) or "none known"
    kept = (f"\nnot calibrated (they read Demucs features, which calibrate does not measure): "
            f"{', '.join(cal.not_calibrated)}" if cal.not_calibrated else "")
    return "\n".join([head, "-" * len(head), *rows,
                      f"ai_threshold {cal.ai_threshold}; fingerprint and pack thresholds: {own}"]) + kept
