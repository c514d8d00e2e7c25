"""Level normalisation where the engines read the signal: a verdict must not depend on absolute
level (a float file can hold music at +80 dB), polarity or a DC offset."""

from __future__ import annotations

import numpy as np

TARGET_PEAK = float(10 ** (-1 / 20))   # -1 dBFS, where a mastered bounce peaks


def normalise_level(samples: np.ndarray) -> np.ndarray:
    """(channels, n) float32 with each channel's DC removed and the peak at TARGET_PEAK (silence
    stays silence). Computed in float64: samples near float32's range must not overflow."""
    x = samples.astype(np.float64)
    x -= x.mean(axis=-1, keepdims=True)
    peak = float(np.abs(x).max(initial=0.0))
    if peak > 0.0:
        x *= TARGET_PEAK / peak
    return x.astype(np.float32)
