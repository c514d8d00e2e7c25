"""The engines on real arrays: the CNN's chunked inference, the Demucs features and excerpts,
the logistic model and the fusion's verdicts (tiny random models: plumbing, not accuracy)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from daemon.engines.cnn import CnnEngine, CnnModelMeta, CnnNet, LogMel, MelConfig, NetConfig, save_cnn
from daemon.engines.demucs.engine import choose_excerpts
from daemon.engines.demucs.features import FEATURE_NAMES, aggregate, excerpt_features
from daemon.engines.demucs.separation import Separator, tiny_htdemucs, torch_device
from daemon.engines.fingerprint import FingerprintEvidence, Match
from daemon.engines.fusion import BANDLIMIT_LIMIT, LIVE, Delivery, Evidence, Fusion, FusionParams, fusion_inputs, model_features
from daemon.engines.logistic import LogisticModel, sigmoid
from daemon.errors import ModelError
from support.audio import music


def test_logmel_in_chunks_equals_logmel_whole():
    mel = LogMel(MelConfig())
    x = torch.from_numpy(music(5, 44100).mean(axis=0))[None]
    whole = mel(x)
    padded = mel.pad(x)
    parts = torch.cat([mel.frames(padded, lo, min(lo + 37, whole.shape[-1]))
                       for lo in range(0, whole.shape[-1], 37)], dim=-1)
    assert whole.shape == (1, 1, 128, x.shape[-1] // 1024 + 1)
    assert torch.allclose(whole, parts, atol=1e-5)


def test_cnn_engine_chunked_track_pass_equals_one_pass(tiny_models):
    engine = tiny_models.cnn()
    mono = music(70, 44100, seed=2).mean(axis=0)    # longer than one 1024-frame chunk
    chunked = engine.frame_logits(mono)
    with torch.inference_mode():
        whole = engine.net(engine.melspec(torch.from_numpy(mono)[None]))[0].numpy()
    assert len(chunked) == len(whole)
    assert np.allclose(chunked, whole, atol=1e-5)


def test_batchnorm_folding_keeps_outputs(tmp_path):
    torch.manual_seed(1)
    net = CnnNet(NetConfig()).train()
    with torch.no_grad():            # give BatchNorm non-trivial running statistics
        for _ in range(3):
            net(torch.randn(4, 1, 128, 64))
    net.eval()
    path = tmp_path / "cnn.safetensors"
    save_cnn(path, net, CnnModelMeta("t", NetConfig(), MelConfig()))
    engine = CnnEngine(path)
    x = torch.randn(2, 1, 128, 64)
    with torch.inference_mode():
        assert torch.allclose(net(x), engine.net(x), atol=1e-4)


def test_track_windows_cover_the_whole_track(tiny_models):
    ev = tiny_models.cnn().score_track(music(19, 44100).mean(axis=0))
    assert ev.windows[0].start == 0.0
    assert abs(ev.windows[-1].end - 19.0) < 0.5
    assert all(0 <= w.p <= 1 for w in ev.windows)
    assert all(b.start > a.start for a, b in zip(ev.windows, ev.windows[1:]))
    assert 0 <= ev.probability_ai <= 1 and len(ev.model_sha256) == 64


def test_missing_or_corrupt_cnn_weights_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="CNN weights not found"):
        CnnEngine(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="cannot load CNN weights"):
        CnnEngine(bad)


def test_residual_is_zero_when_the_stems_sum_to_the_mix():
    x = music(8, 44100)
    stems = np.stack([x * 0.5, x * 0.25, x * 0.125, x * 0.125])
    f = excerpt_features(x, stems, 44100)
    assert set(f) == set(FEATURE_NAMES)
    assert f["residual_db"] < -100
    assert f["stem_fraction_drums"] > f["stem_fraction_bass"] > f["stem_fraction_vocals"]
    assert f["bleed_envelope_corr"] > 0.99          # identical envelopes: total bleed


def test_residual_features_grow_with_the_residual():
    rng = np.random.default_rng(0)
    x = music(8, 44100)
    stems = np.stack([x * 0.25] * 4)
    quiet = excerpt_features(x, stems - 0.001 * rng.standard_normal(stems.shape).astype(np.float32), 44100)
    loud = excerpt_features(x, stems - 0.02 * rng.standard_normal(stems.shape).astype(np.float32), 44100)
    assert loud["residual_db"] > quiet["residual_db"] + 20
    assert aggregate([quiet, loud])["residual_db"] == pytest.approx(
        (quiet["residual_db"] + loud["residual_db"]) / 2)


def test_excerpts_avoid_silence_and_spread_over_the_track():
    rate, seg = 44100, 44100 * 8
    x = np.zeros((2, rate * 120), np.float32)
    for start in (10, 50, 95):                  # three loud passages in silence
        x[:, start * rate:(start + 12) * rate] = music(12, rate, seed=start)
    spans = choose_excerpts(x.mean(axis=0), seg, 3)
    assert len(spans) == 3
    for s, e in spans:
        assert e - s == seg
        assert np.abs(x[:, s:e]).mean() > 0.01     # each excerpt has music in it
    assert spans[0][0] < 40 * rate < spans[1][0] < 80 * rate < spans[2][0]


def test_short_track_is_one_excerpt():
    assert choose_excerpts(np.zeros(1000), 5000, 3) == [(0, 1000)]


def test_tiny_htdemucs_separates_to_four_stems():
    sep = Separator(tiny_htdemucs())
    x = music(3, 44100)[None]
    stems = sep.separate(x)
    assert stems.shape == (1, 4, 2, x.shape[-1])
    assert np.isfinite(stems).all()
    with pytest.raises(ValueError):
        sep.separate(np.zeros((1, 2, sep.segment_samples + 1), np.float32))


def test_saved_cnn_bytes_depend_only_on_the_net_and_its_metadata(tmp_path):
    cfg = NetConfig(channels=(4, 8, 8, 8), hidden=8)
    torch.manual_seed(0)
    net = CnnNet(cfg).eval()
    meta = CnnModelMeta("tiny", cfg, MelConfig(), calib_a=0.5, calib_b=-0.25)
    save_cnn(tmp_path / "a.safetensors", net, meta)
    data = (tmp_path / "a.safetensors").read_bytes()
    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    assert list(header["__metadata__"]) == sorted(header["__metadata__"])   # not hash-map order
    save_cnn(tmp_path / "b.safetensors", net, meta)
    assert (tmp_path / "b.safetensors").read_bytes() == data
    engine = CnnEngine(tmp_path / "a.safetensors")
    assert engine.meta == meta


def test_demucs_device_names_resolve_or_fail_clearly():
    gpus = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    assert torch_device("cpu").type == "cpu"
    assert torch_device("auto").type == ("cuda" if gpus["cuda"] else "cpu")
    with pytest.raises(ModelError, match="unknown torch device 'tpu'"):
        torch_device("tpu")
    for name, present in gpus.items():
        if present:
            assert torch_device(name).type == name
        else:
            with pytest.raises(ModelError, match=f"demucs_device is '{name}', but torch .* sees no such device"):
                torch_device(name)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_htdemucs_on_the_gpu_agrees_with_the_cpu():
    mix = music(5, 44100)
    gpu = Separator(tiny_htdemucs(), "cuda")
    assert next(gpu.model.parameters()).is_cuda
    on_gpu, on_cpu = gpu.separate(mix[None])[0], Separator(tiny_htdemucs()).separate(mix[None])[0]
    # Measured on an H100: 1.8e-4 of the mix's peak (FP32 kernels round differently; FP64 agrees to 1e-14).
    assert np.abs(on_gpu - on_cpu).max() <= 1e-3 * np.abs(mix).max()
    a, b = excerpt_features(mix, on_gpu, 44100), excerpt_features(mix, on_cpu, 44100)
    worst = max(FEATURE_NAMES, key=lambda k: abs(a[k] - b[k]))
    assert abs(a[worst] - b[worst]) <= 0.1, (worst, a[worst], b[worst])


def test_logistic_fit_separates_and_round_trips():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 3))
    y = (x[:, 0] - 2 * x[:, 2] + 0.3 * rng.standard_normal(400) > 0).astype(int)
    m = LogisticModel.fit(["a", "b", "c"], x, y, l2=0.1)
    acc = np.mean((m.logit(x) > 0) == y)
    assert acc > 0.95
    assert m.coef[0] > 0 > m.coef[2] and abs(m.coef[1]) < abs(m.coef[0]) / 3
    again = LogisticModel.from_dict(m.to_dict())
    assert np.allclose(again.logit(x), m.logit(x))


def test_fusion_labels_and_tiering(tiny_models):
    fusion = tiny_models.fusion()
    assert fusion.label(0.95) == "ai" and fusion.label(0.05) == "human" and fusion.label(0.5) == "uncertain"
    lossy = Delivery(lossy=True, bandlimit=0.2)
    assert fusion.demucs_wanted(0.5, LIVE) == "cnn uncertain"
    assert fusion.demucs_wanted(0.95, LIVE) is None
    assert fusion.demucs_wanted(0.85, lossy) == "lossy input and weak cnn evidence"
    v = fusion.combine(Evidence(cnn_logit=2.0, demucs_logit=-2.0), LIVE)
    assert v.decided_by == "cnn+demucs" and v.probability_ai == pytest.approx(0.5)
    assert fusion.combine(Evidence(cnn_logit=3.0), LIVE).decided_by == "cnn"
    assert fusion.combine(Evidence(demucs_logit=3.0), LIVE).decided_by == "demucs"
    # the image score moves the fast pass's logit by its correction (0.5 per unit, standardised 1)
    with_images = fusion.combine(Evidence(cnn_logit=0.0, images_score=2.0), LIVE)
    assert with_images.decided_by == "cnn+images"
    assert with_images.probability_ai == pytest.approx(sigmoid(1.0))
    assert fusion.combine(Evidence(2.0, 0.0, -2.0), LIVE).decided_by == "cnn+images+demucs"
    assert fusion.cnn_probability(0.0, LIVE, 2.0) == pytest.approx(sigmoid(1.0))
    # a correction that training zeroed leaves the CNN's verdict, and the report says who decided
    zeroed = replace(fusion.params,
                     demucs_correction=replace(fusion.params.demucs_correction, coef=[0.0] * 3),
                     images_correction=replace(fusion.params.images_correction, coef=[0.0] * 3))
    assert not zeroed.weighs_demucs and fusion.params.weighs_demucs
    assert not zeroed.weighs_images and fusion.params.weighs_images
    cnn_alone = (fusion.params.logit(2.0, None, LIVE)[0], "cnn")
    assert zeroed.logit(2.0, -2.0, LIVE, 3.0) == zeroed.logit(2.0, None, LIVE) == cnn_alone
    row = fusion_inputs(1.5, None, lossy)
    assert set(row) == set(model_features("cnn"))
    assert row["cnn_logit_x_lossy"] == 1.5 and row["cnn_logit_x_bandlimit"] == pytest.approx(0.3)
    assert Delivery.of_band(True, 11000.0).bandlimit == pytest.approx(0.45)
    assert Delivery.of_band(False, 22050.0).bandlimit == 0.0


def _fingerprint(best_logit: float, fired: bool) -> FingerprintEvidence:
    match = Match("some-generator", float(sigmoid(best_logit)), best_logit, fired)
    return FingerprintEvidence(20000.0, [12600.0], [match], [0.0] * 4, 21.5)


def test_human_is_said_only_inside_the_human_range_and_a_fingerprint_match_is_ai(tiny_models):
    limits = {"cnn_logit": -1.0, "images_score": 1.0, "fingerprint_logit": 0.0}
    fusion = Fusion(replace(tiny_models.fusion().params, human_limits=limits))
    low = Evidence(cnn_logit=-4.0, images_score=0.5, fingerprint=_fingerprint(-3.0, False))
    v = fusion.combine(low, LIVE)
    assert (v.label, v.atypical, v.matched) == ("human", (), None) and v.probability_ai < 0.2
    # the same probability with image evidence beyond anything human calibration music showed
    odd = fusion.combine(replace(low, images_score=1.001), LIVE)
    assert odd.probability_ai <= fusion.human_threshold        # p alone would have said "human"
    assert (odd.label, odd.atypical) == ("uncertain", ("images_score",))
    near = fusion.combine(replace(low, fingerprint=_fingerprint(0.5, False)), LIVE)
    assert (near.label, near.atypical) == ("uncertain", ("fingerprint_logit",))
    # a 16 kHz file (band edge 8 kHz): too narrow for the evidence to vouch for "human"
    banded = Fusion(replace(fusion.params, human_limits={**limits, "bandlimit": BANDLIMIT_LIMIT}))
    assert banded.combine(low, Delivery.of_band(True, 11000.0)).label == "human"
    narrow = banded.combine(low, Delivery.of_band(False, 8000.0))
    assert (narrow.label, narrow.atypical) == ("uncertain", ("bandlimit",))
    # a known generator's fingerprint above its own threshold: "ai", whatever the fused probability
    matched = fusion.combine(replace(low, fingerprint=_fingerprint(4.0, True)), LIVE)
    assert (matched.label, matched.matched) == ("ai", "some-generator")
    assert matched.probability_ai == pytest.approx(sigmoid(4.0)) and matched.decided_by.endswith("+fingerprint")
    # limits round-trip through the model file; older files without them keep the p-only rule
    assert FusionParams.from_dict(json.loads(json.dumps(fusion.params.to_dict()))).human_limits == limits
    old = fusion.params.to_dict()
    del old["human_limits"]
    assert FusionParams.from_dict(old).human_limits == {}


def test_config_thresholds_override_the_models(tiny_models):
    fusion = tiny_models.fusion(ai_threshold=0.99)
    assert fusion.label(0.95) == "uncertain"
    with pytest.raises(ModelError, match="must be below"):
        tiny_models.fusion(ai_threshold=0.1)
