"""Polyphase resampling between any two integer rates (one conversion per file)."""

from __future__ import annotations

from math import gcd

import numpy as np
from scipy.signal import resample_poly


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample along the last axis; float32 in, float32 out."""
    if rate_in == rate_out:
        return x
    g = gcd(rate_in, rate_out)
    y = resample_poly(x, rate_out // g, rate_in // g, axis=-1)
    return y.astype(np.float32, copy=False)
