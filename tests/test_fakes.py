"""Fake families: the music survives, a decoder fingerprint appears where there was none, and every
draw is reproducible from its seed.

The music is tests/support/audio.py's; the bounds leave room above what the families do to it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import correlate, welch

from daemon.training.fakes import (
    DECODER_RATES, FAMILIES, MAX_TOTAL_STRIDE, STAGE_STRIDES, TRANSFER_HOLDOUT, DecoderPlan, draw_plan,
    make_fake, render,
)
from support.audio import music

RATE = 44100
NAMES = list(FAMILIES)


def sine(freq: float, rate: int = RATE, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * freq * t)] * 2).astype(np.float32)


def level_db(x: np.ndarray, freq: float, rate: int = RATE, half_width: float = 30.0) -> float:
    f, p = welch(x.mean(0), fs=rate, nperseg=8192)
    return float(10 * np.log10(p[np.abs(f - freq) < half_width].max() + 1e-30))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return music(3.0, RATE)


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_level_and_reproducibility(x, name):
    a = make_fake(name, x, RATE, np.random.default_rng(1))
    b = make_fake(name, x, RATE, np.random.default_rng(1))
    c = make_fake(name, x, RATE, np.random.default_rng(2))
    assert a.shape == x.shape and a.dtype == np.float32
    assert np.isfinite(a).all() and np.abs(a).max() <= 0.999
    assert abs(rms(a) / rms(x) - 1) < 0.01
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert not np.allclose(a, x)


@pytest.mark.parametrize("name", NAMES)
def test_content_survives(x, name):
    f, px = welch(x.mean(0), fs=RATE, nperseg=4096)
    loud = 10 * np.log10(px) > 10 * np.log10(px.max()) - 50
    for seed in range(5):
        y = make_fake(name, x, RATE, np.random.default_rng(seed))
        assert np.corrcoef(x.ravel(), y.ravel())[0, 1] > 0.75
        _, py = welch(y.mean(0), fs=RATE, nperseg=4096)
        assert np.median(np.abs(10 * np.log10(py[loud] / px[loud]))) < 8.0


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("strides", [(2,), (4, 2), (2, 2, 4), (5, 3)], ids=str)
def test_decode_is_time_aligned(x, name, strides):
    """Stage delays are compensated: a misaligned low band would smear the music against the kept
    upper band (comb filtering) and shift the cross-correlation peak."""
    y = render(name, x, RATE, DecoderPlan(strides, RATE), np.random.default_rng(0))
    c = correlate(y[0], x[0], mode="full", method="fft")
    assert abs(int(np.argmax(c)) - (x.shape[1] - 1)) <= 1
    assert np.corrcoef(x.ravel(), y.ravel())[0, 1] > 0.8


@pytest.mark.parametrize("name", NAMES)
def test_images_appear_where_the_input_was_empty(name):
    """Stride 4 at 44.1 kHz: the latent runs at 11025 Hz, so a 1 kHz tone gets images at 10025 and
    12025 Hz; decoding at 48 kHz moves them to 11000 and 13000 Hz."""
    tone = sine(1000.0)
    for plan_rate, images, elsewhere in ((RATE, (10025, 12025), 11000), (48000, (11000, 13000), 10025)):
        for seed in range(3):
            y = render(name, tone, RATE, DecoderPlan((4,), plan_rate), np.random.default_rng(seed))
            image = max(level_db(y, f) for f in images)
            assert image > max(level_db(tone, f) for f in images) + 60
            assert image > level_db(y, 1000.0) - 50
            assert image > level_db(y, elsewhere) + 15


@pytest.mark.parametrize("name", NAMES)
def test_short_input_and_other_rates(name):
    rng = np.random.default_rng(3)
    for rate, seconds in ((RATE, 0.5), (RATE, 0.01), (48000, 1.0), (22050, 0.5)):
        x = music(seconds, rate, seed=4)
        y = make_fake(name, x, rate, rng)
        assert y.shape == x.shape and np.isfinite(y).all()


def test_plans_cover_the_specified_ranges():
    rng = np.random.default_rng(0)
    neural = [draw_plan(name, RATE, rng) for name in ("tconv", "upconv", "subpixel") for _ in range(1500)]
    for plan in neural:
        assert 1 <= len(plan.strides) <= 3 and set(plan.strides) <= set(STAGE_STRIDES)
        assert 2 <= plan.total_stride <= MAX_TOTAL_STRIDE
        assert plan.rate == RATE or plan.rate in DECODER_RATES
    assert abs(np.mean([p.rate == RATE for p in neural]) - 0.5) < 0.04
    assert {p.rate for p in neural} == {RATE, *DECODER_RATES}
    assert {len(p.strides) for p in neural} == {1, 2, 3}
    assert {s for p in neural for s in p.strides} == set(STAGE_STRIDES)
    assert {p.total_stride for p in neural} >= {2, 8, 15, 16}
    upsampler = [draw_plan("upsampler", RATE, rng) for _ in range(500)]
    assert all(p.rate == RATE and 2 <= p.total_stride <= 8 for p in upsampler)


def test_registry():
    assert set(NAMES) == {"upsampler", "tconv", "upconv", "subpixel"}
    assert TRANSFER_HOLDOUT in FAMILIES
    for name, family in FAMILIES.items():
        assert family.name == name and family.description
    with pytest.raises(KeyError):
        make_fake("griffin-lim", music(0.2, RATE), RATE, np.random.default_rng(0))
    with pytest.raises(ValueError):
        make_fake("tconv", np.zeros(1000, np.float32), RATE, np.random.default_rng(0))
