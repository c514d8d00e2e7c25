"""Training pieces: metrics against brute force, threshold guarantees, reproducible examples, and
a smoke run of `aimusicd train --quick` that must produce loadable models and a model card, and
`aimusicd eval` on labelled folders of real files."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from itertools import product

import numpy as np
import pytest

from daemon.engines.demucs.features import FEATURE_NAMES
from daemon.engines.fusion import BANDLIMIT_LIMIT, LIVE, PACKAGED_FUSION, Delivery, FusionParams, fusion_inputs
from daemon.engines.logistic import LogisticModel
from daemon.hashing import sha256_file
from daemon.evaluation.fusion_data import FusionData, fused_probabilities
from daemon.evaluation.metrics import expected_calibration_error, recall_at_fpr, roc_auc, score_all
from daemon.training.calibrate import (CNN_PATH_FORMS, choose_cnn_path, choose_human_limits, codec_groups,
                                       choose_thresholds,
                                       fit_fusion, fit_head, package_weights,
                                       widened_band)
from daemon.training.scoring import Scored


def test_auc_matches_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.random(60) + 0.3 * y, 1)          # coarse scores: many ties
    pos, neg = s[y == 1], s[y == 0]
    brute = np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in product(pos, neg)])
    assert roc_auc(y, s) == pytest.approx(brute)


def test_recall_at_fpr_never_exceeds_the_false_positive_budget():
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(200), np.ones(100)].astype(int)
    s = np.r_[rng.normal(0, 1, 200), rng.normal(2, 1, 100)]
    r = recall_at_fpr(y, s, 0.01)
    threshold = np.sort(s[y == 1])[::-1][int(r * 100) - 1]
    assert np.mean(s[y == 0] >= threshold) <= 0.01
    assert 0.2 < r < 0.9


def test_verdict_scores_and_calibration_error():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.05, 0.1, 0.5, 0.95, 0.97, 0.5, 0.6, 0.02])
    labels = np.array(["human", "human", "uncertain", "ai", "ai", "uncertain", "uncertain", "human"])
    s = score_all(y, p, labels)
    assert s.human_fp_rate == 0.25 and s.ai_recall == 0.25 and s.ai_called_human == 0.25
    assert s.uncertain_human == 0.25 and s.uncertain_ai == 0.5
    assert expected_calibration_error(np.array([1, 0]), np.array([1.0, 0.0])) == 0.0


def _threshold_data(spread_mp3: float) -> tuple[np.ndarray, FusionData]:
    rng = np.random.default_rng(2)
    n = 400
    y = rng.integers(0, 2, n)
    group = [("none", "mp3", "aac", "opus")[i % 4] for i in range(n)]
    worse = np.array([g == "mp3" for g in group])
    p = 1 / (1 + np.exp(-(3 * (2 * y - 1) + rng.normal(0, 1 + spread_mp3 * worse, n))))
    return p, FusionData(np.zeros(n), np.full(n, np.nan), [LIVE] * n, y, group)


def test_thresholds_keep_human_false_positives_and_uncertainty_in_every_codec_group():
    p, data = _threshold_data(spread_mp3=0.0)
    ai_t, human_t = choose_thresholds({"fused": p}, data)
    for g in set(data.group):
        sel = (data.y == 0) & np.array([x == g for x in data.group])
        assert np.mean(p[sel] >= ai_t) <= 0.01
        assert np.mean(p[sel] > human_t) <= 0.025
    assert 0.01 < human_t < 0.5 < ai_t


def test_human_threshold_never_above_even_odds():
    """Human music in one codec group overlapping the fakes would push the 95th percentile far
    above 0.5; the verdict "human" stops at even odds and the overlap stays "uncertain"."""
    p, data = _threshold_data(spread_mp3=1.5)
    ai_t, human_t = choose_thresholds({"fused": p}, data)
    mp3_humans = (data.y == 0) & np.array([g == "mp3" for g in data.group])
    assert np.quantile(p[mp3_humans], 0.95) > 0.5
    assert human_t == 0.5 < ai_t
    assert np.mean(p[mp3_humans] >= ai_t) <= 0.01
    lo, hi = widened_band(human_t, ai_t)
    assert lo < human_t and hi > ai_t


def test_human_limits_are_the_narrowest_range_that_costs_human_music_little():
    """An image score beyond anything human music shows keeps a low-probability example from
    "human"; threshold and limits leave at most 4 % of human calibration music "uncertain" per group."""
    rng = np.random.default_rng(4)
    n = 800
    y = np.r_[np.zeros(n // 2, int), np.ones(n // 2, int)]
    images = np.where(y == 1, rng.normal(6.0, 1.0, n), rng.normal(1.0, 1.0, n))
    cnn = rng.normal(-3.0, 1.0, n)          # the CNN cannot tell these AI examples from human ones
    group = [("none", "mp3")[i % 2] for i in range(n)]
    data = FusionData(cnn, np.full(n, np.nan), [LIVE] * n, y, group, images=images)
    p = 1 / (1 + np.exp(-cnn))
    limits = choose_human_limits({"cnn+img": p}, data, 0.99, 0.5)
    assert set(limits) == {"cnn_logit", "images_score", "bandlimit"} and limits["bandlimit"] == BANDLIMIT_LIMIT
    human = y == 0
    assert np.quantile(images[human], 0.9) < limits["images_score"] <= images[human].max()
    beyond = np.array([any(v > limits.get(k, np.inf) for k, v in data.typical_values(i, ("cnn", "images")).items())
                       for i in range(n)])
    for g in ("none", "mp3"):
        sel = human & np.array([x == g for x in group])
        assert beyond[sel].mean() <= 0.04
    assert beyond[~human].mean() > 0.9      # most of the unfamiliar output is not vouched for


def test_thresholds_hold_in_each_condition_that_random_deliveries_reach_too_rarely():
    """A few MP3 64 kbps examples among the random deliveries cannot hold a threshold; the human
    music delivered through that condition, joined for the thresholds only, makes it hold there."""
    data, tracks, packages = _fusion_data(demucs_signal=0.0, seed=6)
    rng = np.random.default_rng(7)
    m = 200                               # human music only, whose CNN reads it as far more AI-like
    under = FusionData(rng.normal(1.5, 1.0, m), np.full(m, np.nan), [Delivery(True, 0.45)] * m,
                       np.zeros(m, int), ["mp3-64"] * m, images=rng.normal(0, 1, m))
    alone, _ = fit_fusion(data, tracks, packages, "t", CNN_PATH_FORMS["codec-aware"])
    held, _ = fit_fusion(data, tracks, packages, "t", CNN_PATH_FORMS["codec-aware"], conditions=under)
    assert held.cnn_only.coef == alone.cnn_only.coef          # fitted on the same music
    p = fused_probabilities(held, under)["cnn+img"]
    assert np.mean(p >= held.ai_threshold) <= 0.01 < np.mean(p >= alone.ai_threshold)
    assert codec_groups([_scored("mp3-64")]) == ["mp3"] and codec_groups([_scored("mp3-64")], True) == ["mp3-64"]


def _scored(codec: str) -> Scored:
    return Scored("pkg", "t.ogg", "human", 0, codec, True, 15000.0, 0.0, None)


def _fusion_data(demucs_signal: float, seed: int, images_signal: float = 0.0
                 ) -> tuple[FusionData, list[str], list[str]]:
    """400 examples with a CNN logit and an image score carrying `images_signal`, the first 80
    also with a Demucs logit carrying `demucs_signal` (0: noise only); lossy deliveries weaken the
    CNN. Two examples per track, four packages."""
    rng = np.random.default_rng(seed)
    n = 400
    y = rng.integers(0, 2, n)
    lossy = rng.random(n) < 0.6
    cnn = (2 * y - 1) * np.where(lossy, 0.8, 2.0) + rng.normal(0, 1.2, n)
    demucs = np.where(np.arange(n) < 80, demucs_signal * (2 * y - 1) + rng.normal(0, 1, n), np.nan)
    images = images_signal * y + rng.normal(0, 1, n)
    deliveries = [Delivery(bool(q), 0.45 if q else 0.0) for q in lossy]
    tracks = [f"track{i // 2}" for i in range(n)]
    packages = [f"package{i % 4}" for i in range(n)]
    return (FusionData(cnn, demucs, deliveries, y, ["mp3" if q else "none" for q in lossy], images=images),
            tracks, packages)


def test_fusion_learns_the_codec_and_keeps_a_demucs_correction_only_where_it_helps_out_of_fold():
    noise, tracks, packages = _fusion_data(demucs_signal=0.0, seed=4)
    params, checks = fit_fusion(noise, tracks, packages, "t", CNN_PATH_FORMS["codec-aware"])
    check = checks.demucs
    probs = fused_probabilities(params, noise)
    both = ~np.isnan(probs["fused"])
    assert both.sum() == 80 and not np.isnan(probs["cnn"]).any()
    # uninformative evidence fails the held-out tests: fused is the CNN-only model exactly
    assert (check.rows, check.groups, check.unit) == (80, 40, "track")
    assert not check.kept and check.logloss_corrected > check.logloss_before
    assert not checks.images.kept and not params.weighs_images
    assert np.array_equal(probs["fused"][both], probs["cnn"][both])
    assert np.array_equal(probs["cnn+img"], probs["cnn"])
    # lossy input weakens the CNN: the CNN-only model trusts its logit less there
    lossless = params.cnn_only.probability_of(fusion_inputs(2.0, None, Delivery(False, 0.0)))
    lossy = params.cnn_only.probability_of(fusion_inputs(2.0, None, Delivery(True, 0.45)))
    assert lossless > lossy > 0.5
    # the CNN-only model takes the form it is given (the CNN path choice's)
    platt_only, _ = fit_fusion(noise, tracks, packages, "t", CNN_PATH_FORMS["platt-only"])
    assert platt_only.cnn_only.features == ["cnn_logit"]
    assert platt_only.cnn_only.probability_of(fusion_inputs(2.0, None, Delivery(True, 0.45))) == \
        platt_only.cnn_only.probability_of(fusion_inputs(2.0, None, Delivery(False, 0.0)))

    signal, tracks, packages = _fusion_data(demucs_signal=2.0, seed=4)
    params, checks = fit_fusion(signal, tracks, packages, "t", CNN_PATH_FORMS["codec-aware"])
    assert checks.demucs.kept and checks.demucs.logloss_corrected < checks.demucs.logloss_before - 0.05
    probs = fused_probabilities(params, signal)
    y = signal.y[both]
    assert roc_auc(y, probs["fused"][both]) > roc_auc(y, probs["cnn"][both]) + 0.03
    assert FusionParams.from_dict(json.loads(json.dumps(params.to_dict()))) == params


def test_image_score_is_kept_only_where_it_helps_on_held_out_packages():
    data, tracks, packages = _fusion_data(demucs_signal=0.0, seed=5, images_signal=2.0)
    params, checks = fit_fusion(data, tracks, packages, "t", CNN_PATH_FORMS["codec-aware"])
    assert (checks.images.rows, checks.images.groups, checks.images.unit) == (400, 4, "package")
    assert checks.images.kept and checks.images.logloss_corrected < checks.images.logloss_before - 0.05
    assert params.weighs_images
    probs = fused_probabilities(params, data)
    assert roc_auc(data.y, probs["cnn+img"]) > roc_auc(data.y, probs["cnn"]) + 0.03
    # where the score is unknown (live windows), the path is the CNN's alone
    unknown = dataclasses.replace(data, images=np.full(len(data.y), np.nan))
    assert np.array_equal(fused_probabilities(params, unknown)["cnn+img"], probs["cnn"])


def test_logistic_fit_weights_count_like_repeated_rows():
    rng = np.random.default_rng(6)
    x = rng.normal(0, 1, (300, 2))
    y = (rng.random(300) < 1 / (1 + np.exp(-(x[:, 0] - 0.5 * x[:, 1])))).astype(int)
    times = rng.integers(1, 4, 300)
    weighted = LogisticModel.fit(["a", "b"], x, y, l2=1e-9, weight=times)
    repeated = LogisticModel.fit(["a", "b"], np.repeat(x, times, axis=0), np.repeat(y, times), l2=1e-9)
    z = rng.normal(0, 1, (20, 2))
    np.testing.assert_allclose(weighted.logit(z), repeated.logit(z), rtol=1e-6, atol=1e-6)


def _calibration_rows(shifts: tuple[float, float, float], lossy_quirk: float = 0.0,
                      lossy_slope: float = 1.0) -> list[Scored]:
    """Three calibration packages of human and fake examples (one raw CNN logit each, every other
    pair through a lossy codec): "big" holds 80 % of them; each package's human music sits its shift
    closer to the fakes, and big's lossy human music `lossy_quirk` closer still; lossy delivery
    scales every raw logit by `lossy_slope` (the codec's own effect, shared by all packages)."""
    rng = np.random.default_rng(7)
    rows = []
    for (package, n), shift in zip((("big", 400), ("small-a", 50), ("small-b", 50)), shifts):
        for i in range(n):
            label, lossy = i % 2, i % 4 >= 2
            raw = rng.normal(4.0, 2.0) if label else rng.normal(-4.0 + shift, 2.0)
            if lossy and not label and package == "big":
                raw += lossy_quirk
            if lossy:
                raw *= lossy_slope
            rows.append(Scored(package, f"{package}-{i // 10}", "upsampler" if label else "human", label,
                               "mp3-128" if lossy else "none", lossy, 0.45 if lossy else 0.0, raw, None))
    return rows


def test_the_cnn_path_keeps_codec_terms_and_package_weights_only_where_they_predict_unseen_packages_better():
    head = fit_head([Scored("p", "t", "human", i % 2, "none", False, 0.0, 0.0,
                            {f: float(i % 2) for f in FEATURE_NAMES}) for i in range(8)])
    odd_big = _calibration_rows((5.0, 0.0, 0.0))     # the package holding most examples is the odd one
    weights, choice = choose_cnn_path(odd_big, head)
    assert choice.packages == 3 and choice.weighing == "packages alike"
    np.testing.assert_allclose(weights, package_weights([s.package for s in odd_big]))
    assert weights[0] * 400 == pytest.approx(weights[-1] * 50)     # each package weighs the same in total
    loss = choice.logloss
    assert min(loss["codec-aware"]["packages alike"], loss["platt-only"]["packages alike"]) < min(
        loss["codec-aware"]["examples alike"], loss["platt-only"]["examples alike"])

    odd_small = _calibration_rows((0.0, 4.0, -4.0))   # the small ones are odd, each its own way
    weights, choice = choose_cnn_path(odd_small, head)
    assert choice.weighing == "examples alike" and np.all(weights == 1.0)

    # A codec that flattens every package's logits: the codec terms undo it out of package.
    flattened = _calibration_rows((0.0, 0.0, 0.0), lossy_slope=0.25)
    _, choice = choose_cnn_path(flattened, head)
    assert choice.form == "codec-aware" and choice.features == CNN_PATH_FORMS["codec-aware"]
    assert choice.logloss["codec-aware"][choice.weighing] < choice.logloss["platt-only"][choice.weighing] - 0.02

    # Lossy human music that looks AI-like in one package only: codec terms fitted with it mislead
    # on the packages without it, and Platt scaling alone predicts them better.
    quirk = _calibration_rows((0.0, 0.0, 0.0), lossy_quirk=6.0)
    _, choice = choose_cnn_path(quirk, head)
    assert choice.form == "platt-only" and choice.features == ["cnn_logit"]

    one = [s for s in odd_big if s.package == "big"]   # nothing to hold out: the defaults, untested
    weights, choice = choose_cnn_path(one, head)
    assert (choice.packages, choice.logloss) == (1, {}) and np.all(weights == 1.0)
    assert (choice.form, choice.weighing) == ("codec-aware", "examples alike")


def test_logistic_fit_with_an_offset_learns_only_the_correction():
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, (3000, 2))
    offset = 2.0 * rng.normal(0, 1, 3000)
    y = (rng.random(3000) < 1 / (1 + np.exp(-(offset + 1.5 * x[:, 0])))).astype(int)
    m = LogisticModel.fit(["a", "b"], x, y, l2=1e-3, offset=offset)
    coef = np.array(m.coef) / np.array(m.scale)
    assert coef[0] == pytest.approx(1.5, abs=0.25) and abs(coef[1]) < 0.2


def test_examples_render_reproducibly_with_codec_and_fake(tmp_path):
    import soundfile as sf

    from daemon.evaluation.codecs import CodecSpec
    from daemon.training.corpora import Track
    from daemon.training.examples import Item, render, render_conditions
    from support.audio import music

    path = tmp_path / "t.ogg"
    sf.write(path, music(12, 44100).T, 44100, format="OGG", subtype="VORBIS")
    track = Track("pkg", "train", "t", (path,), 12.0)
    item = Item(track, 2.0, 6.0, "tconv", CodecSpec("mp3", 128), via_48k=True, gain_db=-3.0, seed=5)
    a, b = render(item), render(item)
    assert a.shape == (2, 6 * 44100) and np.array_equal(a, b)
    human = render(Item(track, 2.0, 6.0, "human", CodecSpec("none", 0), False, 0.0, 5))
    assert not np.allclose(a, human, atol=1e-3)
    assert np.corrcoef(a[0], human[0])[0, 1] > 0.8          # same music, another fingerprint
    # Evaluation conditions share the rendering up to the codec: the same samples as one by one.
    lossless = CodecSpec("none", 0)
    c, d = render_conditions(item, (item.codec, lossless))
    assert np.array_equal(c, a) and np.array_equal(d, render(dataclasses.replace(item, codec=lossless)))
    assert not np.allclose(c, d, atol=1e-3)


def test_score_conditions_gives_every_condition_its_examples(tmp_path):
    import soundfile as sf

    from daemon.evaluation.codecs import CodecSpec
    from daemon.training.corpora import Track
    from daemon.training.examples import Item
    from daemon.training.scoring import score_conditions
    from support.audio import music

    loud, silent = tmp_path / "loud.ogg", tmp_path / "silent.ogg"
    sf.write(loud, music(8, 44100).T, 44100, format="OGG", subtype="VORBIS")
    sf.write(silent, np.zeros((8 * 44100, 2)), 44100, format="OGG", subtype="VORBIS")
    items = [Item(Track("pkg", "test", name, (path,), 8.0), 1.0, 6.0, "human", CodecSpec("none", 0),
                  False, 0.0, 1) for name, path in (("silent", silent), ("loud", loud))]
    conditions = (CodecSpec("none", 0), CodecSpec("mp3", 64))
    scored = score_conditions(items, conditions, None, None, lambda i: False, 1, lambda m: None, "t")
    assert list(scored) == ["none", "mp3-64"]
    assert [[(s.track, s.codec) for s in ss] for ss in scored.values()] == [[("loud", "none")],
                                                                          [("loud", "mp3-64")]]
    assert scored["mp3-64"][0].bandwidth_hz < scored["none"][0].bandwidth_hz - 3000   # MP3's low-pass
    assert all(s.images is not None and s.images >= 0 for ss in scored.values() for s in ss)
    assert score_conditions([], conditions, None, None, lambda i: False, 1, lambda m: None, "t") == \
        {"none": [], "mp3-64": []}


@pytest.mark.slow
@pytest.mark.weights
@pytest.mark.timeout(1500)
def test_quick_training_run_produces_loadable_models_and_a_model_card(real_weights, tmp_path):
    def train(out, *extra):
        return subprocess.run([sys.executable, "-m", "daemon", "train", "--quick", "--out", str(out),
                               "--work", str(tmp_path / "work"), *extra], capture_output=True, text=True,
                              timeout=1200, env=dict(os.environ, PYTHONUNBUFFERED="1"))

    refused = train(tmp_path / "never", "--reuse-cnn")
    assert refused.returncode != 0 and "--reuse-cnn" in refused.stderr and "Traceback" not in refused.stderr
    out = tmp_path / "models"
    run = train(out)
    assert run.returncode == 0, run.stderr[-3000:]
    card = (out / "MODEL_CARD.md").read_text()
    assert "QUICK SMOKE RUN" in card and "| `cnn.safetensors` |" in card
    assert "subpixel (transfer)" in card and "hifigan-16k (transfer)" in card
    assert "autoencoder (transfer)" not in card
    metrics = json.loads((out / "metrics.json").read_text())
    conditions = {r["condition"] for r in metrics["table"]}
    assert conditions == {"none", "pcm16", "mp3-320", "mp3-128", "mp3-64", "aac-128", "opus-64"}
    # three kinds of rows in every condition: our fakes, real generator output, transfer families
    assert {(r["kind"], r["condition"]) for r in metrics["table"]} == {
        (k, c) for k in ("fakes", "real", "transfer") for c in conditions}
    for condition in conditions:     # the CNN on the fused row's examples, for a like-for-like comparison
        by_engine = {r["engine"]: r for r in metrics["table"]
                     if r["condition"] == condition and r["kind"] == "fakes"}
        assert by_engine["cnn-sub"]["n_ai"] == by_engine["fused"]["n_ai"] < by_engine["cnn"]["n_ai"]
        real = {r["engine"]: r for r in metrics["table"] if r["condition"] == condition and r["kind"] == "real"}
        assert real["cnn+img"]["n_ai"] == 2 and {"fprint", "fused", "auto"} <= set(real)
    for source, check in metrics["correction_checks"].items():
        assert check["rows"] >= 2, source
        assert check["kept"] == (check["logloss_corrected"] < check["logloss_before"]), source
    assert "### Does further evidence enter the verdict?" in card and "| images | package |" in card
    cnn_path = metrics["cnn_path"]    # the quick run calibrates on one human package and the real output
    assert cnn_path["packages"] == 2 and cnn_path["form"] in CNN_PATH_FORMS and cnn_path["logloss"]
    assert "### The CNN path: codec terms and weighting" in card and "2 calibration packages" in card
    assert metrics["families"] == {
        "cnn": ["upsampler", "tconv", "upconv", "autoencoder"],
        "trained": ["upsampler", "tconv", "upconv", "autoencoder", "hifigan-universal", "hifigan-ljspeech"],
        "transfer_holdout": ["subpixel", "hifigan-16k"], "real": ["ace-step-1.5"], "vocoder_variant": "splice"}
    # the real tracks' splits never share a prompt (the seeds of one prompt share their music)
    prompts = {s: {t.split("/")[-1].rsplit("_", 1)[0] for t in d["tracks"]} for s, d in metrics["real_data"].items()}
    assert not (prompts["train"] & prompts["calib"] or prompts["train"] & prompts["test"]
                or prompts["calib"] & prompts["test"])
    assert (out / "generators" / "ace-step-1.5.json").is_file() and "### Generator fingerprints" in card
    tail = metrics["calib_human_tail"]        # the calibration humans that set the ai threshold
    assert tail and all(t["n"] >= 1 and 0 <= t["mean_p"] <= t["max_p"] <= 1 for t in tail)
    assert [t["max_p"] for t in tail] == sorted((t["max_p"] for t in tail), reverse=True)
    assert f"| {tail[0]['track']} | {tail[0]['n']} |" in card

    # A second run re-fits on the first one's CNN, autoencoder and Demucs features: same models.
    again = train(tmp_path / "again", "--reuse-cnn")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "reusing" in again.stderr and "epoch 1/" not in again.stderr
    for name in ("demucs_head.json", "fusion.json", "generators/ace-step-1.5.json"):
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name
    from safetensors import safe_open   # its header order varies from process to process: compare contents

    first, second = (safe_open(str(d / "cnn.safetensors"), framework="pt") for d in (out, tmp_path / "again"))
    assert first.metadata() == second.metadata() and set(first.keys()) == set(second.keys())
    assert all(first.get_tensor(k).equal(second.get_tensor(k)) for k in first.keys())

    from daemon.engines.cnn import CnnEngine
    from daemon.engines.demucs.engine import DemucsHead
    from daemon.engines.fusion import Fusion

    CnnEngine(out / "cnn.safetensors")
    DemucsHead.load(out / "demucs_head.json")
    fusion = Fusion.load(out / "fusion.json")
    assert 0 < fusion.human_threshold < fusion.ai_threshold < 1


def test_eval_command_prints_the_condition_by_engine_table_for_labelled_folders(tmp_path):
    import soundfile as sf

    from daemon.training.fakes import make_fake
    from support.audio import music

    human, ai = tmp_path / "human", tmp_path / "ai"
    human.mkdir(), ai.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        x = music(8, 44100, seed=20 + i)
        sf.write(human / f"h{i}.wav", x.T, 44100, subtype="PCM_16")
        sf.write(ai / f"a{i}.flac", make_fake("upsampler", x, 44100, rng).T, 44100)
    (ai / "notes.txt").write_text("not audio, not matched by the patterns")
    base = [sys.executable, "-m", "daemon", "eval", "--human", str(human), "--ai", str(ai),
            "--engines", "cnn", "--conditions", "as-given", "pcm16", "mp3-64"]
    run = subprocess.run(base + ["--json"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = json.loads(run.stdout)
    assert {(r["condition"], r["engine"]) for r in rows} >= {("as-given", "cnn"), ("pcm16", "cnn"), ("mp3-64", "cnn")}
    for r in rows:
        if r["engine"] == "cnn":
            assert r["n_ai"] == 3 and r["n_human"] == 3 and 0.0 <= r["auc"] <= 1.0
    assert "3 human and 3 AI files" in run.stderr and "mp3-64: 6 files analysed, 0 failed" in run.stderr

    table = subprocess.run(base[:-1], capture_output=True, text=True, timeout=600)
    assert table.returncode == 0 and table.stdout.splitlines()[0].split()[:4] == ["kind", "condition", "engine", "n_ai"]

    missing = subprocess.run(base[:5] + [str(tmp_path / "nope"), "--ai", str(ai)],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "nope: not a folder" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_the_shipped_model_card_names_every_shipped_file_with_its_sha256():
    """Models are committed with the card their training run wrote: a file changed without a
    re-run (or a card edited by hand) shows here."""
    models = PACKAGED_FUSION.parent
    listed = dict(re.findall(r"^\| `([\w./-]+)` \| [\d,]+ \| `([0-9a-f]{64})` \|$",
                             (models / "MODEL_CARD.md").read_text(), re.MULTILINE))
    shipped = {str(p.relative_to(models)) for p in models.rglob("*") if p.suffix in (".safetensors", ".json")}
    assert set(listed) == shipped
    for name, digest in listed.items():
        assert sha256_file(models / name) == digest, name
