"""The three 1-D filters the codec check and the fingerprints use, on numpy's sliding windows:
each equals its scipy.ndimage namesake (the tests compare them), and the fast pass then never
imports scipy, whose import costs more at start than the whole codec check."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def median_filter(x: np.ndarray, size: int) -> np.ndarray:
    """scipy.ndimage.median_filter(x, size, mode="nearest") for odd `size`."""
    half = size // 2
    return np.median(sliding_window_view(np.pad(x, half, mode="edge"), size), axis=1)


def trailing_mean(x: np.ndarray, size: int) -> np.ndarray:
    """The mean of x[k - size + 1 .. k], the first value repeated before the start:
    scipy.ndimage.uniform_filter1d(x, size, origin=(size - 1) // 2, mode="nearest")."""
    padded = np.concatenate([np.full(size - 1, x[0]), x]).astype(np.float64)
    sums = np.cumsum(padded)
    sums[size:] = sums[size:] - sums[:-size]
    return (sums[size - 1:] / size).astype(x.dtype)


def grey_opening(x: np.ndarray, size: int) -> np.ndarray:
    """scipy.ndimage.grey_opening(x, size=size) (flat, mode "reflect") for odd `size`: the lower
    envelope under every peak narrower than `size`."""
    half = size // 2
    eroded = sliding_window_view(np.pad(x, half, mode="symmetric"), size).min(axis=1)
    return sliding_window_view(np.pad(eroded, half, mode="symmetric"), size).max(axis=1)
