"""MODEL_CARD.md for the shipped models: data, split, method, held-out metrics, checksums."""

from __future__ import annotations

import time
from pathlib import Path

from ..engines.fusion import FusionParams
from ..hashing import sha256_file
from .calibrate import AI_THRESHOLD_RANGE, HUMAN_THRESHOLD_MAX, MAX_HUMAN_FP, MAX_HUMAN_UNCERTAIN
from .codecs import EVAL_CONDITIONS
from .fakes import FAMILIES


def write_model_card(out_dir: Path, metrics: dict, table: str, fusion: FusionParams) -> Path:
    data = metrics["data"]
    counts = metrics["counts"]
    fam = metrics["families"]
    files = ["cnn.safetensors", "demucs_head.json", "fusion.json", "metrics.json"]
    sums = "\n".join(f"| `{f}` | {(out_dir / f).stat().st_size:,} | `{sha256_file(out_dir / f)}` |"
                     for f in files if (out_dir / f).exists())
    splits = "\n".join(
        f"| {name} | {', '.join(d['packages'])} | {d['tracks']} | {d['minutes']} |" for name, d in data.items())
    families = "\n".join(f"- `{name}`: {f.description}" for name, f in FAMILIES.items())
    by_condition = metrics["family_recall"]

    def family_label(name: str) -> str:
        return f"{name}{' (transfer)' if name in fam['transfer_holdout'] else ''}"

    recall = "\n".join(
        f"| {family_label(name)} | {r['n']} | {r['recall_at_half']:.3f} | "
        f"{r['called_ai']:.3f} | {r['called_human']:.3f} | {r['auc']:.3f} |"
        for name, r in by_condition["none"].items())
    recall_by_condition = "\n".join(
        f"| {family_label(name)} | "
        + " | ".join(f"{by_condition[c][name]['recall_at_half']:.2f} / {by_condition[c][name]['called_ai']:.2f}"
                     for c in by_condition) + " |"
        for name in by_condition["none"])
    conditions_head = " | ".join(by_condition)
    conditions_rule = "---|" * len(by_condition)
    aucs = "\n".join(f"| {k} | {v:.3f} |" for k, v in sorted(
        metrics["feature_auc"].items(), key=lambda kv: -abs(kv[1] - 0.5)))
    tail = "\n".join(f"| {t['track']} | {t['n']} | {t['mean_p']:.3f} | {t['max_p']:.3f} |"
                     for t in metrics["calib_human_tail"])
    cnn_path = _cnn_path_text(metrics["cnn_path"])
    checks = metrics["correction_checks"]
    corrections = "\n".join(_correction_text(source, checks[source]) for source in ("images", "demucs"))
    percentile = f"{100 * (1 - MAX_HUMAN_FP):.0f}"
    lo, hi = AI_THRESHOLD_RANGE
    history = metrics["cnn_history"]
    kept = max(history, key=lambda h: h["val_auc"]) if history else {}   # cnn_train keeps the best-AUC epoch
    quick = " (QUICK SMOKE RUN: not for shipping)" if metrics["quick"] else ""
    reused = metrics.get("cnn_reused")
    reuse_flag = " --reuse-cnn" if reused else ""
    reuse_text = (f" plus the reused CNN's {reused['seconds'] / 60:.0f} min (trained by the same command "
                  f"on {reused['trained']})") if reused else ""
    text = f"""# aimusicd models{quick}

Produced by `aimusicd train --seed {metrics['seed']}{' --quick' if metrics['quick'] else ''}{reuse_flag}` on
{time.strftime('%Y-%m-%d')}, {metrics['timings']['total_s'] / 60:.0f} min on this machine{reuse_text}. Every
figure below is measured on the **test** split, whose packages and tracks were seen by no model and
no calibration step. Real AI-generated music was not available for training or testing: the "ai"
class here is our own fakes (below), so these figures say how well the detector separates human
music from *those* decoder fingerprints. The team scores every landed model on real AI music
separately.

## Files

| file | bytes | sha256 |
|---|---|---|
{sums}

- `cnn.safetensors`: log-mel CNN (128 mels, n_fft 2048, hop 1024 at 44.1 kHz; channels 16-32-64-128,
  fully convolutional in time), windows of 4 s; Platt-calibrated on the calib split.
- `demucs_head.json`: logistic regression on the HTDemucs residual and bleed features (one 7.8 s
  excerpt per training example; the daemon averages over 3).
- `fusion.json`: logistic fusion (CNN-only in the form chosen below, Demucs-only, and corrections
  for the image score and the Demucs evidence over the evidence and the codec history), thresholds
  ai >= {fusion.ai_threshold}, human <= {fusion.human_threshold}; auto mode also runs Demucs on lossy input
  whose CNN probability lies in {list(fusion.lossy_band)}.

## Data

Human music only from the Debian packages listed in the team's corpora notes, split by package:

| split | packages | tracks | minutes |
|---|---|---|---|
{splits}

"AI-like" examples are made from the same split's human music by content-preserving decoder
fingerprint families (`daemon/training/fakes.py`; the learned one in `daemon/training/autoencoder.py`):

{families}

Trained on: {', '.join(fam['trained'])}. Held out of all training and calibration:
**{', '.join(fam['transfer_holdout'])}** (reported below as transfer).

Each example - human and fake alike - then goes through a delivery chain with fresh random settings:
gain -9..+3 dB with a limiter, a 48 kHz detour for 30 %, and a real stereo codec: lossless 35 %,
else MP3 64-320 kbps / AAC 96-256 kbps / Opus 64-160 kbps (40/30/30), the bitrate uniform within
each codec's range for calibration and test, and drawn with p ~ 1/kbps^2 for the CNN's training and
validation clips (MP3 64 kbps about a third of MP3 draws), so it learns most where the codec leaves
least of the fingerprint. Codec history therefore cannot stand in for the label.

Counts: {counts['cnn_train_clips']} CNN training clips (6 s), {counts['cnn_val_clips']} validation
clips, {counts['head_examples']} Demucs head examples (8 s), {counts['calib_examples']} calibration
examples (30 s), {counts['test_examples_per_condition']} test examples per condition (30 s).
CNN: {len(history)} epochs, the one with the best validation AUC kept (epoch {kept.get('epoch', 0)}:
AUC {kept.get('val_auc', float('nan')):.4f}, loss {kept.get('val_loss', float('nan')):.4f}).

## Held-out results (test split)

Conditions are applied to the test examples after the fakes are made:
{', '.join(c.label() for c in EVAL_CONDITIONS)}. `bal_acc` is balanced accuracy of binary decisions at
p = 0.5; `rec@1%` the AI recall at 1 % human false positives; `hum_fp`, `ai_rec`, `unc_h`, `unc_ai`
are verdict rates at the shipped thresholds; `auto` is the tiered mode the daemon uses by default.
`cnn+img` is the CNN with the spectral-image score (`daemon/engines/images.py`), the path files take
before any Demucs run (live windows take the CNN alone). The Demucs and fused rows use the subset of
test examples measured with HTDemucs; `cnn-sub` is the CNN on exactly that subset, so fused and CNN
compare on the same music.

```
{table}
```

### Recall by fake family (lossless condition, CNN and image score)

| family | n | p >= 0.5 | called ai | called human | AUC vs human |
|---|---|---|---|---|---|
{recall}

Share at p >= 0.5 / share called "ai" at the shipped threshold, per condition:

| family | {conditions_head} |
|---|{conditions_rule}
{recall_by_condition}

### What sets the thresholds

The ai threshold ({fusion.ai_threshold}) sits just above the most AI-like human music of the
calibration split (the worst codec group's {percentile}th percentile at twice its odds, within {lo}-{hi}), so a few
whole tracks set it. The human threshold ({fusion.human_threshold}) is the worst group's
{100 * (1 - MAX_HUMAN_UNCERTAIN):.0f}th percentile likewise, but never above {HUMAN_THRESHOLD_MAX}: where that
percentile lies higher, human music overlaps the fakes, and the overlap is left "uncertain" rather
than fakes in it being called "human" with a probability that says "ai". The human tracks the fast
pass (CNN and image score) scores highest there, over all their examples:

| calibration track | n | mean p | max p |
|---|---|---|---|
{tail}

### The CNN path: codec terms and weighting

{cnn_path} The thresholds count every human example fully whatever the weighing.

### Does further evidence enter the verdict?

Each correction is added on top of what lies below it (the image score on the CNN-only logit, the
Demucs evidence on both) and is kept only if it lowers the log-loss on calibration music it was not
fitted on; otherwise it is zeroed and its evidence is only reported.

| correction | held out by | groups | examples | log-loss with | without | kept |
|---|---|---|---|---|---|---|
{corrections}

### Which Demucs features carry signal (single-feature ROC AUC, calib + head examples)

| feature | AUC |
|---|---|
{aucs}
"""
    path = out_dir / "MODEL_CARD.md"
    path.write_text(text)
    return path


def _correction_text(source: str, check: dict) -> str:
    return (f"| {source} | {check['unit']} | {check['groups']} | {check['rows']} | "
            f"{check['logloss_corrected']:.4f} | {check['logloss_before']:.4f} | "
            f"{'yes' if check['kept'] else 'no (zeroed)'} |")


def _cnn_path_text(choice: dict) -> str:
    if not choice["logloss"]:
        return (f"The calibration data holds {choice['packages']} package: nothing can be held out, so the "
                f"defaults stand untested: **{choice['form']}, {choice['weighing']}**.")
    weighings = list(next(iter(choice["logloss"].values())))
    rows = "\n".join(f"| {form} | " + " | ".join(f"{ws[w]:.4f}" for w in weighings) + " |"
                     for form, ws in choice["logloss"].items())
    return f"""Codec terms fitted on a few calibration packages can learn those packages' quirks rather
than the codec's effect, and one package can hold most of the calibration music. So each of the
{choice['packages']} calibration packages was left out in turn and the CNN path (Platt scaling and the
CNN-only fusion) fitted on the others in two forms - `codec-aware` (the CNN logit with the codec
evidence and its interactions: `lossy`, `bandlimit`, the logit times each) and `platt-only` - each
with every example weighing alike and with every package weighing alike. Mean log-loss on the
left-out packages:

| form | {' | '.join(weighings)} |
|---|{'---|' * len(weighings)}
{rows}

The lowest is shipped: **{choice['form']}, {choice['weighing']}**."""
