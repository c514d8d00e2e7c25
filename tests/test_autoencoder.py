"""The learned fake family: a real (tiny, briefly trained) autoencoder learns, decodes in time with
its input, keeps the band above its Nyquist frequency, and plugs into the fake registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import butter, correlate, sosfiltfilt

from daemon.training import autoencoder as ae
from daemon.training.fakes import FAMILIES, make_fake, register

from support.audio import music

RATE = 44100

pytestmark = pytest.mark.slow     # the module's model trains for about 1.5 min on one core


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))


def _at_train_rate(x: np.ndarray) -> np.ndarray:
    return ae.resample_f64(x.astype(np.float64), RATE, ae.TRAIN_RATE).astype(np.float32)


def _snr_db(model, clip: np.ndarray) -> float:
    x = torch.from_numpy(0.5 * clip / np.abs(clip).max())[None]
    with torch.no_grad():
        y = model(x)
    return float(10 * torch.log10((x ** 2).sum() / ((y - x) ** 2).sum()))


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    return [_at_train_rate(music(2.0, RATE, seed=s)) for s in range(4)]


@pytest.fixture(scope="module")
def model(clips):
    return ae.train(clips, ae.AutoencoderTraining(steps=60), seed=0, log=lambda m: None)


def test_training_learns(clips, model):
    torch.manual_seed(0)
    untrained = ae.build().eval()
    held_out = _at_train_rate(music(1.0, RATE, seed=9))
    assert _snr_db(model, held_out) > _snr_db(untrained, held_out) + 3


def test_fake_is_aligned_keeps_the_upper_band_and_level(model):
    x = music(2.0, RATE, seed=5)
    y = ae.render(model, x, RATE, 24000)
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    assert abs(rms(y) / rms(x) - 1) < 0.01
    c = correlate(y[0], x[0], mode="full", method="fft")
    assert abs(int(np.argmax(c)) - (x.shape[1] - 1)) <= 1
    high = butter(8, 14000, btype="high", fs=RATE, output="sos")   # well above 12 kHz
    inner = slice(2000, -2000)                                      # past the filter's edge ringing
    hx, hy = sosfiltfilt(high, x)[:, inner], sosfiltfilt(high, y)[:, inner]
    assert np.corrcoef(hx.ravel(), hy.ravel())[0, 1] > 0.999      # the same, up to the level match
    assert not np.allclose(y, x, atol=1e-3)


def test_family_draws_its_rate_and_is_reproducible(model):
    x = music(1.0, RATE, seed=6)
    family = ae.family(model)
    a = family.make(x, RATE, np.random.default_rng(1))
    b = family.make(x, RATE, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    outputs = {family.make(x, RATE, np.random.default_rng(s)).tobytes() for s in range(8)}
    assert len(outputs) == 2      # one per decode rate


def test_save_load_and_register(tmp_path, model):
    path = tmp_path / "ae.pt"
    ae.save(model, path)
    loaded = ae.load(path)
    x = music(0.5, RATE, seed=7)
    np.testing.assert_array_equal(ae.render(model, x, RATE, 32000), ae.render(loaded, x, RATE, 32000))
    with pytest.raises(KeyError):
        make_fake("no-such-family", x, RATE, np.random.default_rng(0))
    register(ae.family(loaded))
    try:
        y = make_fake(ae.NAME, x, RATE, np.random.default_rng(0))
        assert y.shape == x.shape
    finally:
        del FAMILIES[ae.NAME]    # the other tests see the untrained families only


def test_short_and_odd_inputs(model):
    for rate, seconds in ((RATE, 0.01), (48000, 0.5), (22050, 0.3)):
        x = music(seconds, rate, seed=8)
        y = ae.family(model).make(x, rate, np.random.default_rng(0))
        assert y.shape == x.shape and np.isfinite(y).all()
    with pytest.raises(ValueError):
        ae.render(model, np.zeros(100, np.float32), RATE, 24000)
    with pytest.raises(ValueError):
        ae.train([np.zeros((2, 10), np.float32)], ae.AutoencoderTraining(steps=1), 0, print)
