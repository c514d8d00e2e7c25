"""`aimusicd train`: corpora -> examples -> CNN -> Demucs head -> calibration and fusion ->
held-out evaluation -> shipped weights and model card. Deterministic for a seed; slow stages cache
their results in the work folder so an interrupted run resumes."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..engines.cnn import CnnEngine, CnnModelMeta, NetConfig, save_cnn
from ..engines.demucs.engine import DemucsEngine
from ..engines.demucs.features import FEATURE_NAMES
from ..engines.demucs.separation import Separator, load_htdemucs
from ..engines.fusion import FusionParams
from ..engines.logistic import LogisticModel
from ..hashing import sha256_file
from . import calibrate, cnn_train
from .codecs import EVAL_CONDITIONS
from .corpora import load_corpora
from .evaluation import Row, evaluate, format_table
from .examples import plan, with_codec
from .fakes import FAMILIES, TRANSFER_HOLDOUT
from .metrics import roc_auc
from .modelcard import write_model_card
from .scoring import Scored, score_items

CNN_NAME = "aimusicd-cnn-v1"
HEAD_NAME = "aimusicd-demucs-head-v1"
FUSION_NAME = "aimusicd-fusion-v1"


@dataclass(frozen=True)
class Sizes:
    cnn_positions: int        # train clips = 2 x positions (each human and fake)
    val_positions: int
    epochs: int
    head_positions: int       # Demucs head training examples = 2 x positions
    calib_positions: int
    calib_demucs: int         # of which measured with Demucs too
    test_positions: int
    test_demucs: int
    clip_s: float = 6.0
    track_s: float = 30.0
    head_s: float = 8.0


# Sized for about 100 minutes on 2 CPU cores; HTDemucs (about 7 s per example) dominates.
FULL = Sizes(cnn_positions=3000, val_positions=300, epochs=8, head_positions=40,
             calib_positions=150, calib_demucs=30, test_positions=64, test_demucs=16)
QUICK = Sizes(cnn_positions=32, val_positions=8, epochs=1, head_positions=3,
              calib_positions=6, calib_demucs=2, test_positions=3, test_demucs=1, track_s=10.0)


@dataclass
class TrainResult:
    rows: list[Row]
    card: Path


def _save_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


def run_training(out_dir: Path, work_dir: Path, corpora_dir: Path, demucs_weights: Path,
                 quick: bool, seed: int, workers: int, log: Callable[[str], None]) -> TrainResult:
    sizes = QUICK if quick else FULL
    started = time.perf_counter()
    timings: dict[str, float] = {}
    work_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)

    def rng(stage: int) -> np.random.Generator:
        """One stream per stage: resizing one stage leaves the others' examples (and the cached
        Demucs features of them) unchanged."""
        return np.random.default_rng([seed, stage])

    log("1/6 corpora")
    tracks = load_corpora(corpora_dir, quick, log)
    split = {s: [t for t in tracks if t.split == s] for s in ("train", "calib", "test")}
    for name, ts in split.items():
        if not ts:
            raise RuntimeError(f"no {name} tracks found")
    seen = [f for f in FAMILIES if f != TRANSFER_HOLDOUT]
    every = list(FAMILIES)
    timings["corpora_s"] = time.perf_counter() - started

    log("2/6 CNN")
    t0 = time.perf_counter()
    train_items = plan(split["train"], sizes.cnn_positions, sizes.clip_s, seen, rng(1))
    val_items = plan(split["calib"], sizes.val_positions, sizes.clip_s, seen, rng(2))
    train_set = cnn_train.build_melset(train_items, workers, log, "train clips")
    val_set = cnn_train.build_melset(val_items, workers, log, "validation clips")
    net_cfg = NetConfig()
    net, history = cnn_train.train_cnn(train_set, val_set, net_cfg, window_s=4.0, epochs=sizes.epochs,
                                       batch_size=64, lr=3e-3, seed=seed, log=log)
    raw_path = work_dir / "cnn_raw.safetensors"
    save_cnn(raw_path, net, CnnModelMeta(CNN_NAME, net_cfg, cnn_train.MEL))
    cnn = CnnEngine(raw_path)
    timings["cnn_s"] = time.perf_counter() - t0

    log("3/6 Demucs features")
    t0 = time.perf_counter()
    separator = Separator(load_htdemucs(demucs_weights))
    demucs = DemucsEngine(separator, None, "htdemucs", sha256_file(demucs_weights), excerpts=1)
    cache_path = work_dir / f"demucs_features_seed{seed}{'_quick' if quick else ''}.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    head_items = plan(split["train"], sizes.head_positions, sizes.head_s, seen, rng(3))
    calib_items = plan(split["calib"], sizes.calib_positions, sizes.track_s, seen, rng(4))
    test_items = plan(split["test"], sizes.test_positions, sizes.track_s, every, rng(5))
    head_scored = score_items(head_items, None, demucs, lambda i: True, workers, log, "head examples", cache)
    _save_json(cache_path, cache)
    calib_scored = score_items(calib_items, cnn, demucs, lambda i: i < 2 * sizes.calib_demucs,
                               workers, log, "calibration examples", cache)
    _save_json(cache_path, cache)
    test_scored: dict[str, list[Scored]] = {}
    for condition in EVAL_CONDITIONS:
        test_scored[condition.label()] = score_items(
            with_codec(test_items, condition), cnn, demucs, lambda i: i < 2 * sizes.test_demucs,
            workers, log, f"test {condition.label()}", cache)
        _save_json(cache_path, cache)
    timings["demucs_features_s"] = time.perf_counter() - t0

    log("4/6 calibration and fusion")
    head = calibrate.fit_head(head_scored)
    calib_raw = np.array([s.cnn_raw for s in calib_scored])
    calib_y = np.array([s.label for s in calib_scored])
    platt = calibrate.fit_platt(calib_raw, calib_y)
    fusion = calibrate.fit_fusion(calibrate.fusion_data(calib_scored, platt, head), FUSION_NAME)
    log(f"  thresholds: ai >= {fusion.ai_threshold}, human <= {fusion.human_threshold}; "
        f"lossy band {fusion.lossy_band}")

    log("5/6 held-out evaluation")
    by_condition = {c: calibrate.fusion_data(s, platt, head) for c, s in test_scored.items()}
    rows = evaluate(fusion, by_condition)
    table = format_table(rows)
    log(table)
    holdout = _family_recall(fusion, test_scored["none"], platt, head)
    feature_aucs = _feature_aucs([s for s in calib_scored + head_scored if s.features])

    log("6/6 writing models")
    final_cnn = out_dir / "cnn.safetensors"
    save_cnn(final_cnn, net, CnnModelMeta(CNN_NAME, net_cfg, cnn_train.MEL,
                                          calib_a=platt[0], calib_b=platt[1]))
    _save_json(out_dir / "demucs_head.json", {"name": HEAD_NAME, "model": head.to_dict()})
    _save_json(out_dir / "fusion.json", fusion.to_dict())
    timings["total_s"] = time.perf_counter() - started
    metrics = {
        "table": [r.to_dict() for r in rows], "family_recall": holdout,
        "feature_auc": feature_aucs, "cnn_history": history, "timings": timings,
        "sizes": asdict(sizes), "seed": seed, "quick": quick,
        "data": {s: {"packages": sorted({t.package for t in ts}), "tracks": len(ts),
                     "minutes": round(sum(t.duration_s for t in ts) / 60, 1)} for s, ts in split.items()},
        "counts": {"cnn_train_clips": int(len(train_set.labels)), "cnn_val_clips": int(len(val_set.labels)),
                   "head_examples": len(head_scored), "calib_examples": len(calib_scored),
                   "test_examples_per_condition": len(test_scored["none"])},
        "families": {"trained": seen, "transfer_holdout": TRANSFER_HOLDOUT},
    }
    _save_json(out_dir / "metrics.json", metrics)
    card = write_model_card(out_dir, metrics, table, fusion)
    log(f"done in {timings['total_s'] / 60:.1f} min: {card}")
    return TrainResult(rows, card)


def _family_recall(fusion: FusionParams, scored: list[Scored], platt, head: LogisticModel) -> dict:
    """Per fake family (lossless condition): share called "ai" by the CNN path."""
    data = calibrate.fusion_data(scored, platt, head)
    probs = calibrate.fused_probabilities(fusion, data)["cnn"]
    out = {}
    for family in sorted({s.family for s in scored}):
        sel = np.array([s.family == family for s in scored])
        out[family] = {"n": int(sel.sum()),
                       "called_ai": round(float((probs[sel] >= fusion.ai_threshold).mean()), 4),
                       "called_human": round(float((probs[sel] <= fusion.human_threshold).mean()), 4)}
    return out


def _feature_aucs(scored: list[Scored]) -> dict[str, float]:
    """Single-feature ROC AUC (AI = positive) of each Demucs feature: which ones carry signal."""
    y = np.array([s.label for s in scored])
    return {f: round(roc_auc(y, np.array([s.features[f] for s in scored])), 4) for f in FEATURE_NAMES}
