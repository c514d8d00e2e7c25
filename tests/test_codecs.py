"""Real lossy round trips: aligned, band-limited where the codec must be, stereo kept, and the
random settings used for training within their ranges."""

from __future__ import annotations

from collections import Counter

import av
import numpy as np
import pytest
import soundfile as sf
from scipy.signal import butter, correlate, sosfiltfilt, welch

from daemon.evaluation.codecs import (
    AAC_BITRATES, CONDITIONS, EVAL_CONDITIONS, MP3_BITRATES, OPUS_BITRATES, PCM16, CodecSpec, apply_codec,
    encode_file,
)
from daemon.training.examples import random_codec
from support.audio import music

RATE = 44100


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    """Music whose channels differ, with a 1.5 kHz tone on the left only: stereo loss is visible."""
    x = music(3.0, RATE)
    x[0] += 0.1 * np.sin(2 * np.pi * 1500.0 * np.arange(x.shape[1]) / RATE)
    return x


def lag_of(y: np.ndarray, x: np.ndarray) -> int:
    c = correlate(y, x, mode="full", method="fft")
    return int(np.argmax(c)) - (x.size - 1)


def band_snr_db(x: np.ndarray, y: np.ndarray, hi_hz: float) -> float:
    """SNR below hi_hz: above it perceptual codecs substitute noise by design."""
    sos = butter(6, hi_hz, fs=RATE, output="sos")
    a, b = sosfiltfilt(sos, x), sosfiltfilt(sos, y)
    return float(10 * np.log10((a ** 2).sum() / ((a - b) ** 2).sum()))


def band_power(x: np.ndarray, lo: float, hi: float) -> float:
    f, p = welch(x, fs=RATE, nperseg=4096)
    return float(p[(f >= lo) & (f < hi)].sum())


LOSSY = [CodecSpec("mp3", 128), CodecSpec("aac", 128), CodecSpec("opus", 128)]


@pytest.mark.parametrize("spec", LOSSY, ids=lambda s: s.label())
def test_round_trip_is_aligned_and_faithful(x, spec):
    y = apply_codec(x, RATE, spec)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.isfinite(y).all()
    for ch in range(2):
        assert abs(lag_of(y[ch], x[ch])) <= 2
        assert band_snr_db(x[ch], y[ch], 4000.0) > 10.0


def test_aligned_at_native_opus_rate():
    x48 = music(1.0, 48000)
    y = apply_codec(x48, 48000, CodecSpec("opus", 96))
    assert y.shape == x48.shape
    assert abs(lag_of(y[0], x48[0])) <= 2


def test_mp3_64_low_passes_the_top_band(x):
    y = apply_codec(x, RATE, CodecSpec("mp3", 64))
    before, after = band_power(x.mean(0), 17000, 18500), band_power(y.mean(0), 17000, 18500)
    assert 10 * np.log10(before / (after + 1e-20)) > 20.0
    # ... while the body of the music stays
    assert 10 * np.log10(band_power(x.mean(0), 100, 4000) / band_power(y.mean(0), 100, 4000)) < 1.0


@pytest.mark.parametrize("spec", LOSSY, ids=lambda s: s.label())
def test_stereo_survives(x, spec):
    """The 1.5 kHz tone is on the left only; a joint-stereo or mono encode would smear it."""
    y = apply_codec(x, RATE, spec)
    left, right = band_power(y[0], 1450, 1550), band_power(y[1], 1450, 1550)
    assert 10 * np.log10(left / right) > 20.0
    side_in, side_out = x[0] - x[1], y[0] - y[1]
    assert np.corrcoef(side_in, side_out)[0, 1] > 0.8


@pytest.mark.parametrize("spec", EVAL_CONDITIONS, ids=lambda s: s.label())
def test_short_and_clipped_input(spec):
    short = 1.5 * music(0.5, RATE, seed=3)   # overs: clipped before encoding
    y = apply_codec(short, RATE, spec)
    assert y.shape == short.shape and y.dtype == np.float32
    assert np.isfinite(y).all() and np.abs(y).max() < 1.5


def test_none_is_identity(x):
    y = apply_codec(x, RATE, CodecSpec("none", 0))
    np.testing.assert_array_equal(y, x)
    assert y is not x


def test_pcm16_is_dithered_16_bit(x):
    y = apply_codec(x, RATE, PCM16)
    steps = y * 32768
    np.testing.assert_array_equal(steps, np.round(steps))          # on the 16-bit grid
    error = y - x
    assert 0.3 < np.std(error) * 32768 < 0.9                       # TPDF: 1/sqrt(6) LSB of noise
    silence = apply_codec(np.zeros((2, RATE), np.float32), RATE, PCM16)
    assert 0 < np.abs(silence).max() <= 1 / 32768                 # dither keeps the floor alive
    np.testing.assert_array_equal(apply_codec(x, RATE, PCM16), y)  # and renders the same every time
    assert not PCM16.lossy and CodecSpec("mp3", 64).lossy


def test_rejects_non_stereo():
    with pytest.raises(ValueError):
        apply_codec(np.zeros(1000, np.float32), RATE, CodecSpec("mp3", 128))
    with pytest.raises(ValueError):
        apply_codec(np.zeros((1, 1000), np.float32), RATE, CodecSpec("mp3", 128))


@pytest.mark.parametrize("spec", EVAL_CONDITIONS, ids=lambda s: s.label())
def test_encode_file_writes_a_real_file(tmp_path, spec):
    x = music(1.0, RATE)
    path = encode_file(x, RATE, spec, tmp_path / "cond.wav")
    assert path.exists() and path.stat().st_size > 1000
    assert path.suffix == {"none": ".wav", "pcm16": ".wav", "mp3": ".mp3", "aac": ".m4a",
                           "opus": ".opus"}[spec.codec]
    if not spec.lossy:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        assert rate == RATE and data.shape == (x.shape[1], 2)
        assert sf.info(str(path)).subtype == ("PCM_16" if spec == PCM16 else "PCM_24")
        # the file holds exactly what the in-memory condition gives
        np.testing.assert_allclose(data.T, apply_codec(x, RATE, spec), atol=1e-6)
        return
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.channels == 2
        samples = sum(frame.samples for frame in container.decode(stream))
        file_rate = stream.codec_context.sample_rate
    assert abs(samples / file_rate - 1.0) < 0.03


def test_codec_spec_labels_and_validation():
    labels = [s.label() for s in EVAL_CONDITIONS]
    assert labels == ["none", "pcm16", "mp3-320", "mp3-128", "mp3-64", "aac-128", "opus-64"]
    assert list(CONDITIONS) == ["as-given", *labels[1:]]
    with pytest.raises(ValueError):
        CodecSpec("flac", 0)
    with pytest.raises(ValueError):
        CodecSpec("none", 128)
    with pytest.raises(ValueError):
        CodecSpec("mp3", 0)


def test_random_codec_ranges_and_shares():
    rng = np.random.default_rng(7)
    draws = [random_codec(rng) for _ in range(6000)]
    counts = Counter(d.codec for d in draws)
    assert abs((counts["none"] + counts["pcm16"]) / len(draws) - 0.35) < 0.025
    assert abs(counts["pcm16"] / (counts["none"] + counts["pcm16"]) - 0.5) < 0.05
    lossy = len(draws) - counts["none"] - counts["pcm16"]
    for codec, share in (("mp3", 0.4), ("aac", 0.3), ("opus", 0.3)):
        assert abs(counts[codec] / lossy - share) < 0.03
    allowed = {"mp3": set(MP3_BITRATES), "aac": set(AAC_BITRATES), "opus": set(OPUS_BITRATES), "none": {0},
               "pcm16": {0}}
    for d in draws:
        assert d.bitrate_kbps in allowed[d.codec]
    assert min(AAC_BITRATES) == 96 and max(AAC_BITRATES) == 256
    assert min(OPUS_BITRATES) == 64 and max(OPUS_BITRATES) == 160
    seen = {(d.codec, d.bitrate_kbps) for d in draws}
    assert {("mp3", 64), ("mp3", 320), ("aac", 96), ("aac", 256), ("opus", 64), ("opus", 160)} <= seen


def test_random_codec_reproducible_and_share_respected():
    a = [random_codec(np.random.default_rng(11)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    rng1, rng2 = np.random.default_rng(5), np.random.default_rng(5)
    assert [random_codec(rng1) for _ in range(50)] == [random_codec(rng2) for _ in range(50)]
    rng = np.random.default_rng(1)
    assert all(random_codec(rng, lossless_share=0.0).lossy for _ in range(200))
    assert all(not random_codec(rng, lossless_share=1.0).lossy for _ in range(20))


def test_random_codec_can_favour_low_bitrates():
    rng = np.random.default_rng(3)
    draws = [random_codec(rng, favour_low_bitrates=True) for _ in range(6000)]
    assert abs(sum(not d.lossy for d in draws) / len(draws) - 0.35) < 0.025
    mp3 = Counter(d.bitrate_kbps for d in draws if d.codec == "mp3")
    share_64 = mp3[64] / sum(mp3.values())
    assert 0.27 < share_64 < 0.37          # 1/kbps^2: about a third of MP3 draws
    assert mp3[64] > 10 * mp3[320] > 0     # the top stays reachable, just rare
    seen = {(d.codec, d.bitrate_kbps) for d in draws}
    assert {("aac", 96), ("aac", 256), ("opus", 64), ("opus", 160)} <= seen
    uniform = Counter(d.bitrate_kbps for d in (random_codec(np.random.default_rng(s)) for s in range(3000))
                      if d.codec == "mp3")
    assert uniform[64] / sum(uniform.values()) < 0.15
