"""Synthetic but music-like audio, and a set of real files in every format (and broken ones)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def music(seconds: float, rate: int, seed: int = 0, channels: int = 2) -> np.ndarray:
    """(channels, n) float32: a chord progression of decaying harmonic tones, a noise-burst drum
    on the beat, and a hi-hat up to 18 kHz; channels differ (panned voices)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    out = np.zeros((channels, n), np.float64)
    beat = 0.5
    roots = [110.0, 146.8, 164.8, 130.8]
    for k, start in enumerate(np.arange(0, seconds, 2 * beat)):
        root = roots[k % len(roots)] * (1 + 0.01 * rng.standard_normal())
        seg = (t >= start) & (t < start + 2 * beat)
        tt = t[seg] - start
        for j, ratio in enumerate((1.0, 1.25, 1.5, 2.0)):
            tone = sum(np.sin(2 * np.pi * root * ratio * h * tt + rng.uniform(0, 6.28)) / h
                       for h in range(1, 7))
            env = np.exp(-tt * (1.5 + j))
            pan = (j + 1) / 5
            out[0, seg] += 0.08 * tone * env * (1 - pan)
            out[-1, seg] += 0.08 * tone * env * pan
    for start in np.arange(0, seconds, beat):
        i0 = int(start * rate)
        m = min(n - i0, int(0.12 * rate))
        env = np.exp(-np.arange(m) / (0.02 * rate))
        kick = np.sin(2 * np.pi * 55 * np.arange(m) / rate) * env
        out[:, i0:i0 + m] += 0.3 * kick
        hat = rng.standard_normal(m) * np.exp(-np.arange(m) / (0.005 * rate))
        hat = np.diff(hat, prepend=0)   # high-passed noise: energy up to Nyquist
        out[:, i0:i0 + m] += 0.05 * hat
    out += 0.002 * rng.standard_normal(out.shape)
    return (out / max(1.0, np.abs(out).max() / 0.9)).astype(np.float32)


GOOD = {
    # name: (seconds, rate, channels, writer)
    "music.wav": (6, 44100, 2, "PCM_16"),
    "music_24bit_48k.wav": (6, 48000, 2, "PCM_24"),
    "music_float_96k.wav": (5, 96000, 2, "FLOAT"),
    "music.aiff": (5, 44100, 2, "PCM_16"),
    "music.flac": (6, 44100, 2, "PCM_16"),
    "music.ogg": (6, 44100, 2, "VORBIS"),
    "music.opus": (6, 48000, 2, "OPUS"),
    "music.mp3": (6, 44100, 2, "MPEG_LAYER_III"),
    "mono_8k.wav": (5, 8000, 1, "PCM_16"),
    "music_22050.flac": (5, 22050, 2, "PCM_16"),
    "music_192k.wav": (4, 192000, 2, "PCM_24"),
    "six_channel_5_1.wav": (4, 48000, 6, "PCM_16"),
    "three_channel.wav": (4, 44100, 3, "PCM_16"),
    "odd_rate_37800.wav": (4, 37800, 2, "PCM_16"),
}


def write_fixture_set(folder: Path) -> Path:
    good = folder / "good"
    bad = folder / "bad"
    good.mkdir()
    bad.mkdir()
    for i, (name, (seconds, rate, channels, subtype)) in enumerate(GOOD.items()):
        x = music(seconds, rate, seed=i, channels=channels)
        fmt = {"MPEG_LAYER_III": "MP3", "VORBIS": "OGG", "OPUS": "OGG"}.get(subtype)
        sf.write(good / name, x.T, rate, subtype=subtype, format=fmt)
    from daemon.evaluation.codecs import CodecSpec, encode_file

    encode_file(music(6, 44100, seed=99), 44100, CodecSpec("aac", 128), good / "music.m4a")

    wav_bytes = (good / "music.wav").read_bytes()
    (bad / "empty.wav").write_bytes(b"")
    (bad / "truncated.wav").write_bytes(wav_bytes[: len(wav_bytes) // 3])
    mp3_bytes = (good / "music.mp3").read_bytes()
    (bad / "truncated.mp3").write_bytes(mp3_bytes[: len(mp3_bytes) // 3])
    (bad / "notes.wav").write_text("these are my lyrics, not audio\n" * 40)
    (bad / "random.flac").write_bytes(np.random.default_rng(0).bytes(20000))
    nan = music(4, 44100, seed=5)
    nan[0, 1000:1100] = np.nan
    sf.write(bad / "nan.wav", nan.T, 44100, subtype="FLOAT")
    sf.write(bad / "short.wav", music(0.5, 44100).T, 44100, subtype="PCM_16")
    sf.write(bad / "rate_4000.wav", music(4, 4000).T, 4000, subtype="PCM_16")
    return folder
