"""The loader: every format, rate and channel layout from real files on disk, and one clear
one-line error (naming the file and the reason) for every kind of bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import soxr

from daemon.audio import ENGINE_RATE, Limits, downmix_to_stereo, load_audio, resample
from daemon.audio.codec import codec_history, welch
from daemon.audio.filters import grey_opening, median_filter, trailing_mean
from daemon.audio.level import TARGET_PEAK
from daemon.errors import AudioError
from support.audio import GOOD, music


@pytest.mark.parametrize("name", [*GOOD, "music.m4a"])
def test_every_good_file_loads_as_stereo_at_the_engine_rate(fixtures_dir, name):
    path = fixtures_dir / "good" / name
    audio = load_audio(path)
    assert audio.sample_rate == ENGINE_RATE
    assert audio.samples.shape[0] == 2 and audio.samples.dtype == np.float32
    seconds = GOOD.get(name, (6,))[0]
    assert abs(audio.duration_s - seconds) < 0.1, audio.duration_s
    assert np.isfinite(audio.samples).all() and 0.05 < np.abs(audio.samples).max() <= 1.0
    assert audio.info.channels == GOOD.get(name, (0, 0, 2))[2]


@pytest.mark.parametrize("name, lossy", [("music.wav", False), ("music.flac", False), ("music.mp3", True),
                                         ("music.ogg", True), ("music.opus", True), ("music.m4a", True)])
def test_container_codec_is_reported(fixtures_dir, name, lossy):
    audio = load_audio(fixtures_dir / "good" / name)
    assert audio.info.lossy is lossy
    assert codec_history(audio.mono, audio.sample_rate, audio.info).lossy is lossy


def test_a_wav_decoded_from_mp3_is_recognised_by_its_band_limit(tmp_path):
    from daemon.evaluation.codecs import CodecSpec, apply_codec

    x = music(8, 44100, seed=3)
    sf.write(tmp_path / "clean.wav", x.T, 44100)
    sf.write(tmp_path / "was_mp3.wav", apply_codec(x, 44100, CodecSpec("mp3", 64)).T, 44100)
    clean, was_mp3 = load_audio(tmp_path / "clean.wav"), load_audio(tmp_path / "was_mp3.wav")
    assert not codec_history(clean.mono, ENGINE_RATE, clean.info).lossy
    hist = codec_history(was_mp3.mono, ENGINE_RATE, was_mp3.info)
    assert hist.lossy and not hist.lossy_container and hist.bandwidth_hz < 17000


def test_downmix_rule():
    mono = np.ones((10, 1), np.float32)
    assert np.allclose(downmix_to_stereo(mono), 1.0)
    six = np.zeros((4, 6), np.float32)
    six[:, 0], six[:, 2], six[:, 3] = 1.0, 1.0, 5.0   # L, C, LFE
    out = downmix_to_stereo(six)
    extra = 3  # C, Ls, Rs (the LFE is left out)
    assert np.allclose(out[0], (1 + 0.7071) / (1 + 0.7071 * extra), atol=1e-4)
    assert np.allclose(out[1], 0.7071 / (1 + 0.7071 * extra), atol=1e-4)


@pytest.mark.parametrize("name, reason", [
    ("empty.wav", "empty file"),
    ("truncated.wav", "truncated: the header promises"),
    ("truncated.mp3", "truncated"),
    ("notes.wav", "not a readable audio file"),
    ("random.flac", "not a readable audio file"),
    ("nan.wav", "NaN or infinite samples"),
    ("short.wav", "too short (0.50 s"),
    ("rate_4000.wav", "unsupported sample rate 4000 Hz"),
])
def test_bad_input_gives_one_line_naming_file_and_reason(fixtures_dir, name, reason):
    path = fixtures_dir / "bad" / name
    with pytest.raises(AudioError) as err:
        load_audio(path)
    msg = str(err.value)
    assert msg.startswith(str(path) + ": ") and reason in msg and "\n" not in msg, msg


def test_limits_on_size_and_duration(fixtures_dir, tmp_path):
    path = fixtures_dir / "good" / "music.wav"
    with pytest.raises(AudioError, match="too long .* max_duration_s"):
        load_audio(path, Limits(max_duration_s=3.0))
    with pytest.raises(AudioError, match="too large"):
        load_audio(path, Limits(max_file_mb=0))
    with pytest.raises(AudioError, match="file not found"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="not a regular file"):
        load_audio(tmp_path)


def test_a_wav_still_being_written_is_reported_as_such(tmp_path):
    from daemon.audio.decode import incomplete_reason

    path = tmp_path / "render.wav"
    with sf.SoundFile(str(path), "w", 44100, 2, "PCM_16") as fh:
        fh.write(music(3, 44100).T)
        fh.flush()
        assert incomplete_reason(path) is not None   # header not final until close
    assert incomplete_reason(path) is None


@pytest.mark.parametrize(("ext", "subtype"), [(".wav", "PCM_16"), (".wav", "PCM_24"), (".wav", "PCM_32"),
                                              (".wav", "FLOAT"), (".flac", "PCM_16"), (".flac", "PCM_24")])
def test_integer_pcm_is_read_as_libsndfiles_own_float_conversion(tmp_path, subtype, ext):
    rng = np.random.default_rng(1)
    path = tmp_path / f"x{ext}"
    sf.write(path, (rng.standard_normal((3 * 44100, 2)) * 0.3).clip(-1, 1), 44100, subtype=subtype)
    expected, _ = sf.read(path, dtype="float32", always_2d=True)
    np.testing.assert_array_equal(load_audio(path).decoded, expected.T)


@pytest.mark.parametrize("rate_in", [8000, 22050, 32000, 48000, 96000])
def test_a_long_signal_resampled_in_pieces_equals_one_conversion(rate_in):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(rate_in * 40) * 0.2).astype(np.float32)
    whole = soxr.resample(x, rate_in, ENGINE_RATE, quality="HQ")
    pieces = resample(x, rate_in, ENGINE_RATE)
    assert pieces.shape == whole.shape
    assert np.abs(pieces - whole).max() < 1e-6


def test_welch_is_scipys(fixtures_dir):
    from scipy.signal import welch as scipy_welch

    mono = load_audio(fixtures_dir / "good" / "music.wav").mono
    freqs, power = welch(mono, ENGINE_RATE)
    ref_freqs, ref_power = scipy_welch(mono, fs=ENGINE_RATE, nperseg=4096, noverlap=2048)
    np.testing.assert_allclose(freqs, ref_freqs)
    np.testing.assert_allclose(power, ref_power, rtol=1e-4, atol=ref_power.max() * 1e-7)


@pytest.mark.parametrize("rate", [44100, 48000])
def test_the_fast_pass_mid_is_the_mid_of_the_normalised_stereo(tmp_path, rate):
    rng = np.random.default_rng(3)
    t = np.arange(rate * 5) / rate
    x = np.stack([np.sin(2 * np.pi * 440 * t) * 3 + 0.2, rng.standard_normal(t.size) * 0.5 - 0.1], axis=1)
    sf.write(tmp_path / "x.wav", x, rate, subtype="FLOAT")
    audio = load_audio(tmp_path / "x.wav")
    stereo = audio.normalised()
    assert stereo.shape == audio.samples.shape and stereo.flags.c_contiguous
    assert abs(np.abs(stereo).max() - TARGET_PEAK) < 0.01 and np.abs(stereo.mean(axis=1)).max() < 1e-4
    np.testing.assert_allclose(audio.mono, stereo.mean(axis=0), atol=2e-6)
    assert audio.samples.max() > 3    # `samples` stays as decoded


@pytest.mark.parametrize("size", [3, 9, 23, 55, 56])
def test_the_filters_equal_scipys(size):
    from scipy import ndimage

    x = (np.random.default_rng(size).standard_normal(4097) * 10).astype(np.float32)
    np.testing.assert_array_equal(
        trailing_mean(x, size), ndimage.uniform_filter1d(x, size, origin=(size - 1) // 2, mode="nearest"))
    if size % 2:
        np.testing.assert_array_equal(median_filter(x, size), ndimage.median_filter(x, size=size, mode="nearest"))
        np.testing.assert_array_equal(grey_opening(x, size), ndimage.grey_opening(x, size=size))


def test_the_fast_pass_imports_no_scipy():
    code = ("import sys, daemon.analysis; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _resample_in_child(x: np.ndarray) -> tuple[int, ...]:
    return resample(x, 48000, ENGINE_RATE).shape


def test_a_forked_worker_resamples_after_the_parent_did():
    """The pieces run on a thread pool; a forked worker (learn's feature workers) gets its own."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    x = (np.random.default_rng(4).standard_normal(48000 * 30) * 0.1).astype(np.float32)
    expected = resample(x, 48000, ENGINE_RATE).shape      # the parent's pool now has threads
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        assert pool.submit(_resample_in_child, x).result(timeout=60) == expected
