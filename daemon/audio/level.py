"""Level normalisation where the engines read the signal: a verdict must not depend on absolute
level (a float file can hold music at +80 dB), polarity or a DC offset.

Each channel loses its DC and the peak goes to -1 dBFS. The statistics take one multi-threaded
pass over the decoded buffer, and the correction is applied only to what an engine reads (the
mid for the fast pass, the stereo for Demucs), so a track the fast pass settles never pays for a
normalised stereo copy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

TARGET_PEAK = float(10 ** (-1 / 20))   # -1 dBFS, where a mastered bounce peaks


@dataclass(frozen=True)
class Level:
    dc: np.ndarray   # (channels,) float32: each channel's mean
    gain: float      # what takes the DC-free peak to TARGET_PEAK (1 for silence)

    @classmethod
    def of(cls, samples: np.ndarray) -> "Level":
        """Measure (channels, n) float32 audio, any strides."""
        x = torch.from_numpy(samples)
        n = x.shape[-1]
        if n == 0:
            return cls(np.zeros(x.shape[0], np.float32), 1.0)
        lo, hi = torch.aminmax(x, dim=-1)
        dc = x.sum(dim=-1).double() / n
        if not torch.isfinite(dc).all():   # samples near float32's limit: sum in float64
            dc = x.double().sum(dim=-1) / n
        peak = float(torch.maximum(hi.double() - dc, dc - lo.double()).max())
        return cls(dc.float().numpy(), TARGET_PEAK / peak if peak > 0.0 else 1.0)

    def apply(self, samples: np.ndarray) -> np.ndarray:
        """(channels, n) float32 corrected in place."""
        x = torch.from_numpy(samples)
        x.sub_(torch.from_numpy(self.dc)[:, None]).mul_(self.gain)
        return samples

    def apply_mid(self, mid: np.ndarray) -> np.ndarray:
        """The mid (mean of the channels) corrected in place."""
        torch.from_numpy(mid).sub_(float(self.dc.mean())).mul_(self.gain)
        return mid


def normalise_level(samples: np.ndarray) -> np.ndarray:
    """(channels, n) float32 with each channel's DC removed and the peak at TARGET_PEAK (silence
    stays silence). Works in place on a writable float32 array."""
    x = samples if samples.dtype == np.float32 and samples.flags.writeable else samples.astype(np.float32)
    return Level.of(x).apply(x)
