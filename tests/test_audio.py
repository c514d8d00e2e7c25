"""The loader: every format, rate and channel layout from real files on disk, and one clear
one-line error (naming the file and the reason) for every kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from daemon.audio import ENGINE_RATE, Limits, downmix_to_stereo, load_audio
from daemon.audio.codec import codec_history
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
