"""Sample-rate conversion with libsoxr (its "HQ" quality).

`resample_span` converts only the part of a signal that gives the output samples [start, stop):
the part starts on a whole period of the two rates, so its output falls on the same grid as the
whole signal's, with a margin far longer than the filter cut away again; the result equals that
span of the whole conversion to float32 rounding. A long mono signal is converted that way in
parallel pieces (libsoxr releases the GIL), and Demucs reads its excerpts that way.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from math import gcd

import numpy as np
import soxr
import torch

RESAMPLER = "soxr-hq"            # names the conversion where cached evidence depends on it
PARALLEL_ABOVE = 1 << 20         # samples: below this, threads cost more than they save
OVERLAP_SAMPLES = 8192           # input samples each side of a cut: >> libsoxr HQ's filter



def _new_pool() -> None:
    global _pool
    _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="resample")


_new_pool()
os.register_at_fork(after_in_child=_new_pool)   # a forked worker has none of the parent's threads


def _soxr(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        return soxr.resample(x, rate_in, rate_out, quality="HQ")
    return soxr.resample(x.T, rate_in, rate_out, quality="HQ").T   # soxr wants (frames, channels)


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample along the last axis: (n,) or (channels, n) float32 in, float32 out (the input
    itself when the rates are equal)."""
    if rate_in == rate_out:
        return x
    pieces = min(4, torch.get_num_threads())
    if x.ndim != 1 or pieces < 2 or x.size < PARALLEL_ABOVE:
        return _soxr(x, rate_in, rate_out)
    p_in, p_out = _periods(rate_in, rate_out)
    cuts = [x.shape[-1] // p_in * i // pieces * p_out for i in range(pieces)] + [None]
    spans = list(zip(cuts[:-1], cuts[1:]))
    return np.concatenate(list(_pool.map(lambda span: resample_span(x, rate_in, rate_out, *span), spans)))


def span_input(n: int, rate_in: int, rate_out: int, start: int, stop: int | None) -> tuple[int, int, int]:
    """(lo, hi, skip): the input samples [lo, hi) of a signal of n whose conversion holds the
    output samples [start, stop) of the whole signal's, from its output sample `skip` on."""
    if rate_in == rate_out:
        return start, n if stop is None else stop, 0
    p_in, p_out = _periods(rate_in, rate_out)
    margin = -(-OVERLAP_SAMPLES // p_in)                 # in periods, rounded up
    lo = max(0, start // p_out - margin)
    hi = n if stop is None else min(n, (-(-stop // p_out) + margin) * p_in)
    return lo * p_in, hi, start - lo * p_out


def resample_span(x: np.ndarray, rate_in: int, rate_out: int, start: int, stop: int | None) -> np.ndarray:
    """Output samples [start, stop) (stop None: to the end) of `resample(x, rate_in, rate_out)`,
    converting only the input they need."""
    lo, hi, skip = span_input(x.shape[-1], rate_in, rate_out, start, stop)
    y = _soxr(x[..., lo:hi], rate_in, rate_out) if rate_in != rate_out else x[..., lo:hi]
    return y[..., skip:None if stop is None else skip + stop - start]


def _periods(rate_in: int, rate_out: int) -> tuple[int, int]:
    """Input and output samples in one common period of the two rates."""
    g = gcd(rate_in, rate_out)
    return rate_in // g, rate_out // g
