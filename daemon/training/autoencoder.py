"""The learned fake family: a small convolutional autoencoder trained briefly here on the train split's
human music, then used as a decoder. Unlike the random decoders of fakes.py its fingerprint is what
training leaves behind: a learned latent at 1/16 of the rate, transposed-convolution upsampling, and
the reconstruction error of a model that has seen minutes, not years, of music.

Shape (EnCodec-like, continuous latent, no quantiser): 2 -> 16 -> 32 -> 64 channels down by 4 and 4
to an 8-channel latent (1.5 kHz at 24 kHz: a quarter of the input's numbers), mirrored back up. Loss:
waveform L1 + 0.1 x log-magnitude L1 at two STFT sizes. Like every family it keeps the input above
the decoder's Nyquist frequency and replaces the band below by the decode (at 24 or 32 kHz, drawn per
example: the model is convolutional, so a faster rate moves its images up).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..audio import ENGINE_RATE, resample
from .corpora import Track
from .examples import SILENT_RMS, pick_positions
from .fakes import FakeFamily, add_deviation, resample_f64, stereo_f64

NAME = "autoencoder"
TRAIN_RATE = 24000
DECODE_RATES = (24000, 32000)
STRIDE = 4         # per stage, two stages
LATENT = 8
LEVEL = 0.5        # peak level of what it trains on and decodes


@dataclass(frozen=True)
class AutoencoderTraining:
    steps: int = 600
    batch: int = 8
    crop_s: float = 0.5
    lr: float = 1e-3


def build() -> nn.Sequential:
    s = STRIDE
    encoder = nn.Sequential(
        nn.Conv1d(2, 16, 7, padding=3), nn.ELU(),
        nn.Conv1d(16, 32, 2 * s, s, padding=s // 2), nn.ELU(),
        nn.Conv1d(32, 64, 2 * s, s, padding=s // 2), nn.ELU(),
        nn.Conv1d(64, LATENT, 3, padding=1))
    decoder = nn.Sequential(
        nn.Conv1d(LATENT, 64, 3, padding=1), nn.ELU(),
        nn.ConvTranspose1d(64, 32, 2 * s, s, padding=s // 2), nn.ELU(),
        nn.ConvTranspose1d(32, 16, 2 * s, s, padding=s // 2), nn.ELU(),
        nn.Conv1d(16, 2, 7, padding=3))
    return nn.Sequential(encoder, decoder)


def _spectral_l1(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    loss = torch.zeros(())
    for n in (256, 1024):
        window = torch.hann_window(n)
        mag = [torch.stft(t.reshape(-1, t.shape[-1]), n, n // 4, window=window, return_complex=True).abs()
               for t in (y, x)]
        loss = loss + (torch.log(mag[0] + 1e-5) - torch.log(mag[1] + 1e-5)).abs().mean()
    return loss


def training_clips(tracks: list[Track], count: int, seconds: float,
                   rng: np.random.Generator) -> list[np.ndarray]:
    """Stereo pieces of human tracks at TRAIN_RATE; nearly silent ones left out."""
    clips = []
    for track, start in pick_positions(tracks, count, seconds, rng):
        x = resample(track.load(start, seconds), ENGINE_RATE, TRAIN_RATE)
        if np.sqrt(np.mean(x ** 2)) > SILENT_RMS:
            clips.append(x)
    return clips


def train(clips: list[np.ndarray], cfg: AutoencoderTraining, seed: int,
          log: Callable[[str], None]) -> nn.Sequential:
    """Train on stereo clips at TRAIN_RATE (each at least crop_s long), peak-normalised crops."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    crop = int(cfg.crop_s * TRAIN_RATE)
    clips = [c for c in clips if c.shape[1] >= crop]
    if not clips:
        raise ValueError(f"no training clip is {cfg.crop_s} s long")
    model = build()
    opt = torch.optim.Adam(model.parameters(), cfg.lr)
    started = time.perf_counter()
    for step in range(cfg.steps):
        batch = []
        for i in rng.integers(len(clips), size=cfg.batch):
            start = int(rng.integers(0, clips[i].shape[1] - crop + 1))
            batch.append(clips[i][:, start:start + crop])
        x = torch.from_numpy(np.stack(batch).astype(np.float32))
        x = LEVEL * x / (x.abs().amax(dim=(1, 2), keepdim=True) + 1e-4)
        y = model(x)
        loss = F.l1_loss(y, x) + 0.1 * _spectral_l1(y, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 200 == 0 or step + 1 == cfg.steps:
            log(f"  autoencoder step {step + 1}/{cfg.steps}: loss {loss.item():.4f} "
                f"({time.perf_counter() - started:.0f} s)")
    return model.eval()


def save(model: nn.Sequential, path: Path) -> None:
    torch.save(model.state_dict(), path)


def load(path: Path) -> nn.Sequential:
    model = build()
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()


def family(model: nn.Sequential) -> FakeFamily:
    def make(x: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
        return render(model, x, rate, int(DECODE_RATES[rng.integers(len(DECODE_RATES))]))
    return FakeFamily(NAME, make, "small conv autoencoder trained here (stride 16, 8-channel latent), "
                                  "decoding at 24 or 32 kHz")


def render(model: nn.Sequential, x: np.ndarray, rate: int, decode_rate: int) -> np.ndarray:
    """x with its band below decode_rate / 2 replaced by the model's reconstruction of that band."""
    xd = stereo_f64(x)
    low = resample_f64(xd, rate, decode_rate)
    n = low.shape[1]
    hop = STRIDE * STRIDE
    padded = np.pad(low, ((0, 0), (0, -n % hop)))          # whole latent frames
    peak = np.abs(padded).max() + 1e-4
    with torch.no_grad():
        y = model(torch.from_numpy((LEVEL * padded / peak).astype(np.float32))[None])[0]
    return add_deviation(xd, y.double().numpy()[:, :n] * (peak / LEVEL) - low, decode_rate, rate)
