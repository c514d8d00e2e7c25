"""Codec history: has this audio been through a lossy codec, even if it now sits in a WAV?

The container says so directly (MP3, AAC, Vorbis, Opus). A WAV decoded from an MP3 still carries
the encoder's low-pass: a steep cliff in the long-term spectrum well below the file's Nyquist
frequency, where natural roll-off is gradual. The fusion uses this to lean on the Demucs engine,
whose residual features are measured to survive lossy codecs better than the CNN's cues.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .filters import median_filter, trailing_mean

from .decode import AudioInfo

ANALYSIS_SECONDS = 30.0
SEGMENT = 4096
CLIFF_WIDTH_HZ = 600.0
CLIFF_DB = 20.0          # a drop to (nearly) everything above that no natural roll-off produces
MIN_EDGE_HZ = 5000.0


@dataclass(frozen=True)
class CodecHistory:
    container: str
    codec: str
    lossy_container: bool
    bandwidth_hz: float   # highest frequency with content above the noise floor
    cliff_db: float       # level drop across the band edge
    lossy: bool           # final judgement used by the fusion

    @property
    def reason(self) -> str:
        if self.lossy_container:
            return f"lossy codec {self.codec}"
        if self.lossy:
            return f"band-limited at {self.bandwidth_hz / 1000:.1f} kHz with a {self.cliff_db:.0f} dB cliff"
        return "no sign of a lossy codec"


def codec_history(mono: np.ndarray, rate: int, info: AudioInfo) -> CodecHistory:
    span = int(ANALYSIS_SECONDS * rate)
    if mono.size > span:                       # the middle of the track represents it well enough
        start = (mono.size - span) // 2
        mono = mono[start:start + span]
    freqs, power = welch(mono, rate)
    # The median filter removes stray bins (tones, spurs) so that a suffix maximum can be used.
    level = median_filter(10 * np.log10(power + 1e-20), 9)
    width = max(1, int(CLIFF_WIDTH_HZ / (freqs[1] - freqs[0])))
    below = trailing_mean(level, width)                                                 # mean of level[k-w+1 .. k]
    above = np.maximum.accumulate(level[::-1])[::-1]                                   # max of level[k ..]
    # The band edge: the first bin from which everything above lies far below the content just
    # under it. Natural roll-off never drops that far that suddenly.
    drop = np.full(level.size, -np.inf)
    drop[:-1] = below[:-1] - above[1:]
    drop[freqs < MIN_EDGE_HZ] = -np.inf
    edges = np.nonzero(drop >= CLIFF_DB)[0]
    bandwidth, cliff = (float(freqs[edges[0]]), float(drop[edges[0]])) if edges.size else (float(freqs[-1]), 0.0)
    nyquist = min(info.sample_rate, rate) / 2
    band_limited = cliff >= CLIFF_DB and bandwidth < 0.9 * nyquist
    return CodecHistory(
        container=info.container, codec=info.codec, lossy_container=info.lossy,
        bandwidth_hz=round(bandwidth, 1), cliff_db=round(cliff, 1),
        lossy=info.lossy or band_limited,
    )


def welch(x: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Welch's power spectral density, as scipy.signal.welch(x, rate, nperseg=SEGMENT) computes it
    (periodic Hann window, half overlap, each segment's mean removed, one-sided density), without
    importing scipy.signal (see filters.py)."""
    hop = SEGMENT // 2
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(x, dtype=np.float32), SEGMENT)[::hop]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(SEGMENT) / SEGMENT)).astype(np.float32)
    spec = np.fft.rfft((frames - frames.mean(axis=1, keepdims=True)) * window, axis=1)
    power = (spec.real ** 2 + spec.imag ** 2).mean(axis=0) / (rate * float((window ** 2).sum()))
    power[1:-1] *= 2    # one-sided: the negative frequencies' share (not DC, not Nyquist)
    return np.fft.rfftfreq(SEGMENT, 1 / rate), power
