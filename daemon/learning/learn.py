"""Fit a model pack for one generator: its fingerprint model over the long-term peak spectrum,
cross-validated by track against human music, Platt-calibrated on the held-out folds, with a
threshold that holds the false-positive rate on the held-out human excerpts in every codec
condition.

The human side is the user's own music when given (the honest reference for their catalogue), or
else the packaged human reference: per-bin statistics of the shipped training corpora's spectra,
from which human-like spectra are drawn, with the bins above each condition's band edge zeroed
as the codec zeroes them in the generator's examples (else a codec's cut would look like the
generator).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..engines.fingerprint import EDGE_MARGIN_HZ, GeneratorFingerprint, feature_names
from ..engines.logistic import LogisticModel, sigmoid
from ..engines.packs import CARD_FILE, FINGERPRINT_FILE, PACK_FILE, SCHEMA
from ..errors import ModelError, UsageError
from .features import Measured, Source

# Weak shrinkage: with tens of tracks a side, a strong penalty keeps the model from leaning on the
# few bins where the decoder's peaks sit (cross-validated on the ACE-Step train+calib prompts
# against calibration-split human music: recall at 1 % held-out FPR fell from l2 1 to 300).
L2 = 1.0
FOLDS = 5
MIN_FILES = 3               # per side: cross-validation is by track
ODDS_MARGIN = float(np.log(2.0))   # the threshold sits at twice the odds of the worst held-out human excerpt
THRESHOLD_RANGE = (0.5, 0.999)
REFERENCE_PATH = Path(__file__).resolve().parents[1] / "models" / "human_reference.json"
REFERENCE_DRAWS = 400       # human-like spectra drawn per condition from the reference


@dataclass(frozen=True)
class ConditionMetrics:
    condition: str
    n_ai: int
    n_human: int
    recall: float           # held-out generator excerpts at or above the threshold
    human_fp: float         # held-out human excerpts at or above it

    def to_dict(self) -> dict:
        return {"condition": self.condition, "n_ai": self.n_ai, "n_human": self.n_human,
                "recall": round(self.recall, 4), "human_fp": round(self.human_fp, 4)}


@dataclass(frozen=True)
class PackFit:
    fingerprint: GeneratorFingerprint
    metrics: list[ConditionMetrics]
    auc: float
    human_source: str       # "folders" | "reference"


@dataclass
class Table:
    """The examples as rows: one per excerpt and condition."""
    x: np.ndarray
    y: np.ndarray
    group: np.ndarray       # the file (or reference draw) a row comes from: folds never split it
    condition: np.ndarray


def table_of(measured: list[Measured], sources: list[Source]) -> Table:
    x, y, group, cond = [], [], [], []
    for m in measured:
        n = len(m.spectrum)
        x.append(m.spectrum.astype(np.float64))
        y += [sources[m.source].label] * n
        group += [m.source] * n
        cond += [m.condition] * n
    return Table(np.vstack(x), np.array(y), np.array(group), np.array(cond))


def load_reference(path: Path = REFERENCE_PATH) -> dict:
    if not path.is_file():
        raise UsageError(f"no --human folders given and no packaged human reference at {path}: "
                           "pass --human DIR with some of your own human music")
    try:
        doc = json.loads(path.read_text())
        spectrum = doc["spectrum"]
        return {"mean": np.asarray(spectrum["mean"], float), "std": np.asarray(spectrum["std"], float),
                "n": int(spectrum["n"])}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: cannot read the human reference ({exc})") from None


def with_reference(table: Table, reference: dict, seed: int = 0) -> Table:
    """Add human-like spectra drawn from the reference, per condition, cut at the band edge that
    condition left in the generator's examples."""
    rng = np.random.default_rng(seed)
    bins = table.x.shape[1]
    if len(reference["mean"]) != bins:
        raise ModelError(f"the human reference has {len(reference['mean'])} bins, the spectrum {bins}")
    hz_step = 22050.0 / bins
    x, group, cond = [table.x], [table.group], [table.condition]
    first = table.group.max() + 1
    for k, condition in enumerate(sorted(set(table.condition))):
        mine = table.condition == condition
        zero = table.x[mine] == 0.0
        top = np.nonzero(~zero.all(axis=0))[0]       # the highest bin any generator excerpt kept
        edge = (top.max() + 1) * hz_step if top.size else 0.0
        draws = np.clip(rng.normal(reference["mean"], reference["std"], (REFERENCE_DRAWS, bins)), 0.0, None)
        draws[:, np.arange(bins) * hz_step > edge - EDGE_MARGIN_HZ / 2] = 0.0
        x.append(draws)
        group.append(first + k * REFERENCE_DRAWS + np.arange(REFERENCE_DRAWS) % (REFERENCE_DRAWS // FOLDS))
        cond.append(np.full(REFERENCE_DRAWS, condition))
    return Table(np.vstack(x), np.r_[table.y, np.zeros(REFERENCE_DRAWS * len(cond[1:]), int)],
                 np.concatenate(group), np.concatenate(cond))


def check_enough(sources: list[Source], failed: int, human_given: bool) -> None:
    for label, side in ((1, "--ai"), (0, "--human")):
        if label == 0 and not human_given:
            continue
        count = sum(s.label == label for s in sources)
        if count < MIN_FILES:
            raise UsageError(f"{side}: {count} distinct readable audio file{'s' * (count != 1)}; "
                               f"learn needs at least {MIN_FILES} per side (it cross-validates by track)"
                               + (f"; {failed} unreadable were skipped" if failed else ""))


def _balanced(y: np.ndarray) -> np.ndarray:
    return np.where(y == 1, 0.5 / max(y.mean(), 1e-9), 0.5 / max(1 - y.mean(), 1e-9))


def _fit(x: np.ndarray, y: np.ndarray) -> LogisticModel:
    return LogisticModel.fit(feature_names(x.shape[1]), x, y, l2=L2, weight=_balanced(y))


def odds_shift(p: float, k: float) -> float:
    """p with its log-odds moved by k."""
    p = min(max(float(p), 1e-9), 1 - 1e-9)
    return float(sigmoid(np.log(p / (1 - p)) + k))


def fold_of(table: Table) -> np.ndarray:
    """Each group's fold: round-robin within each side, so every fold holds both."""
    fold = np.zeros(len(table.y), int)
    for label in (0, 1):
        groups = sorted(set(table.group[table.y == label]))
        for k, g in enumerate(groups):
            fold[table.group == g] = k % min(FOLDS, len(groups))
    return fold


def fit_pack(name: str, description: str, table: Table, fpr: float, human_source: str) -> PackFit:
    from ..engines.logistic import fit_platt
    from ..evaluation.metrics import roc_auc

    fold = fold_of(table)
    held_out = np.zeros(len(table.y))
    for k in sorted(set(fold)):
        test = fold == k
        held_out[test] = _fit(table.x[~test], table.y[~test]).logit(table.x[test])
    a, b = fit_platt(held_out, table.y, _balanced(table.y))
    p = sigmoid(a * held_out + b)
    human = table.y == 0
    tops = [np.quantile(p[human & (table.condition == c)], 1 - fpr, method="higher")
            for c in sorted(set(table.condition[human]))]
    threshold = round(float(np.clip(odds_shift(max(tops), ODDS_MARGIN), *THRESHOLD_RANGE)), 4)
    metrics = []
    for c in dict.fromkeys(table.condition):
        ai, hum = (table.y == 1) & (table.condition == c), human & (table.condition == c)
        metrics.append(ConditionMetrics(str(c), int(ai.sum()), int(hum.sum()),
                                        float(np.mean(p[ai] >= threshold)), float(np.mean(p[hum] >= threshold))))
    auc = float(roc_auc(table.y, p))
    final = _fit(table.x, table.y)
    model = LogisticModel(final.features, final.mean, final.scale, [c * a for c in final.coef],
                          final.intercept * a + b)
    generator = GeneratorFingerprint(name, model, threshold, description,
                                     {"cv_auc": round(auc, 4), "conditions": [m.to_dict() for m in metrics]})
    return PackFit(generator, metrics, auc, human_source)


def pack_files(fit: PackFit, sources: list[Source], measured: list[Measured], fpr: float,
               skipped: list[tuple[Path, str]]) -> dict[str, bytes]:
    """pack.json, fingerprint.json and the model card, as bytes for write_pack."""
    created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    first = measured[0].condition if measured else ""
    examples = {}
    for label, side in ((1, "ai"), (0, "human")):
        rows = [m for m in measured if m.condition == first and sources[m.source].label == label]
        examples[side] = {"files": len(rows), "excerpts": int(sum(len(m.seconds) for m in rows)),
                          "seconds": round(float(sum(m.seconds.sum() for m in rows)), 1)}
    meta = {
        "schema": SCHEMA, "name": fit.fingerprint.name, "description": fit.fingerprint.description,
        "created": created, "aimusicd_version": __version__, "threshold": fit.fingerprint.threshold,
        "target_human_fp": fpr, "human_source": fit.human_source, "examples": examples,
        "skipped_files": len(skipped), "cv_auc": round(fit.auc, 4),
        "metrics": [m.to_dict() for m in fit.metrics],
    }
    return {PACK_FILE: (json.dumps(meta, indent=2) + "\n").encode(),
            FINGERPRINT_FILE: (json.dumps(fit.fingerprint.to_dict()) + "\n").encode(),
            CARD_FILE: model_card(meta).encode()}


def model_card(meta: dict) -> str:
    ex = meta["examples"]
    human = ("the user's own human music (--human)" if meta["human_source"] == "folders"
             else "the packaged human reference (statistics of the shipped training corpora)")
    lines = [
        f"# Model pack `{meta['name']}`", "",
        meta["description"] or "A generator's spectral fingerprint, learned by `aimusicd learn`.", "",
        f"- created {meta['created']} by aimusicd {meta['aimusicd_version']} ({meta['schema']})",
        f"- generator examples: {ex['ai']['files']} files, {ex['ai']['excerpts']} excerpts, "
        f"{ex['ai']['seconds'] / 60:.1f} min",
        f"- human examples: {human}" + (f", {ex['human']['files']} files, {ex['human']['excerpts']} excerpts, "
                                        f"{ex['human']['seconds'] / 60:.1f} min" if ex['human']['files'] else ""),
        f"- threshold {meta['threshold']} (held-out human excerpts at most {meta['target_human_fp']:.2%} above it, "
        "in every condition, with a margin of twice the odds)",
        f"- cross-validated by track ({FOLDS} folds): AUC {meta['cv_auc']:.3f}", "",
        "| condition | generator excerpts | recall | human excerpts | human false positives |",
        "|---|---:|---:|---:|---:|",
        *(f"| {m['condition']} | {m['n_ai']} | {m['recall']:.3f} | {m['n_human']} | {m['human_fp']:.3f} |"
          for m in meta["metrics"]), "",
        "It recognises this generator's decoder peaks and nothing else: music it does not match is",
        "judged by the shipped models as before.", "",
    ]
    return "\n".join(lines)


def format_metrics(fit: PackFit) -> str:
    head = f"{'condition':<10} {'n_ai':>5} {'recall':>7} {'n_hum':>6} {'hum_fp':>7}"
    rows = [f"{m.condition:<10} {m.n_ai:>5} {m.recall:>7.3f} {m.n_human:>6} {m.human_fp:>7.3f}" for m in fit.metrics]
    return "\n".join([head, "-" * len(head), *rows,
                      f"threshold {fit.fingerprint.threshold}, cross-validated AUC {fit.auc:.3f}"])
