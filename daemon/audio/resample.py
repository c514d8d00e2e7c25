"""Sample-rate conversion with libsoxr (its "HQ" quality), one conversion per signal.

A long mono signal is cut into overlapping pieces resampled in parallel (libsoxr releases the GIL):
each piece starts on a whole period of the two rates, so its output samples fall on the same grid
as the whole signal's, and the overlap, far longer than the filter, is cut away; the result equals
the one-piece conversion to float32 rounding.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from math import gcd

import numpy as np
import soxr
import torch

PARALLEL_ABOVE = 1 << 20         # samples: below this, threads cost more than they save
OVERLAP_SAMPLES = 8192           # input samples each side of a cut: >> libsoxr HQ's filter

_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="resample")


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample along the last axis: (n,) or (channels, n) float32 in, float32 out (the input
    itself when the rates are equal)."""
    if rate_in == rate_out:
        return x
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        return soxr.resample(x.T, rate_in, rate_out, quality="HQ").T   # soxr wants (frames, channels)
    pieces = min(4, torch.get_num_threads())
    if pieces < 2 or x.size < PARALLEL_ABOVE:
        return soxr.resample(x, rate_in, rate_out, quality="HQ")
    g = gcd(rate_in, rate_out)
    p_in, p_out = rate_in // g, rate_out // g
    periods = x.size // p_in
    bounds = [periods * i // pieces for i in range(pieces + 1)]    # in periods
    margin = -(-OVERLAP_SAMPLES // p_in)     # in periods, rounded up

    def piece(i: int) -> np.ndarray:
        lo = max(0, bounds[i] - margin)
        hi = x.size if i == pieces - 1 else (bounds[i + 1] + margin) * p_in
        y = soxr.resample(x[lo * p_in:hi], rate_in, rate_out, quality="HQ")
        skip = (bounds[i] - lo) * p_out
        return y[skip:] if i == pieces - 1 else y[skip:skip + (bounds[i + 1] - bounds[i]) * p_out]

    return np.concatenate(list(_pool.map(piece, range(pieces))))
