"""The evaluation table: codec condition x engine, the same for training's held-out split and for
`aimusicd eval` on any labelled folders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..audio import load_audio
from ..engines.fusion import Delivery, Fusion, FusionParams, decide
from ..errors import AimusicError, ModelError, UsageError
from ..files import audio_files_in
from .codecs import NONE, CodecSpec, encode_file
from .fusion_data import ENGINE_SETS, FusionData, fused_probabilities
from .metrics import Scores, score_all

if TYPE_CHECKING:
    from ..analysis import Analyzer
    from ..report import Report

# "cnn+img" is the fast pass files take before Demucs: the CNN with the image score, and the
# generator fingerprints (a match is an "ai" verdict; their logit bounds where "human" may be
# said). "fprint" is the fingerprints alone (p: the best generator's probability; a match is "ai",
# anything else "uncertain": they never vouch for "human"). "cnn-sub" is the CNN on exactly the
# examples of the "fused" row, when Demucs measured only some of them: fused against CNN is then a
# comparison on the same music.
ENGINES = ("cnn", "fprint", "cnn+img", "demucs", "cnn-sub", "fused", "auto")


@dataclass
class Row:
    condition: str
    engine: str
    scores: Scores
    kind: str = ""     # what the AI side is: "fakes", "real" (generator output), "transfer"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "condition": self.condition, "engine": self.engine,
                **self.scores.to_dict()}


def verdicts(params: FusionParams, data: FusionData, ai_t: float, human_t: float
             ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each engine's (P(AI), verdict) per example, as the daemon gives them, plus "auto": the fast
    pass where it is sure, the fusion where the daemon's auto mode would have run Demucs (nan / ""
    where an engine's inputs are missing)."""
    probs = fused_probabilities(params, data)
    n = len(data.y)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for engine, sources in ENGINE_SETS.items():
        p, labels = np.full(n, np.nan), np.full(n, "", dtype=object)
        for i in range(n):
            if np.isnan(probs[engine][i]):
                continue
            labels[i], p[i], _ = decide(float(probs[engine][i]), data.typical_values(i, sources),
                                        data.match(i, sources), ai_t, human_t,
                                        params.limits_for(data.delivery[i]))
        out[engine] = (p, labels)
    known = ~np.isnan(data.fingerprint)
    if known.any():
        fp = np.where(known, 1.0 / (1.0 + np.exp(-np.nan_to_num(data.fingerprint))), np.nan)
        out["fprint"] = (fp, np.where(~np.isnan(data.matched), "ai", np.where(known, "uncertain", "")))
    fusion = Fusion(params, ai_threshold=ai_t, human_threshold=human_t)
    auto_p, auto_l = (a.copy() for a in out["cnn+img"])
    fused_p, fused_l = out["fused"]
    for i in range(n):
        wanted = fusion.demucs_wanted(float(probs["cnn+img"][i]), data.delivery[i])
        if wanted and np.isnan(data.matched[i]) and not np.isnan(fused_p[i]):
            auto_p[i], auto_l[i] = fused_p[i], fused_l[i]
    out["auto"] = (auto_p, auto_l)
    measured = ~np.isnan(fused_p)
    if 0 < measured.sum() < n:
        cnn_p, cnn_l = out["cnn"]
        out["cnn-sub"] = (np.where(measured, cnn_p, np.nan), np.where(measured, cnn_l, ""))
    return out


def evaluate(params: FusionParams, by_condition: dict[str, FusionData],
             ai_threshold: float | None = None, human_threshold: float | None = None,
             kind: str = "") -> list[Row]:
    ai_t = params.ai_threshold if ai_threshold is None else ai_threshold
    human_t = params.human_threshold if human_threshold is None else human_threshold
    rows = []
    for condition, data in by_condition.items():
        out = verdicts(params, data, ai_t, human_t)
        for engine in (e for e in ENGINES if e in out):
            p, labels = out[engine]
            ok = ~np.isnan(p)
            if ok.sum() == 0:
                continue
            rows.append(Row(condition, engine, score_all(data.y[ok], p[ok], labels[ok]), kind))
    return rows


def format_table(rows: list[Row]) -> str:
    head = (f"{'kind':<8} {'condition':<10} {'engine':<7} {'n_ai':>5} {'n_hum':>5} {'bal_acc':>7} "
            f"{'auc':>6} {'rec@1%':>6} {'hum_fp':>6} {'ai_rec':>6} {'ai_hum':>6} {'unc_h':>6} "
            f"{'unc_ai':>6} {'ece':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        s = r.scores
        lines.append(
            f"{r.kind:<8} {r.condition:<10} {r.engine:<7} {s.n_ai:>5} {s.n_human:>5} "
            f"{s.balanced_accuracy:>7.3f} {s.auc:>6.3f} {s.recall_at_1pct_fpr:>6.3f} "
            f"{s.human_fp_rate:>6.3f} {s.ai_recall:>6.3f} {s.ai_called_human:>6.3f} "
            f"{s.uncertain_human:>6.3f} {s.uncertain_ai:>6.3f} {s.ece:>6.3f}")
    return "\n".join(lines)


@dataclass
class FolderItem:
    path: Path
    label: int       # 1 = AI, 0 = human


def folder_items(human: Path, ai: Path, patterns: list[str], ignore: list[str],
                 limit: int | None) -> list[FolderItem]:
    items = []
    for folder, label in ((human, 0), (ai, 1)):
        if not folder.is_dir():
            raise UsageError(f"{folder}: not a folder")
        files = audio_files_in(folder, patterns, ignore, recursive=True)[:limit]
        if not files:
            raise UsageError(f"{folder}: no audio files found")
        items += [FolderItem(f, label) for f in files]
    return items


def evaluate_folders(analyzer: Analyzer, items: list[FolderItem], conditions: list[CodecSpec],
                     with_demucs: bool, work: Path, log: Callable[[str], None],
                     on_report: Callable[[str, FolderItem, Report], None] | None = None) -> list[Row]:
    """Every file under every condition, through the real analysis path (files on disk, as a
    user would deliver them); the engines' evidence is then fused exactly as in the daemon.
    `on_report(condition, item, report)` sees each analysis (the ROC plot of `aimusicd eval`)."""
    mode = "full" if with_demucs else "cnn"
    by_condition: dict[str, FusionData] = {}
    for condition in conditions:
        rows, failures = [], 0
        for n, item in enumerate(items):
            try:
                path = item.path if condition == NONE else _encoded(item.path, condition, work)
                report = analyzer.analyze(path, mode)
            except ModelError:
                raise                      # no file can be analysed: stop at once
            except AimusicError as exc:
                failures += 1
                log(f"  skipped: {exc}")
                continue
            if on_report is not None:
                on_report(condition.condition_name(), item, report)
            demucs = report.demucs.logit if report.demucs.ran else np.nan
            fp = report.fingerprint
            best = fp.best_logit if fp and fp.best_logit is not None else np.nan
            matched = fp.matched.probability if fp and fp.matched else np.nan
            rows.append((report.cnn.logit, demucs, Delivery.of(report.codec), item.label,
                         report.images.score, best, matched))
            if (n + 1) % 20 == 0:
                log(f"  {condition.label()}: {n + 1}/{len(items)}")
        if rows:
            c, d, deliveries, y, images, best, matched = zip(*rows)
            by_condition[condition.condition_name()] = FusionData(np.array(c), np.array(d, float), list(deliveries),
                                                        np.array(y), [condition.codec] * len(y),
                                                        images=np.array(images),
                                                        fingerprint=np.array(best, float),
                                                        matched=np.array(matched, float))
        log(f"{condition.condition_name()}: {len(rows)} files analysed, {failures} failed")
    fusion = analyzer.fusion
    return evaluate(fusion.params, by_condition, fusion.ai_threshold, fusion.human_threshold, kind="given")


def _encoded(path: Path, condition: CodecSpec, work: Path) -> Path:
    """The file re-encoded with this codec, as a user would receive it (decoded at the engines'
    rate first; stereo encodes)."""
    audio = load_audio(path)
    out = work / condition.label() / f"{abs(hash(str(path))):x}_{path.stem}"
    out.parent.mkdir(parents=True, exist_ok=True)
    return encode_file(audio.samples, audio.sample_rate, condition, out)
