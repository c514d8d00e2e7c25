"""Fit a model pack for one generator: logistic heads over the fast evidence that needs no
retraining (the long-term peak spectrum, the CNN's track embedding, the image score and, with
`--demucs`, the Demucs engine's features), cross-validated by track against human music,
Platt-calibrated on the held-out folds, with a threshold that holds the false-positive rate on
the held-out human excerpts in every codec condition.

How the pieces combine is measured, not assumed: every pack is cross-validated as one logistic
model over the pieces' standardised features side by side ("joint") and as one calibrated head per
piece whose largest probability wins ("max"), and each piece alone is measured for comparison. The
pack keeps the combination with the best held-out recall at its threshold (worst condition first,
then the mean, then the AUC); the model card records the whole comparison.

The human side is the user's own music when given (the honest reference for their catalogue), or
else the packaged human reference: per-bin statistics of the shipped training corpora's spectra,
from which human-like spectra are drawn, with the bins above each condition's band edge zeroed
as the codec zeroes them in the generator's examples (else a codec's cut would look like the
generator). The reference holds no statistics of the other pieces, so such a pack reads the
spectrum alone.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..engines.fingerprint import EDGE_MARGIN_HZ
from ..engines.logistic import LogisticModel, sigmoid
from ..engines.packs import CARD_FILE, MODEL_FILE, PACK_FILE, SCHEMA, PackModel, piece_names
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
COMBINES = ("joint", "max")  # what a pack of several pieces may be; single pieces are measured beside


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
class Candidate:
    """One way of reading the evidence, cross-validated."""
    label: str              # "joint", "max", or a single piece's name
    pieces: tuple[str, ...]
    combine: str
    threshold: float
    auc: float
    metrics: list[ConditionMetrics]

    @property
    def rank(self) -> tuple[float, float, float]:
        recalls = [m.recall for m in self.metrics]
        return min(recalls), float(np.mean(recalls)), self.auc

    def to_dict(self) -> dict:
        return {"label": self.label, "pieces": list(self.pieces), "combine": self.combine,
                "threshold": self.threshold, "cv_auc": round(self.auc, 4),
                "conditions": [m.to_dict() for m in self.metrics]}


@dataclass(frozen=True)
class PackFit:
    model: PackModel
    metrics: list[ConditionMetrics]
    auc: float
    human_source: str       # "folders" | "reference"
    comparison: list[Candidate]


@dataclass
class Table:
    """The examples as rows: one per excerpt and condition, each piece of evidence a matrix."""
    x: dict[str, np.ndarray]
    y: np.ndarray
    group: np.ndarray       # the file (or reference draw) a row comes from: folds never split it
    condition: np.ndarray

    @property
    def pieces(self) -> tuple[str, ...]:
        return tuple(self.x)


def table_of(measured: list[Measured], sources: list[Source], pieces: tuple[str, ...] = ("spectrum",)) -> Table:
    """The rows of the measured excerpts; `pieces` names the evidence kept (all of it measured)."""
    of = {"spectrum": lambda m: m.spectrum, "embedding": lambda m: m.embedding,
          "images": lambda m: None if m.images_score is None else np.asarray(m.images_score)[:, None],
          "demucs": lambda m: m.demucs}
    x: dict[str, list] = {p: [] for p in pieces}
    y, group, cond = [], [], []
    for m in measured:
        rows = {p: of[p](m) for p in pieces}
        if any(v is None for v in rows.values()):
            continue            # a file whose Demucs features could not be measured
        n = len(m.seconds)
        for p, v in rows.items():
            x[p].append(np.asarray(v, np.float64).reshape(n, -1))
        y += [sources[m.source].label] * n
        group += [m.source] * n
        cond += [m.condition] * n
    return Table({p: np.vstack(v) for p, v in x.items()}, np.array(y), np.array(group), np.array(cond))


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
    if table.pieces != ("spectrum",):
        raise ModelError("the human reference describes the spectrum only")
    rng = np.random.default_rng(seed)
    spectra = table.x["spectrum"]
    bins = spectra.shape[1]
    if len(reference["mean"]) != bins:
        raise ModelError(f"the human reference has {len(reference['mean'])} bins, the spectrum {bins}")
    hz_step = 22050.0 / bins
    x, group, cond = [spectra], [table.group], [table.condition]
    first = table.group.max() + 1
    for k, condition in enumerate(sorted(set(table.condition))):
        mine = table.condition == condition
        zero = spectra[mine] == 0.0
        top = np.nonzero(~zero.all(axis=0))[0]       # the highest bin any generator excerpt kept
        edge = (top.max() + 1) * hz_step if top.size else 0.0
        draws = np.clip(rng.normal(reference["mean"], reference["std"], (REFERENCE_DRAWS, bins)), 0.0, None)
        draws[:, np.arange(bins) * hz_step > edge - EDGE_MARGIN_HZ / 2] = 0.0
        x.append(draws)
        group.append(first + k * REFERENCE_DRAWS + np.arange(REFERENCE_DRAWS) % (REFERENCE_DRAWS // FOLDS))
        cond.append(np.full(REFERENCE_DRAWS, condition))
    return Table({"spectrum": np.vstack(x)}, np.r_[table.y, np.zeros(REFERENCE_DRAWS * len(cond[1:]), int)],
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


def _fit(names: list[str], x: np.ndarray, y: np.ndarray) -> LogisticModel:
    """LogisticModel.fit's model (balanced weights, standardised features, L2 on the coefficients),
    found by L-BFGS instead of Newton's method: with a thousand features and a few hundred rows,
    each Newton step solves a 1000 x 1000 system and a fit took seconds; the gradient alone costs
    one pass over the rows. The objective is strictly convex, so both reach the same optimum."""
    from scipy.optimize import minimize

    w = _balanced(y)
    w = w / w.mean()
    mean = np.average(x, axis=0, weights=w)
    scale = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=w))
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    n, penalty = len(y), L2 / max(len(y), 1)

    def objective(beta: np.ndarray) -> tuple[float, np.ndarray]:
        coef, b = beta[:-1], beta[-1]
        t = z @ coef + b
        loss = np.logaddexp(0.0, t) - y * t
        r = w * (sigmoid(t) - y) / n
        value = float(np.sum(w * loss) / n + 0.5 * penalty * coef @ coef)
        return value, np.append(z.T @ r + penalty * coef, r.sum())

    beta = minimize(objective, np.zeros(z.shape[1] + 1), jac=True, method="L-BFGS-B",
                    options={"maxiter": 5000, "gtol": 1e-9, "ftol": 1e-14}).x
    return LogisticModel(list(names), mean.tolist(), scale.tolist(), beta[:-1].tolist(), float(beta[-1]))


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


def _names(table: Table, pieces: tuple[str, ...]) -> list[str]:
    return [n for p in pieces for n in piece_names(p, table.x[p].shape[1])]


def _matrix(table: Table, pieces: tuple[str, ...], rows=slice(None)) -> np.ndarray:
    return np.hstack([table.x[p][rows] for p in pieces])


def _held_out(table: Table, pieces: tuple[str, ...], fold: np.ndarray) -> np.ndarray:
    """Every row's logit from a model fitted on the other folds."""
    names, x = _names(table, pieces), _matrix(table, pieces)
    out = np.zeros(len(table.y))
    for k in sorted(set(fold)):
        test = fold == k
        out[test] = _fit(names, x[~test], table.y[~test]).logit(x[test])
    return out


def _calibrated_final(table: Table, pieces: tuple[str, ...], a: float, b: float) -> LogisticModel:
    """The model fitted on every row, with the Platt scaling of its held-out logits folded in."""
    final = _fit(_names(table, pieces), _matrix(table, pieces), table.y)
    return LogisticModel(final.features, final.mean, final.scale, [c * a for c in final.coef],
                         final.intercept * a + b)


def threshold_of(p: np.ndarray, table: Table, fpr: float) -> float:
    """Twice the odds of the (1 - fpr) quantile of held-out human excerpts, in the worst condition."""
    human = table.y == 0
    tops = [np.quantile(p[human & (table.condition == c)], 1 - fpr, method="higher")
            for c in sorted(set(table.condition[human]))]
    return round(float(np.clip(odds_shift(max(tops), ODDS_MARGIN), *THRESHOLD_RANGE)), 4)


def _metrics(p: np.ndarray, table: Table, threshold: float) -> list[ConditionMetrics]:
    metrics = []
    for c in dict.fromkeys(table.condition):
        ai, hum = (table.y == 1) & (table.condition == c), (table.y == 0) & (table.condition == c)
        metrics.append(ConditionMetrics(str(c), int(ai.sum()), int(hum.sum()),
                                        float(np.mean(p[ai] >= threshold)), float(np.mean(p[hum] >= threshold))))
    return metrics


def _candidate(table: Table, label: str, pieces: tuple[str, ...], combine: str, fold: np.ndarray,
               fpr: float, held_out: dict) -> tuple[Candidate, dict[str, tuple[float, float]]]:
    """Cross-validated probabilities of one way of reading the evidence, its threshold and its
    metrics; and the Platt scaling of each of its heads. `held_out` keeps each head's held-out
    logits across candidates (a piece alone is also a head of "max")."""
    from ..engines.logistic import fit_platt
    from ..evaluation.metrics import roc_auc

    heads = {"joint": pieces} if combine == "joint" else {p: (p,) for p in pieces}
    platt, probs = {}, []
    for head, reads in heads.items():
        if reads not in held_out:
            held_out[reads] = _held_out(table, reads, fold)
        z = held_out[reads]
        platt[head] = fit_platt(z, table.y, _balanced(table.y))
        probs.append(sigmoid(platt[head][0] * z + platt[head][1]))
    p = np.max(probs, axis=0)
    threshold = threshold_of(p, table, fpr)
    return Candidate(label, pieces, combine, threshold, float(roc_auc(table.y, p)),
                     _metrics(p, table, threshold)), platt


def fit_pack(name: str, description: str, table: Table, fpr: float, human_source: str) -> PackFit:
    fold = fold_of(table)
    pieces = table.pieces
    ways = [(c, pieces, c) for c in COMBINES] if len(pieces) > 1 else [(pieces[0], pieces, "joint")]
    held_out: dict = {}
    results = {label: _candidate(table, label, reads, combine, fold, fpr, held_out) for label, reads, combine in ways}
    chosen_label = max(results, key=lambda k: results[k][0].rank)
    chosen, platt = results[chosen_label]
    comparison = [results[label][0] for label, _, _ in ways]
    if len(pieces) > 1:        # each piece alone, for the model card's comparison
        comparison += [_candidate(table, p, (p,), "joint", fold, fpr, held_out)[0] for p in pieces]
    if chosen.combine == "joint":
        heads = {"joint": _calibrated_final(table, pieces, *platt["joint"])}
    else:
        heads = {p: _calibrated_final(table, (p,), *platt[p]) for p in pieces}
    model = PackModel(name, pieces, chosen.combine, heads, chosen.threshold, description,
                      {"cv_auc": round(chosen.auc, 4), "conditions": [m.to_dict() for m in chosen.metrics]})
    return PackFit(model, chosen.metrics, chosen.auc, human_source, comparison)


def pack_files(fit: PackFit, sources: list[Source], measured: list[Measured], fpr: float,
               skipped: list[tuple[Path, str]]) -> dict[str, bytes]:
    """pack.json, model.json and the model card, as bytes for write_pack."""
    created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    first = measured[0].condition if measured else ""
    examples = {}
    for label, side in ((1, "ai"), (0, "human")):
        rows = [m for m in measured if m.condition == first and sources[m.source].label == label]
        examples[side] = {"files": len(rows), "excerpts": int(sum(len(m.seconds) for m in rows)),
                          "seconds": round(float(sum(m.seconds.sum() for m in rows)), 1)}
    meta = {
        "schema": SCHEMA, "name": fit.model.name, "description": fit.model.description,
        "created": created, "aimusicd_version": __version__, "threshold": fit.model.threshold,
        "pieces": list(fit.model.pieces), "combine": fit.model.combine, "needs_demucs": fit.model.needs_demucs,
        "target_human_fp": fpr, "human_source": fit.human_source, "examples": examples,
        "skipped_files": len(skipped), "cv_auc": round(fit.auc, 4),
        "metrics": [m.to_dict() for m in fit.metrics],
        "comparison": [c.to_dict() for c in fit.comparison],
    }
    return {PACK_FILE: (json.dumps(meta, indent=2) + "\n").encode(),
            MODEL_FILE: (json.dumps(fit.model.to_dict()) + "\n").encode(),
            CARD_FILE: model_card(meta).encode()}


PIECE_WORDS = {"spectrum": "the long-term peak spectrum (spectral fingerprint)",
               "embedding": "the CNN's track embedding (its penultimate layer)",
               "images": "the spectral-image score", "demucs": "the Demucs engine's stem features"}


def _reads(pieces: list[str], combine: str) -> str:
    words = [PIECE_WORDS[p] for p in pieces]
    if len(words) == 1:
        return words[0]
    how = ("one logistic model over their standardised features side by side" if combine == "joint"
           else "one calibrated head for each, the largest probability wins")
    return "; ".join(words) + f" ({how})"


def comparison_table(comparison: list[dict], chosen: str) -> list[str]:
    """Markdown rows: recall / human false positives per condition of each way of reading the
    evidence, cross-validated by track."""
    if not comparison:
        return []
    conditions = [m["condition"] for m in comparison[0]["conditions"]]
    lines = ["| evidence | threshold | AUC | " + " | ".join(f"{c} recall / human fp" for c in conditions) + " |",
             "|---|---:|---:|" + "---:|" * len(conditions)]
    for c in comparison:
        label = c["label"] + (" (kept)" if c["label"] == chosen else "")
        cells = " | ".join(f"{m['recall']:.3f} / {m['human_fp']:.3f}" for m in c["conditions"])
        lines.append(f"| {label} | {c['threshold']} | {c['cv_auc']:.3f} | {cells} |")
    return lines


def model_card(meta: dict) -> str:
    ex = meta["examples"]
    human = ("the user's own human music (--human)" if meta["human_source"] == "folders"
             else "the packaged human reference (statistics of the shipped training corpora)")
    pieces = meta.get("pieces", ["spectrum"])
    chosen = meta.get("combine", "joint") if len(pieces) > 1 else pieces[0]
    lines = [
        f"# Model pack `{meta['name']}`", "",
        meta["description"] or "A generator's fingerprint, learned by `aimusicd learn`.", "",
        f"- created {meta['created']} by aimusicd {meta['aimusicd_version']} ({meta['schema']})",
        f"- reads {_reads(pieces, meta.get('combine', 'joint'))}"
        + ("; it scores only files the Demucs engine ran on" if "demucs" in pieces else ""),
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
    ]
    if len(meta.get("comparison", [])) > 1:
        lines += ["## How the evidence combines (measured)", "",
                  "Each way of reading the evidence, cross-validated by track on the same examples, each with",
                  "its own threshold set by the same rule; the pack keeps the best recall in the worst",
                  "condition (then the mean recall, then the AUC). The single pieces are shown for comparison.",
                  "", *comparison_table(meta["comparison"], chosen), ""]
    lines += ["It recognises this generator and nothing else: music it does not match is judged by the",
              "shipped models as before.", ""]
    return "\n".join(lines)


def format_metrics(fit: PackFit) -> str:
    head = f"{'condition':<10} {'n_ai':>5} {'recall':>7} {'n_hum':>6} {'hum_fp':>7}"
    rows = [f"{m.condition:<10} {m.n_ai:>5} {m.recall:>7.3f} {m.n_human:>6} {m.human_fp:>7.3f}" for m in fit.metrics]
    lines = [head, "-" * len(head), *rows]
    if len(fit.comparison) > 1:
        lines.append("evidence compared (cross-validated recall in the worst condition, AUC):")
        lines += [f"  {c.label:<10} {c.rank[0]:.3f}  {c.auc:.3f}" + ("  kept" if c.label == fit.model.combine else "")
                  for c in fit.comparison]
    reads = "+".join(fit.model.pieces) + (f" ({fit.model.combine})" if len(fit.model.pieces) > 1 else "")
    lines.append(f"reads {reads}; threshold {fit.model.threshold}, cross-validated AUC {fit.auc:.3f}")
    return "\n".join(lines)
