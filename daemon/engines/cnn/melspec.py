"""Log-mel front end of the CNN engine (full band, 0 Hz to Nyquist).

Absolute dB (re full scale) rather than per-window normalisation: the network sees the same values
whether it scores a 4 s live window or a whole track in one pass; gain invariance is learned from
random gain in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 44100
    n_fft: int = 2048
    hop: int = 1024  # half the cost of hop 512 for the same spectral detail; 43 frames/s
    n_mels: int = 128
    floor_db: float = -100.0


def mel_filterbank(cfg: MelConfig) -> np.ndarray:
    """The CNN's filters: 0 Hz to Nyquist, (n_mels, n_fft // 2 + 1)."""
    return slaney_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, 0.0, cfg.sample_rate / 2)


def slaney_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Slaney-style triangular filters, area-normalised (librosa's default mel basis):
    (n_mels, n_fft // 2 + 1) float32."""

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        linear = f / (200.0 / 3)
        log = 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(f >= 1000.0, log, linear)

    def mel_to_hz(m):
        m = np.asarray(m, dtype=np.float64)
        linear = m * (200.0 / 3)
        log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
        return np.where(m >= 15.0, log, linear)

    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_points = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    hz_points = mel_to_hz(mel_points)
    fb = np.zeros((n_mels, fft_freqs.size))
    for i in range(n_mels):
        lo, mid, hi = hz_points[i:i + 3]
        rising = (fft_freqs - lo) / (mid - lo)
        falling = (hi - fft_freqs) / (hi - mid)
        fb[i] = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (hi - lo))
    return fb.astype(np.float32)


class LogMel(nn.Module):
    """(batch, samples) mono float -> (batch, 1, n_mels, frames) scaled log-mel."""

    def __init__(self, cfg: MelConfig = MelConfig()):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)
        self.register_buffer("fb", torch.from_numpy(mel_filterbank(cfg)), persistent=False)

    def n_frames(self, samples: int) -> int:
        return samples // self.cfg.hop + 1

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Reflect-pad half a window on each side (frame f is then centred on sample f * hop)."""
        half = self.cfg.n_fft // 2
        return torch.nn.functional.pad(x[:, None], (half, half), mode="reflect")[:, 0]

    def frames(self, padded: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """Log-mel frames [lo, hi) of a signal already passed through `pad`; lets long tracks be
        processed in chunks that stay in cache."""
        hop = self.cfg.hop
        segment = padded[:, lo * hop:(hi - 1) * hop + self.cfg.n_fft]
        spec = torch.stft(segment, self.cfg.n_fft, hop, window=self.window, center=False,
                          return_complex=True).transpose(1, 2)
        ri = torch.view_as_real(spec)
        power = torch.addcmul(ri[..., 0] * ri[..., 0], ri[..., 1], ri[..., 1])
        mel = torch.matmul(power, self.fb.T).transpose(1, 2)
        db = 10.0 * torch.log10(mel.clamp_min(10 ** (self.cfg.floor_db / 10)))
        return ((db + 50.0) / 25.0).unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.frames(self.pad(x), 0, self.n_frames(x.shape[-1]))
