"""Level normalisation where the engines read the signal: a verdict must not depend on absolute
level (a float file can hold music at +80 dB), polarity or a DC offset."""

from __future__ import annotations

import numpy as np

TARGET_PEAK = float(10 ** (-1 / 20))   # -1 dBFS, where a mastered bounce peaks


def normalise_level(samples: np.ndarray) -> np.ndarray:
    """(channels, n) float32 with each channel's DC removed and the peak at TARGET_PEAK (silence
    stays silence). Works in place on a float32 array (a file's decoded buffer is its own); the
    sums run in float64, so samples near float32's range cannot overflow."""
    x = samples if samples.dtype == np.float32 and samples.flags.writeable else samples.astype(np.float32)
    if x.size == 0:
        return x
    dc = x.mean(axis=-1, keepdims=True, dtype=np.float64)
    hi = x.max(axis=-1, keepdims=True).astype(np.float64) - dc
    lo = dc - x.min(axis=-1, keepdims=True).astype(np.float64)
    peak = float(max(hi.max(), lo.max()))
    x -= dc.astype(np.float32)
    if peak > 0.0:
        x *= np.float32(TARGET_PEAK / peak)
    return x
