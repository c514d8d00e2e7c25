"""`aimusicd train`: corpora (human music, real generator output) -> examples (fakes of six
families, two vocoders among them) -> CNN -> engine evidence -> generator fingerprints -> Demucs
head, calibration and fusion -> held-out evaluation (our fakes, real generator output, transfer
families) -> shipped weights and model card. Deterministic for a seed; slow stages cache
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

from ..audio.resample import RESAMPLER
from ..engines import fingerprint
from ..engines.cnn import CnnEngine, CnnModelMeta, CnnNet, NetConfig, save_cnn
from ..engines.demucs.engine import DemucsEngine
from ..engines.demucs.features import FEATURE_NAMES
from ..engines.demucs.separation import Separator, load_htdemucs
from ..engines.fusion import MIN_HUMAN_BAND_HZ, NARROW_BAND_HZ, FusionParams
from ..engines.logistic import fit_platt
from ..errors import ModelError
from ..evaluation.codecs import EVAL_CONDITIONS
from ..evaluation.fusion_data import FusionData
from ..evaluation.metrics import roc_auc
from ..evaluation.table import Row, evaluate, format_table, verdicts
from ..hashing import sha256_file
from . import autoencoder, calibrate, cnn_train
from .corpora import load_corpora
from . import fingerprints, vocoders
from .examples import HUMAN, Item, plan, plan_real
from .fakes import TRANSFER_HOLDOUT, register
from .vocoders import TRANSFER_VOCODER, VOCODERS
from .wheels import ACE_STEP_MUSIC
from .modelcard import write_model_card
from .scoring import Scored, score_conditions, score_items

CNN_NAME = "aimusicd-cnn-v1"
HEAD_NAME = "aimusicd-demucs-head-v2"
FUSION_NAME = "aimusicd-fusion-v4"
# The CNN's fake families. The vocoders run slower than real time here, too slow for the CNN's
# 10,000 clips: they train the Demucs head, the fingerprints' negatives and the calibration.
CNN_FAMILIES = ("upsampler", "tconv", "upconv", "autoencoder")
TRAIN_VOCODERS = tuple(v for v in VOCODERS if v != TRANSFER_VOCODER)
VOCODER_VARIANT = "splice"
# A share of calibration and test examples is delivered as low-rate mono files: many generators
# write them, and much human music has been through such a round trip.
MONO_SHARE = 0.15


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
    vocoder_head: int         # positions with a vocoded twin, per stage (vocoding is the cost)
    vocoder_calib: int
    vocoder_test: int
    fingerprint_positions: int   # human / fake pairs the fingerprints learn what is *not* theirs from
    real_variants: int        # deliveries of each real train / calibration track
    real_tracks: int = 0      # real tracks per split at most (0: all)
    vocoder_test_demucs: int = 3   # test positions of the vocoders measured with Demucs too
    # Human calibration positions also delivered through every evaluation condition: the thresholds
    # must hold under each (MP3 64 kbps is a tenth of a random draw's MP3 examples), not on average.
    calib_conditions: int = 150
    clip_s: float = 6.0
    track_s: float = 30.0
    head_s: float = 8.0
    vocoder_s: float = 10.0
    fingerprint_s: float = 20.0


# Sized for under 2 hours on 2 CPU cores: the CNN stage about 45 min (10,000 clips rendered and 7
# epochs), HTDemucs (about 7 s per example), the vocoders and the codec round trips of the test
# conditions most of the rest.
FULL = Sizes(cnn_positions=5000, val_positions=300, epochs=7, head_positions=30,
             calib_positions=300, calib_demucs=20, test_positions=96, test_demucs=8,
             autoencoder_steps=600, vocoder_head=6, vocoder_calib=12, vocoder_test=9,
             fingerprint_positions=150, real_variants=8)
QUICK = Sizes(cnn_positions=32, val_positions=8, epochs=1, head_positions=3,
              calib_positions=6, calib_demucs=2, test_positions=5, test_demucs=1,
              autoencoder_steps=20, vocoder_head=1, vocoder_calib=2, vocoder_test=3,
              fingerprint_positions=6, real_variants=1, real_tracks=2, vocoder_test_demucs=0, calib_conditions=3,
              track_s=10.0, vocoder_s=4.0, fingerprint_s=10.0)


@dataclass
class TrainResult:
    rows: list[Row]
    card: Path


def _save_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


@dataclass
class Plans:
    """One stage's examples: items, and which of them HTDemucs measures too."""
    items: list[Item]
    demucs: list[bool]

    def __add__(self, other: "Plans") -> "Plans":
        return Plans(self.items + other.items, self.demucs + other.demucs)


def _plans(items: list[Item], measured: int) -> Plans:
    return Plans(items, [i < measured for i in range(len(items))])


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

    log("1/8 corpora: human music and real generator output")
    tracks = load_corpora(corpora_dir, quick, log)
    split = {s: [t for t in tracks if t.split == s and t.generator is None] for s in ("train", "calib", "test")}
    real = {s: [t for t in tracks if t.split == s and t.generator is not None][:sizes.real_tracks or None]
            for s in split}
    for name, ts in list(split.items()) + [(f"real {k}", v) for k, v in real.items()]:
        if not ts:
            raise ModelError(f"{corpora_dir}: no {name} tracks found")
    timings["corpora_s"] = time.perf_counter() - started

    log("2/8 learned fake family (autoencoder)")
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

    log("3/8 CNN")
    t0 = time.perf_counter()
    cnn_run = _cnn_stage(split, sizes, list(CNN_FAMILIES), seed, rng, workers, work_dir / f"cnn_raw_{suffix}",
                         reuse_cnn, log)
    cnn = CnnEngine(cnn_run.path)
    timings["cnn_s"] = time.perf_counter() - t0

    log("4/8 trained-decoder family (HiFi-GAN vocoders)")
    for spec in VOCODERS.values():
        register(vocoders.family(vocoders.load_vocoder(spec, corpora_dir, log), work_dir / "vocoded",
                                 VOCODER_VARIANT))
    seen = [*CNN_FAMILIES, *TRAIN_VOCODERS]
    transfer = [TRANSFER_HOLDOUT, TRANSFER_VOCODER]
    real_names = sorted({t.generator for t in tracks if t.generator})

    log("5/8 engine evidence (CNN, image score, fingerprint spectrum, Demucs)")
    t0 = time.perf_counter()
    separator = Separator(load_htdemucs(demucs_weights))
    demucs = DemucsEngine(separator, None, "htdemucs", sha256_file(demucs_weights), excerpts=1)
    # Every example's evidence (CNN, image score, spectrum, Demucs features): an interrupted or
    # repeated run renders only what is missing. The CNN's checksum and the resampler are in the
    # name: another CNN or another resampler, other evidence.
    cache_path = work_dir / (f"evidence_{suffix}_{sha256_file(cnn_run.path)[:12]}_{RESAMPLER}_"
                             f"fp{fingerprint.N_FFT}-{fingerprint.MAX_FRAMES}-{fingerprint.POOL}.json")
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    cached_before = len(cache)
    head_plan = (_plans(plan(split["train"], sizes.head_positions, sizes.head_s, list(CNN_FAMILIES), rng(3)), 10**9)
                 + _plans(plan(split["train"], sizes.vocoder_head, sizes.head_s, list(TRAIN_VOCODERS), rng(11)), 10**9)
                 + _plans(plan_real(real["train"], 2 if sizes.real_tracks == 0 else 1, sizes.head_s, rng(12)),
                          10**9))
    fingerprint_plan = (
        _plans(plan(split["train"], sizes.fingerprint_positions, sizes.fingerprint_s, list(CNN_FAMILIES), rng(13),
                    mono_share=MONO_SHARE), 0)
        + _plans(plan_real(real["train"], sizes.real_variants, None, rng(14), mono_share=MONO_SHARE), 0))
    calib_plan = (_plans(plan(split["calib"], sizes.calib_positions, sizes.track_s, list(CNN_FAMILIES), rng(4),
                         mono_share=MONO_SHARE), 2 * sizes.calib_demucs)
             + _plans(plan(split["calib"], sizes.vocoder_calib, sizes.vocoder_s, list(TRAIN_VOCODERS), rng(15),
                           mono_share=MONO_SHARE), sizes.vocoder_calib)
             + _plans(plan_real(real["calib"], sizes.real_variants, None, rng(16), mono_share=MONO_SHARE),
                      2 * len(real["calib"])))
    test_plan = (_plans(plan(split["test"], sizes.test_positions, sizes.track_s, [*CNN_FAMILIES, TRANSFER_HOLDOUT],
                        rng(5)), 2 * sizes.test_demucs)
            + _plans(plan(split["test"], sizes.vocoder_test, sizes.vocoder_s, list(VOCODERS), rng(17)),
                     2 * sizes.vocoder_test_demucs)
            + _plans(plan_real(real["test"], 1, None, rng(18)), len(real["test"])))
    head_scored = score_items(head_plan.items, None, demucs, lambda i: head_plan.demucs[i], workers, log,
                              "head examples", cache)
    _save_json(cache_path, cache)
    fp_scored = score_items(fingerprint_plan.items, None, None, lambda i: False, workers, log,
                            "fingerprint examples", cache)
    _save_json(cache_path, cache)
    calib_scored = score_items(calib_plan.items, cnn, demucs, lambda i: calib_plan.demucs[i], workers, log,
                               "calibration examples", cache)
    _save_json(cache_path, cache)
    calib_human = [i for i in calib_plan.items if i.family == HUMAN][:sizes.calib_conditions]
    conditions_scored = [s for ss in score_conditions(calib_human, EVAL_CONDITIONS, cnn, None, lambda i: False,
                                                      workers, log, "human calibration music under each condition",
                                                      cache).values() for s in ss]
    _save_json(cache_path, cache)
    test_scored = score_conditions(test_plan.items, EVAL_CONDITIONS, cnn, demucs, lambda i: test_plan.demucs[i],
                                   workers, log, "test examples", cache)
    _save_json(cache_path, cache)
    timings["evidence_s"] = time.perf_counter() - t0
    rendered = len(cache) - cached_before

    log("6/8 generator fingerprints")
    fits = [fingerprints.fit_generator(name, f"real {name} output (PyPI {ACE_STEP_MUSIC.requirement}), "
                                       "its train prompts", fp_scored + head_scored, calib_scored, conditions_scored)
            for name in real_names]
    generators = [f.generator for f in fits]
    for f in fits:
        log(f"  {f.generator.name}: calibration AUC {f.calib_auc:.4f}, threshold {f.generator.threshold}, "
            f"human false positives {f.calib_human_fp:.4f}")
    for scored in [calib_scored, conditions_scored, *test_scored.values()]:
        fingerprints.apply(generators, scored)
    # Every example's engine outputs, so calibration and fusion can be re-analysed without rendering.
    _save_json(work_dir / f"scored_{suffix}.json",
               {"head": [s.to_dict() for s in head_scored], "calib": [s.to_dict() for s in calib_scored],
                "calib_conditions": [s.to_dict() for s in conditions_scored],
                "test": {c: [s.to_dict() for s in ss] for c, ss in test_scored.items()}})

    log("7/8 calibration and fusion")
    head = calibrate.fit_head(head_scored)
    calib_raw = np.array([s.cnn_raw for s in calib_scored])
    calib_y = np.array([s.label for s in calib_scored])
    weights, cnn_path = calibrate.choose_cnn_path(calib_scored, head)
    log(f"  CNN path: {cnn_path.form}, {cnn_path.weighing}; leave-one-package-out log-loss "
        + ", ".join(f"{f} / {w} {v:.4f}" for f, ws in cnn_path.logloss.items() for w, v in ws.items())
        + f" ({cnn_path.packages} packages)")
    platt = fit_platt(calib_raw, calib_y, weights)
    calib_data = calibrate.fusion_data(calib_scored, platt, head, weights)
    fusion, checks = calibrate.fit_fusion(
        calib_data, [f"{s.package}: {s.track}" for s in calib_scored], [s.package for s in calib_scored],
        FUSION_NAME, cnn_path.features, calibrate.fusion_data(conditions_scored, platt, head, by_condition=True))
    for source, check in (("image", checks.images), ("Demucs", checks.demucs)):
        log(f"  {source} correction {'kept' if check.kept else 'zeroed'}: leave-one-{check.unit}-out "
            f"log-loss {check.logloss_corrected:.4f} against {check.logloss_before:.4f} without it "
            f"({check.rows} examples, {check.groups} {check.unit}s)")
    log(f"  thresholds: ai >= {fusion.ai_threshold}, human <= {fusion.human_threshold}; "
        f"lossy band {fusion.lossy_band}; human limits {fusion.human_limits}, narrow band {fusion.narrow_human_limits}")

    log("8/8 held-out evaluation")
    by_condition = {c: calibrate.fusion_data(s, platt, head) for c, s in test_scored.items()}
    kinds = {"fakes": set(seen), "real": set(real_names), "transfer": set(transfer)}
    rows = []
    for kind, families in kinds.items():
        rows += evaluate(fusion, {c: d.subset(_kind_mask(test_scored[c], families))
                                  for c, d in by_condition.items()}, kind=kind)
    table = format_table(rows)
    log(table)
    holdout = {c: _family_recall(fusion, test_scored[c], by_condition[c]) for c in test_scored}
    calib_fast_p = verdicts(fusion, calib_data, fusion.ai_threshold, fusion.human_threshold)["cnn+img"][0]
    human_tail = _human_tail(calib_scored, calib_fast_p)
    band_auc = _band_auc(calib_scored, calib_data.y, calib_fast_p)
    feature_aucs = _feature_aucs([s for s in calib_scored + head_scored if s.features])
    real_feature_aucs = {c: _feature_aucs([s for s in ss if s.features and (s.label == 0 or s.family in real_names)])
                         for c, ss in test_scored.items()}

    log("writing models")
    final_cnn = out_dir / "cnn.safetensors"
    net = CnnNet(cnn.meta.net)             # the raw net as trained (the engine's is BN-fused)
    net.load_state_dict(load_file(cnn_run.path))
    save_cnn(final_cnn, net, replace(cnn.meta, calib_a=platt[0], calib_b=platt[1]))
    _save_json(out_dir / "demucs_head.json", {"name": HEAD_NAME, "model": head.to_dict()})
    _save_json(out_dir / "fusion.json", fusion.to_dict())
    _save_json(out_dir / "human_reference.json", _human_reference(fp_scored + calib_scored, calib_data))
    generators_dir = out_dir / "generators"
    generators_dir.mkdir(exist_ok=True)
    for g in generators:
        _save_json(generators_dir / f"{g.name}.json", g.to_dict())
    timings["total_s"] = time.perf_counter() - started
    metrics = {
        "table": [r.to_dict() for r in rows], "family_recall": holdout, "calib_human_tail": human_tail,
        "calib_band_auc": band_auc,
        "cnn_path": cnn_path.to_dict(),
        "correction_checks": {"images": checks.images.to_dict(), "demucs": checks.demucs.to_dict()},
        "feature_auc": feature_aucs, "real_feature_auc": real_feature_aucs,
        "fingerprints": {f.generator.name: {"threshold": f.generator.threshold, **f.generator.metrics}
                         for f in fits},
        "cnn_history": cnn_run.history, "cnn_reused": cnn_run.reused, "timings": timings,
        "sizes": asdict(sizes), "seed": seed, "quick": quick,
        "data": {s: {"packages": sorted({t.package for t in ts}), "tracks": len(ts),
                     "minutes": round(sum(t.duration_s for t in ts) / 60, 1)} for s, ts in split.items()},
        "real_data": {s: {"generator": real_names, "tracks": sorted(t.name for t in ts),
                          "minutes": round(sum(t.duration_s for t in ts) / 60, 1)} for s, ts in real.items()},
        "counts": {**cnn_run.counts, "head_examples": len(head_scored), "calib_examples": len(calib_scored),
                   "calib_condition_examples": len(conditions_scored),
                   "fingerprint_examples": len(fp_scored), "evidence_entries_rendered": rendered,
                   "evidence_entries_cached": cached_before,
                   "test_examples_per_condition": len(test_scored["none"])},
        "families": {"cnn": list(CNN_FAMILIES), "trained": seen, "transfer_holdout": transfer,
                     "real": real_names, "vocoder_variant": VOCODER_VARIANT},
    }
    _save_json(out_dir / "metrics.json", metrics)
    card = write_model_card(out_dir, metrics, table, fusion)
    log(f"done in {timings['total_s'] / 60:.1f} min: {card}")
    return TrainResult(rows, card)


def _human_reference(scored: list[Scored], calib: FusionData) -> dict:
    """Statistics of the human music the models were fitted on, never its audio: the peak
    spectrum's mean and spread (what a user's generator pack is fitted against when they have no
    human music of their own), and quantiles of each piece of evidence and Demucs feature on the
    calibration split (the range reports show a file's evidence against)."""
    human = [s for s in scored if s.label == 0]
    spectra = np.stack([s.spectrum for s in human]).astype(np.float64)

    def quantiles(values) -> dict:
        v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
        return {"n": int(len(v)), **{f"p{q:02d}": round(float(np.quantile(v, q / 100)), 4)
                                     for q in (5, 50, 95, 99)}} if len(v) else {"n": 0}

    rows = np.nonzero(calib.y == 0)[0]
    evidence = {name: quantiles([calib.typical_values(i, ("cnn", "images", "fingerprint", "demucs")).get(name)
                                 for i in rows])
                for name in ("cnn_logit", "images_score", "fingerprint_logit", "demucs_logit")}
    measured = [s for s in human if s.features]
    return {"schema": "aimusicd.human-reference/1",
            "spectrum": {"n": len(human), "mean": np.round(spectra.mean(axis=0), 4).tolist(),
                         "std": np.round(spectra.std(axis=0), 4).tolist()},
            "evidence": evidence,
            "demucs_features": {f: quantiles([s.features[f] for s in measured]) for f in FEATURE_NAMES}}


def _kind_mask(scored: list[Scored], families: set[str]) -> np.ndarray:
    """Human examples and the AI examples of the given families."""
    return np.array([s.label == 0 or s.family in families for s in scored])


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
        "codecs": "favour-low-bitrates"}))
    if reuse:
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
        if not path.exists() or record.get("key") != key:
            raise ModelError(f"--reuse-cnn: {path} is missing or was trained with another seed, "
                             "sizes or families; run without --reuse-cnn")
        log(f"  reusing {path} (trained {record['trained']})")
        return CnnRun(path, record["history"], record["counts"],
                      {"trained": record["trained"], "seconds": record["seconds"]})
    started = time.perf_counter()
    # Low bitrates weigh more in the CNN's examples than in calibration and test, which stand for
    # the wild: the CNN learns most where the codec leaves least of the fingerprint.
    train_items = plan(split["train"], sizes.cnn_positions, sizes.clip_s, seen, rng(1),
                       favour_low_bitrates=True)
    val_items = plan(split["calib"], sizes.val_positions, sizes.clip_s, seen, rng(2),
                     favour_low_bitrates=True)
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


def _family_recall(fusion: FusionParams, scored: list[Scored], data: FusionData) -> dict:
    """Per AI family (one test condition, the fast pass: CNN, image score, fingerprints): share at
    p >= 0.5 (the operating point of the table's balanced accuracy), shares called "ai" and "human",
    and the ROC AUC of that family against all human examples."""
    probs, labels = verdicts(fusion, data, fusion.ai_threshold, fusion.human_threshold)["cnn+img"]
    human = data.y == 0
    out = {}
    for family in sorted({s.family for s in scored} - {HUMAN}):
        sel = np.array([s.family == family for s in scored])
        both = sel | human
        out[family] = {"n": int(sel.sum()),
                       "recall_at_half": round(float((probs[sel] >= 0.5).mean()), 4),
                       "called_ai": round(float((labels[sel] == "ai").mean()), 4),
                       "called_human": round(float((labels[sel] == "human").mean()), 4),
                       "auc": round(roc_auc(data.y[both], probs[both]), 4)}
    return out


def _human_tail(scored: list[Scored], probs: np.ndarray, top: int = 5) -> list[dict]:
    """The calibration split's human tracks the fast pass (CNN and image score) finds most AI-like:
    the ones that set the ai threshold (a few whole tracks, not scattered examples, sit at the top)."""
    by_track: dict[str, list[float]] = {}
    for s, p in zip(scored, probs):
        if s.label == 0:
            by_track.setdefault(f"{s.package}: {Path(s.track).name}", []).append(float(p))
    worst = sorted(by_track.items(), key=lambda kv: -max(kv[1]))[:top]
    return [{"track": name, "n": len(ps), "mean_p": round(float(np.mean(ps)), 4),
             "max_p": round(max(ps), 4)} for name, ps in worst]


BAND_TIERS_HZ = ((0.0, MIN_HUMAN_BAND_HZ), (MIN_HUMAN_BAND_HZ, NARROW_BAND_HZ), (NARROW_BAND_HZ, float("inf")))


def _band_auc(scored: list[Scored], y: np.ndarray, probs: np.ndarray) -> list[dict]:
    """The fast pass's ROC AUC on calibration music per band tier: where the evidence separates."""
    band = np.array([s.bandwidth_hz for s in scored])
    out = []
    for lo, hi in BAND_TIERS_HZ:
        sel = (band >= lo) & (band < hi)
        name = f"below {hi / 1000:g} kHz" if lo == 0 else f"{lo / 1000:g} kHz and up" if hi == float("inf") \
            else f"{lo / 1000:g}-{hi / 1000:g} kHz"
        out.append({"band": name, "n_human": int((sel & (y == 0)).sum()), "n_ai": int((sel & (y == 1)).sum()),
                    "auc": round(roc_auc(y[sel], probs[sel]), 4)})
    return out


def _feature_aucs(scored: list[Scored]) -> dict[str, float]:
    """Single-feature ROC AUC (AI = positive) of each Demucs feature: which ones carry signal."""
    y = np.array([s.label for s in scored])
    return {f: round(roc_auc(y, np.array([s.features[f] for s in scored])), 4) for f in FEATURE_NAMES}
