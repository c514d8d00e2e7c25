"""HTDemucs construction, loading and raw separation of excerpts.

Raw means: `apply_model(..., shifts=0)` output with no clipping, rescaling or Wiener step, since the
engine's evidence is exactly what the model fails to put into any stem (mix - sum of stems).
`shifts=0` keeps it deterministic; `split=False` on inputs of at most one segment runs one forward
pass per excerpt instead of two overlapping chunks. On a GPU the excerpts stay in host memory and
only the forward pass runs there. Its FP32 kernels round differently from the CPU's (in FP64 the two
agree to 1e-14): on an H100 the stems moved by up to 0.2 % of the mix's peak, the residual features
by 0.02 and the Demucs head's logit by 0.005 (`benchmarks/demucs_device.py`).
"""

from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from demucs.apply import apply_model
from demucs.htdemucs import HTDemucs

from ...errors import ModelError

SOURCES = ["drums", "bass", "other", "vocals"]
# The architecture of the pretrained "htdemucs" (4 stems); the weights file must match it exactly.
HTDEMUCS_KWARGS = dict(
    sources=SOURCES, dconv_mode=3, bottom_channels=512, t_layers=5, segment=Fraction(39, 5)
)


def build_htdemucs() -> HTDemucs:
    return HTDemucs(**HTDEMUCS_KWARGS)


def tiny_htdemucs(seed: int = 0) -> HTDemucs:
    """A randomly initialised, much smaller HTDemucs with the same interface, for fast tests."""
    torch.manual_seed(seed)
    model = HTDemucs(
        sources=SOURCES, channels=4, depth=4, nfft=1024, t_layers=1, t_heads=2, bottom_channels=0,
        dconv_mode=1, dconv_comp=2, segment=Fraction(39, 5),
    )
    return model.eval()


def load_htdemucs(weights: Path) -> HTDemucs:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    model = build_htdemucs()
    try:
        model.load_state_dict(load_file(str(weights)), strict=True)
    except (OSError, RuntimeError, SafetensorError) as exc:
        raise ModelError(f"{weights}: cannot load HTDemucs weights ({exc})") from None
    return model.eval()


def torch_device(name: str) -> torch.device:
    """The device named in `engines.demucs_device`. "auto" takes a CUDA GPU if torch sees one; Apple's
    MPS only when named, as demucs' own CLI does (not measured here)."""
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if name == "auto":
        return torch.device("cuda" if available["cuda"] else "cpu")
    if name not in available:
        raise ModelError(f"unknown torch device {name!r} (auto, cpu, cuda or mps)")
    if not available[name]:
        raise ModelError(f"engines.demucs_device is {name!r}, but torch {torch.__version__} sees no such "
                         "device here; use \"auto\" or \"cpu\"")
    return torch.device(name)


class Separator:
    """Separates batches of excerpts of at most one model segment each."""

    def __init__(self, model: HTDemucs, device: str = "cpu"):
        self.device = torch_device(device)
        self.model = model.to(self.device).eval()
        self.sources = list(model.sources)
        self.sample_rate = int(model.samplerate)
        self.segment_samples = int(model.segment * model.samplerate)
        self._lock = threading.Lock()  # torch already uses every core; parallel calls only thrash

    def separate(self, excerpts: np.ndarray) -> np.ndarray:
        """(n, 2, samples) float32 mixes -> (n, stems, 2, samples) raw stem estimates."""
        if excerpts.shape[-1] > self.segment_samples:
            raise ValueError(f"excerpt longer than one segment ({self.segment_samples} samples)")
        mix = torch.from_numpy(np.ascontiguousarray(excerpts, dtype=np.float32))
        with self._lock, torch.inference_mode():
            stems = apply_model(self.model, mix, shifts=0, split=False, progress=False, device=self.device)
        return stems.cpu().numpy()
