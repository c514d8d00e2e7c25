"""`aimusicd train`: corpora -> examples -> CNN -> Demucs head -> calibration and fusion ->
held-out evaluation -> shipped weights and model card. Deterministic for a seed; slow stages cache
their results in the work folder so an interrupted run resumes."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file

from ..engines.cnn import CnnEngine, CnnModelMeta, CnnNet, NetConfig, save_cnn
from ..engines.demucs.engine import DemucsEngine
from ..engines.demucs.features import FEATURE_NAMES
from ..engines.demucs.separation import Separator, load_htdemucs
from ..engines.fusion import FusionParams
from ..errors import ModelError
from ..hashing import sha256_file
from . import autoencoder, calibrate, cnn_train
from .codecs import EVAL_CONDITIONS
from .corpora import load_corpora
from .evaluation import Row, evaluate, format_table
from .examples import HUMAN, plan
from .fakes import FAMILIES, TRANSFER_HOLDOUT, register
from .metrics import roc_auc
from .modelcard import write_model_card
from .scoring import Scored, score_conditions, score_items

CNN_NAME = "aimusicd-cnn-v1"
HEAD_NAME = "aimusicd-demucs-head-v1"
FUSION_NAME = "aimusicd-fusion-v3"   # v3: the image score stacked on the CNN, then the Demucs evidence
# Low bitrates weigh more in the CNN's examples than in calibration and test, which stand for the
# wild: the CNN learns most where the codec leaves least of the fingerprint.
CNN_FAVOURS_LOW_BITRATES = True


@dataclass(frozen=True)
class Sizes:
    cnn_positions: int        # train clips = 2 x positions (each human and fake)
    val_positions: int
    epochs: int
    head_positions: int       # Demucs head training examples = 2 x positions
    calib_positions: int      # rendered as human and fake, CNN-scored; cheap, so many
    calib_demucs: int         # of which measured with Demucs too (about 7 s each)
    test_positions: int
    test_demucs: int
    autoencoder_steps: int
    clip_s: float = 6.0
    track_s: float = 30.0
    head_s: float = 8.0


# Sized for under 2 hours on 2 CPU cores: the CNN stage about 45 min (models v5: 20 min rendering 10,000
# clips, 25 min training), HTDemucs (about 7 s per example) and the codec round trips of the test
# conditions most of the rest.
FULL = Sizes(cnn_positions=5000, val_positions=300, epochs=7, head_positions=40,
             calib_positions=300, calib_demucs=30, test_positions=96, test_demucs=16,
             autoencoder_steps=600)
QUICK = Sizes(cnn_positions=32, val_positions=8, epochs=1, head_positions=3,
              calib_positions=6, calib_demucs=2, test_positions=5, test_demucs=1,
              autoencoder_steps=20, track_s=10.0)


@dataclass
class TrainResult:
    rows: list[Row]
    card: Path


def _save_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


def run_training(out_dir: Path, work_dir: Path, corpora_dir: Path, demucs_weights: Path,
                 quick: bool, seed: int, workers: int, log: Callable[[str], None],
                 reuse_cnn: bool = False) -> TrainResult:
    sizes = QUICK if quick else FULL
    started = time.perf_counter()
    timings: dict[str, float] = {}
    work_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    suffix = f"seed{seed}{'_quick' if quick else ''}"

    def rng(stage: int) -> np.random.Generator:
        """One stream per stage: resizing one stage leaves the others' examples (and the cached
        Demucs features of them) unchanged."""
        return np.random.default_rng([seed, stage])

    log("1/7 corpora")
    tracks = load_corpora(corpora_dir, quick, log)
    split = {s: [t for t in tracks if t.split == s] for s in ("train", "calib", "test")}
    for name, ts in split.items():
        if not ts:
            raise ModelError(f"{corpora_dir}: no {name} tracks found")
    timings["corpora_s"] = time.perf_counter() - started

    log("2/7 learned fake family (autoencoder)")
    t0 = time.perf_counter()
    ae_path = work_dir / f"autoencoder_{suffix}.pt"
    if ae_path.exists():
        log(f"  reusing {ae_path}")
        model = autoencoder.load(ae_path)
    else:
        clips = autoencoder.training_clips(split["train"], 200, 1.0, rng(8))
        model = autoencoder.train(clips, autoencoder.AutoencoderTraining(steps=sizes.autoencoder_steps),
                                  seed, log)
        autoencoder.save(model, ae_path)
    register(autoencoder.family(model))
    timings["autoencoder_s"] = time.perf_counter() - t0

    log("3/7 CNN")
    t0 = time.perf_counter()
    every = list(FAMILIES)
    seen = [f for f in every if f != TRANSFER_HOLDOUT]
    cnn_run = _cnn_stage(split, sizes, seen, seed, rng, workers, work_dir / f"cnn_raw_{suffix}",
                         reuse_cnn, log)
    cnn = CnnEngine(cnn_run.path)
    timings["cnn_s"] = time.perf_counter() - t0

    log("4/7 Demucs features")
    t0 = time.perf_counter()
    separator = Separator(load_htdemucs(demucs_weights))
    demucs = DemucsEngine(separator, None, "htdemucs", sha256_file(demucs_weights), excerpts=1)
    cache_path = work_dir / f"demucs_features_{suffix}.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    head_items = plan(split["train"], sizes.head_positions, sizes.head_s, seen, rng(3))
    calib_items = plan(split["calib"], sizes.calib_positions, sizes.track_s, seen, rng(4))
    test_items = plan(split["test"], sizes.test_positions, sizes.track_s, every, rng(5))
    head_scored = score_items(head_items, None, demucs, lambda i: True, workers, log, "head examples", cache)
    _save_json(cache_path, cache)
    calib_scored = score_items(calib_items, cnn, demucs, lambda i: i < 2 * sizes.calib_demucs,
                               workers, log, "calibration examples", cache)
    _save_json(cache_path, cache)
    test_scored = score_conditions(test_items, EVAL_CONDITIONS, cnn, demucs,
                                   lambda i: i < 2 * sizes.test_demucs, workers, log, "test examples", cache)
    _save_json(cache_path, cache)
    timings["demucs_features_s"] = time.perf_counter() - t0
    # Every example's engine outputs, so calibration and fusion can be re-analysed without rendering.
    _save_json(work_dir / f"scored_{suffix}.json",
               {"head": [s.to_dict() for s in head_scored], "calib": [s.to_dict() for s in calib_scored],
                "test": {c: [s.to_dict() for s in ss] for c, ss in test_scored.items()}})

    log("5/7 calibration and fusion")
    head = calibrate.fit_head(head_scored)
    calib_raw = np.array([s.cnn_raw for s in calib_scored])
    calib_y = np.array([s.label for s in calib_scored])
    weights, cnn_path = calibrate.choose_cnn_path(calib_scored, head)
    log(f"  CNN path: {cnn_path.form}, {cnn_path.weighing}; leave-one-package-out log-loss "
        + ", ".join(f"{f} / {w} {v:.4f}" for f, ws in cnn_path.logloss.items() for w, v in ws.items())
        + f" ({cnn_path.packages} packages)")
    platt = calibrate.fit_platt(calib_raw, calib_y, weights)
    calib_data = calibrate.fusion_data(calib_scored, platt, head, weights)
    fusion, checks = calibrate.fit_fusion(
        calib_data, [f"{s.package}: {s.track}" for s in calib_scored], [s.package for s in calib_scored],
        FUSION_NAME, cnn_path.features)
    for source, check in (("image", checks.images), ("Demucs", checks.demucs)):
        log(f"  {source} correction {'kept' if check.kept else 'zeroed'}: leave-one-{check.unit}-out "
            f"log-loss {check.logloss_corrected:.4f} against {check.logloss_before:.4f} without it "
            f"({check.rows} examples, {check.groups} {check.unit}s)")
    log(f"  thresholds: ai >= {fusion.ai_threshold}, human <= {fusion.human_threshold}; "
        f"lossy band {fusion.lossy_band}")

    log("6/7 held-out evaluation")
    by_condition = {c: calibrate.fusion_data(s, platt, head) for c, s in test_scored.items()}
    rows = evaluate(fusion, by_condition)
    table = format_table(rows)
    log(table)
    holdout = {c: _family_recall(fusion, test_scored[c], by_condition[c]) for c in test_scored}
    human_tail = _human_tail(fusion, calib_scored, calib_data)
    feature_aucs = _feature_aucs([s for s in calib_scored + head_scored if s.features])

    log("7/7 writing models")
    final_cnn = out_dir / "cnn.safetensors"
    net = CnnNet(cnn.meta.net)             # the raw net as trained (the engine's is BN-fused)
    net.load_state_dict(load_file(cnn_run.path))
    save_cnn(final_cnn, net, replace(cnn.meta, calib_a=platt[0], calib_b=platt[1]))
    _save_json(out_dir / "demucs_head.json", {"name": HEAD_NAME, "model": head.to_dict()})
    _save_json(out_dir / "fusion.json", fusion.to_dict())
    timings["total_s"] = time.perf_counter() - started
    metrics = {
        "table": [r.to_dict() for r in rows], "family_recall": holdout, "calib_human_tail": human_tail,
        "cnn_path": cnn_path.to_dict(),
        "correction_checks": {"images": checks.images.to_dict(), "demucs": checks.demucs.to_dict()},
        "feature_auc": feature_aucs, "cnn_history": cnn_run.history,
        "cnn_reused": cnn_run.reused, "timings": timings,
        "sizes": asdict(sizes), "seed": seed, "quick": quick,
        "data": {s: {"packages": sorted({t.package for t in ts}), "tracks": len(ts),
                     "minutes": round(sum(t.duration_s for t in ts) / 60, 1)} for s, ts in split.items()},
        "counts": {**cnn_run.counts, "head_examples": len(head_scored), "calib_examples": len(calib_scored),
                   "test_examples_per_condition": len(test_scored["none"])},
        "families": {"trained": seen, "transfer_holdout": [TRANSFER_HOLDOUT]},
    }
    _save_json(out_dir / "metrics.json", metrics)
    card = write_model_card(out_dir, metrics, table, fusion)
    log(f"done in {timings['total_s'] / 60:.1f} min: {card}")
    return TrainResult(rows, card)


@dataclass
class CnnRun:
    path: Path              # the trained net before Platt scaling
    history: list[dict]
    counts: dict[str, int]
    reused: dict | None     # with --reuse-cnn: when that CNN was trained and how long it took


def _cnn_stage(split: dict, sizes: Sizes, seen: list[str], seed: int, rng, workers: int, stem: Path,
               reuse: bool, log: Callable[[str], None]) -> CnnRun:
    """Train the CNN, or with `reuse` take the one an earlier run of the same seed, sizes and
    families left in the work folder (for re-fitting what sits on top without 40 minutes of CNN
    training; a changed example pipeline needs a fresh CNN, so reuse is never automatic)."""
    path, record_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    net_cfg = NetConfig()
    key = json.loads(json.dumps({   # as it reads back from the record (tuples become lists)
        "seed": seed, "sizes": [sizes.cnn_positions, sizes.val_positions, sizes.epochs, sizes.clip_s],
        "families": seen, "net": asdict(net_cfg),
        "codecs": "favour-low-bitrates" if CNN_FAVOURS_LOW_BITRATES else "uniform"}))
    if reuse:
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
        if not path.exists() or record.get("key") != key:
            raise ModelError(f"--reuse-cnn: {path} is missing or was trained with another seed, "
                             "sizes or families; run without --reuse-cnn")
        log(f"  reusing {path} (trained {record['trained']})")
        return CnnRun(path, record["history"], record["counts"],
                      {"trained": record["trained"], "seconds": record["seconds"]})
    started = time.perf_counter()
    train_items = plan(split["train"], sizes.cnn_positions, sizes.clip_s, seen, rng(1),
                       favour_low_bitrates=CNN_FAVOURS_LOW_BITRATES)
    val_items = plan(split["calib"], sizes.val_positions, sizes.clip_s, seen, rng(2),
                     favour_low_bitrates=CNN_FAVOURS_LOW_BITRATES)
    train_set = cnn_train.build_melset(train_items, workers, log, "train clips")
    val_set = cnn_train.build_melset(val_items, workers, log, "validation clips")
    net, history = cnn_train.train_cnn(train_set, val_set, net_cfg, window_s=4.0, epochs=sizes.epochs,
                                       batch_size=64, lr=3e-3, seed=seed, log=log)
    save_cnn(path, net, CnnModelMeta(CNN_NAME, net_cfg, cnn_train.MEL))
    counts = {"cnn_train_clips": int(len(train_set.labels)), "cnn_val_clips": int(len(val_set.labels))}
    _save_json(record_path, {"key": key, "trained": time.strftime("%Y-%m-%d %H:%M"),
                             "seconds": round(time.perf_counter() - started, 1),
                             "history": history, "counts": counts})
    return CnnRun(path, history, counts, None)


def _family_recall(fusion: FusionParams, scored: list[Scored], data: calibrate.FusionData) -> dict:
    """Per fake family (one test condition, the fast pass: CNN and image score): share at p >= 0.5
    (the operating point of the table's balanced accuracy), shares called "ai" and "human" at the
    shipped thresholds, and the ROC AUC of that family against all human examples."""
    probs = calibrate.fused_probabilities(fusion, data)["cnn+img"]
    human = data.y == 0
    out = {}
    for family in sorted({s.family for s in scored} - {HUMAN}):
        sel = np.array([s.family == family for s in scored])
        both = sel | human
        out[family] = {"n": int(sel.sum()),
                       "recall_at_half": round(float((probs[sel] >= 0.5).mean()), 4),
                       "called_ai": round(float((probs[sel] >= fusion.ai_threshold).mean()), 4),
                       "called_human": round(float((probs[sel] <= fusion.human_threshold).mean()), 4),
                       "auc": round(roc_auc(data.y[both], probs[both]), 4)}
    return out


def _human_tail(fusion: FusionParams, scored: list[Scored], data: calibrate.FusionData,
                top: int = 5) -> list[dict]:
    """The calibration split's human tracks the fast pass (CNN and image score) finds most AI-like:
    the ones that set the ai threshold (a few whole tracks, not scattered examples, sit at the top)."""
    probs = calibrate.fused_probabilities(fusion, data)["cnn+img"]
    by_track: dict[str, list[float]] = {}
    for s, p in zip(scored, probs):
        if s.label == 0:
            by_track.setdefault(f"{s.package}: {Path(s.track).name}", []).append(float(p))
    worst = sorted(by_track.items(), key=lambda kv: -max(kv[1]))[:top]
    return [{"track": name, "n": len(ps), "mean_p": round(float(np.mean(ps)), 4),
             "max_p": round(max(ps), 4)} for name, ps in worst]


def _feature_aucs(scored: list[Scored]) -> dict[str, float]:
    """Single-feature ROC AUC (AI = positive) of each Demucs feature: which ones carry signal."""
    y = np.array([s.label for s in scored])
    return {f: round(roc_auc(y, np.array([s.features[f] for s in scored])), 4) for f in FEATURE_NAMES}
