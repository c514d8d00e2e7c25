"""MODEL_CARD.md for the shipped models: data, split, method, held-out metrics, checksums."""

from __future__ import annotations

import time
from pathlib import Path

from ..engines.fusion import BANDLIMIT_LIMIT, MIN_HUMAN_BAND_HZ, NARROW_BAND_HZ, FusionParams
from ..evaluation.codecs import EVAL_CONDITIONS
from ..hashing import sha256_file
from .calibrate import (AI_THRESHOLD_RANGE, CALIB_UNCERTAIN, HUMAN_THRESHOLD_MAX, HUMAN_THRESHOLD_UNCERTAIN,
                        MAX_HUMAN_FP, MAX_HUMAN_UNCERTAIN)
from .fakes import FAMILIES


def write_model_card(out_dir: Path, metrics: dict, table: str, fusion: FusionParams) -> Path:
    data = metrics["data"]
    counts = metrics["counts"]
    fam = metrics["families"]
    files = ["cnn.safetensors", "demucs_head.json", "fusion.json", "human_reference.json", "metrics.json",
             *(f"generators/{g}.json" for g in metrics["fingerprints"])]
    sums = "\n".join(f"| `{f}` | {(out_dir / f).stat().st_size:,} | `{sha256_file(out_dir / f)}` |"
                     for f in files if (out_dir / f).exists())
    real = metrics["real_data"]
    real_splits = "\n".join(f"| {name} | {len(d['tracks'])} | {d['minutes']} | "
                             f"{', '.join(sorted({t.split('/')[-1].rsplit('_', 1)[0] for t in d['tracks']}))} |"
                             for name, d in real.items())
    prints = "\n".join(f"| {name} | {f['train_positive']} of {f['train_examples']} | {f['calib_auc']:.3f} | "
                        f"{f['threshold']} | {f['calib_human_fp']:.3f} |" for name, f in metrics["fingerprints"].items())
    limits = ", ".join(f"`{k}` <= {v}" for k, v in fusion.human_limits.items()) or "none"
    narrow_limits = ", ".join(f"`{k}` <= {v}" for k, v in fusion.narrow_human_limits.items()) or "as wide-band"
    demucs_on_real = _demucs_on_real(metrics["table"])
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
    band_text = "; ".join(f"band edge {b['band']}: AUC {b['auc']:.2f} on {b['n_human']} human and {b['n_ai']} AI-like "
                          "examples" for b in metrics["calib_band_auc"])
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
    if counts.get("evidence_entries_cached") and not counts.get("evidence_entries_rendered"):
        reuse_text += (", every example's evidence taken from the work folder, where an earlier run of the "
                       "same command rendered and measured it")
    text = f"""# aimusicd models{quick}

Produced by `aimusicd train --seed {metrics['seed']}{' --quick' if metrics['quick'] else ''}{reuse_flag}` on
{time.strftime('%Y-%m-%d')}, {metrics['timings']['total_s'] / 60:.0f} min on this machine{reuse_text}. Every
figure below is measured on the **test** split, whose packages, tracks and prompts were seen by no
model and no calibration step. Three kinds of rows: `fakes` (our own fakes of the families that
train: they teach features, they prove nothing about real generators), `real` (**real generator
output**: the held-out ACE-Step 1.5 tracks) and `transfer` (fake families kept out of every
training and calibration step). The real rows hold one generator's output (12 tracks): accuracy on
generators we do not have is measured by the team, not here.

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
  ai >= {fusion.ai_threshold}, human <= {fusion.human_threshold}, and the human limits ({limits}; with
  a band edge below {NARROW_BAND_HZ / 1000:g} kHz: {narrow_limits}):
  "human" only where p is at most its threshold and every piece of evidence at most its limit;
  auto mode also runs Demucs on lossy input whose fast-pass probability lies in {list(fusion.lossy_band)}.
- `human_reference.json`: statistics of the human training and calibration music (never its audio):
  the peak spectrum's mean and spread, and quantiles of each piece of evidence and Demucs feature.
- `generators/*.json`: one fingerprint model per known generator (`daemon/engines/fingerprint.py`):
  logistic regression over the long-term spectrum's peaks (n_fft 16384, lower envelope removed,
  pooled to 21.5 Hz, zero above the band edge), Platt-scaled, with its own threshold.

## Data

Human music only from the Debian packages listed in the team's corpora notes, split by package:

| split | packages | tracks | minutes |
|---|---|---|---|
{splits}

"AI-like" examples are made from the same split's human music by content-preserving decoder
fingerprint families (`daemon/training/fakes.py`; the learned one in `daemon/training/autoencoder.py`):

{families}

Trained on: {', '.join(fam['trained'])} (the CNN's own clips: {', '.join(fam['cnn'])}; the vocoders
run slower than real time here, too slow for its 10,000 clips, so they train the Demucs head, the
fingerprints' negatives and the calibration). Vocoded band: `{fam['vocoder_variant']}`. Held out of
all training and calibration: **{', '.join(fam['transfer_holdout'])}** (reported below as transfer).

**Real generator output** (PyPI `immich-memories-music` 0.1.0, 28 ACE-Step 1.5 tracks, Ogg Opus
~128 kbps): split by prompt (mood x style; the seeds of one prompt share their music), fixed by the
sha256 of the prompt's name, so no track and no prompt sits on both sides:

| split | tracks | minutes | prompts |
|---|---|---|---|
{real_splits}

Train tracks teach the fingerprint and the Demucs head (two 8 s excerpts each); calibration tracks
(whole, {metrics['sizes']['real_variants']} deliveries each) enter Platt scaling, the fusion and the
fingerprint's calibration; test tracks (whole, once per condition) are the `real` rows.

Each example - human and fake alike - then goes through a delivery chain with fresh random settings:
gain -9..+3 dB with a limiter, a 48 kHz detour for 30 %, and a real stereo codec: lossless 35 %
(half of it 16-bit PCM with TPDF dither, half floating point), else MP3 64-320 kbps / AAC 96-256 kbps / Opus 64-160 kbps (40/30/30), the bitrate uniform within
each codec's range for calibration and test, and drawn with p ~ 1/kbps^2 for the CNN's training and
validation clips (MP3 64 kbps about a third of MP3 draws), so it learns most where the codec leaves
least of the fingerprint. In calibration (and the fingerprints' training) 15 % of examples are
delivered as mono files at 16-32 kHz, as low-rate generators write them and much human music has
been. Codec history therefore cannot stand in for the label. A random draw reaches each bitrate
rarely (MP3 64 kbps is a tenth of the MP3 examples), so the first
{metrics['sizes']['calib_conditions']} human calibration positions are also delivered through every
evaluation condition ({', '.join(c.label() for c in EVAL_CONDITIONS)}): the thresholds and human limits
must hold under each, not on average over bitrates. They set thresholds only; no model is fitted on them.

Counts: {counts['cnn_train_clips']} CNN training clips (6 s), {counts['cnn_val_clips']} validation
clips, {counts['head_examples']} Demucs head examples (8 s), {counts['calib_examples']} calibration
examples (30 s) and {counts['calib_condition_examples']} under the conditions (30 s),
{counts['test_examples_per_condition']} test examples per condition (30 s).
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

### Generator fingerprints

| generator | positives of train examples | calibration AUC | threshold | human calib. at or above |
|---|---|---|---|---|
{prints}

A match turns the verdict to "ai" only above its own threshold (the worst codec group's
{percentile}th percentile of human calibration music at twice its odds); it never enters the fused
probability, and it never vouches for "human". Its logit also bounds where "human" may be said.

### Does the Demucs engine add on real output?

{demucs_on_real}

### Recall by family (lossless condition, the fast pass)

| family | n | p >= 0.5 | called ai | called human | AUC vs human |
|---|---|---|---|---|---|
{recall}

Share at p >= 0.5 / share called "ai" at the shipped threshold, per condition:

| family | {conditions_head} |
|---|{conditions_rule}
{recall_by_condition}

### What sets the thresholds

The ai threshold ({fusion.ai_threshold}) sits just above the most AI-like human music of the
calibration split (the worst codec group's {percentile}th percentile at twice its odds, within {lo}-{hi};
the groups are the codec families of the random deliveries and each evaluation condition), so a few
whole tracks set it. The human threshold ({fusion.human_threshold}) is the worst group's
{100 * (1 - HUMAN_THRESHOLD_UNCERTAIN):.1f}th percentile likewise, but never above {HUMAN_THRESHOLD_MAX}: where that
percentile lies higher, human music overlaps the fakes, and the overlap is left "uncertain" rather
than fakes in it being called "human" with a probability that says "ai". On top, "human" needs every
piece of evidence inside the human limits: the narrowest range, as one quantile of human
calibration music for every piece of evidence, that leaves at most {100 * CALIB_UNCERTAIN:.0f} % of it
"uncertain" in any codec group, threshold and limits together (below the {100 * MAX_HUMAN_UNCERTAIN:.0f} % promised, for music
calibration did not see). Music whose band edge lies below {NARROW_BAND_HZ / 1000:g} kHz (MP3 at 64 kbps,
low-rate files) gets limits of its own: a codec that cuts there leaves its artefacts where the
fingerprints and the CNN look, so one range for all bands would be too wide for wide-band music.
Below {MIN_HUMAN_BAND_HZ / 1000:g} kHz (`bandlimit` > {BANDLIMIT_LIMIT}: 16 kHz files, as low-rate generators
write them) "human" is never said: there the fast pass does not tell our fakes from human calibration music
({band_text}). The human tracks the fast pass scores highest, over all their
examples:

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


def _demucs_on_real(table: list[dict]) -> str:
    """The Demucs head alone against the CNN alone on the same real test tracks (and the same
    human examples), per condition: what the position-free Demucs evidence carries on real output.
    The fused row is not the comparison here: a fingerprint match decides it."""
    rows = {(r["condition"], r["engine"]): r for r in table if r["kind"] == "real"}
    lines = ["| condition | AUC CNN (same tracks) | AUC Demucs head | Demucs head: ai called human / uncertain |",
             "|---|---|---|---|"]
    for (condition, engine), r in rows.items():
        if engine != "demucs":
            continue
        base = rows.get((condition, "cnn-sub"), rows.get((condition, "cnn")))
        lines.append(f"| {condition} | {base['auc']:.3f} | {r['auc']:.3f} | "
                     f"{r['ai_called_human']:.2f} / {r['uncertain_ai']:.2f} |")
    return "\n".join(lines) + ("\n\nThe Demucs correction enters verdicts only where the held-out check "
                               "below keeps it (see \"Does further evidence enter the verdict?\").")


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
