"""CnnEngine: per-window and whole-track probabilities from the log-mel CNN."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import nn

from ...errors import ModelError
from ...hashing import sha256_file
from ..logistic import sigmoid
from .melspec import LogMel, MelConfig
from .net import CnnNet, NetConfig

PACKAGED_WEIGHTS = Path(__file__).resolve().parents[2] / "models" / "cnn.safetensors"
CHUNK_FRAMES = 1024   # the net runs on mel chunks this long: activations stay in cache
MARGIN_FRAMES = 32    # > the receptive-field radius, and a multiple of the net's time stride


@dataclass(frozen=True)
class CnnModelMeta:
    name: str
    net: NetConfig
    mel: MelConfig
    window_s: float = 4.0
    hop_s: float = 2.0
    calib_a: float = 1.0   # Platt scaling of the mean window logit: p = sigmoid(a * logit + b)
    calib_b: float = 0.0

    def to_metadata(self) -> dict[str, str]:
        return {
            "name": self.name, "net": json.dumps(self.net.to_dict()), "mel": json.dumps(asdict(self.mel)),
            "window_s": repr(self.window_s), "hop_s": repr(self.hop_s),
            "calib_a": repr(self.calib_a), "calib_b": repr(self.calib_b),
        }

    @classmethod
    def from_metadata(cls, m: dict[str, str]) -> "CnnModelMeta":
        return cls(
            name=m["name"], net=NetConfig.from_dict(json.loads(m["net"])),
            mel=MelConfig(**json.loads(m["mel"])), window_s=float(m["window_s"]),
            hop_s=float(m["hop_s"]), calib_a=float(m["calib_a"]), calib_b=float(m["calib_b"]),
        )


@dataclass
class WindowScore:
    start: float
    end: float
    p: float


@dataclass
class CnnEvidence:
    model: str
    model_sha256: str
    probability_ai: float
    logit: float           # calibrated track logit (a * mean window logit + b)
    windows: list[WindowScore]
    seconds: float
    # The track's embedding: the net's penultimate layer (its head's hidden units) averaged over
    # every frame, from the same forward pass as the logit (model packs read it; not reported).
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)   # (arrays have no ==)


def save_cnn(path: Path, net: CnnNet, meta: CnnModelMeta) -> None:
    """Same net and metadata, same bytes: safetensors writes its metadata in hash-map order, which
    changes from process to process, so the header is rewritten with its keys sorted (the model
    card's sha256 must repeat when training does)."""
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    data = save(state, metadata=meta.to_metadata())
    size = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8:8 + size]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)   # the format pads the header to 8-byte alignment
    path.write_bytes(len(header).to_bytes(8, "little") + header + data[8 + size:])


def _fuse_batchnorm(net: CnnNet) -> CnnNet:
    """Fold each BatchNorm into the conv before it: same outputs, a quarter less inference time."""
    layers, seq = [], list(net.features)
    i = 0
    while i < len(seq):
        if isinstance(seq[i], nn.Conv2d) and i + 1 < len(seq) and isinstance(seq[i + 1], nn.BatchNorm2d):
            layers.append(nn.utils.fusion.fuse_conv_bn_eval(seq[i], seq[i + 1]))
            i += 2
        else:
            layers.append(seq[i])
            i += 1
    net.features = nn.Sequential(*layers)
    return net


class CnnEngine:
    """Loads once, then scores whole tracks (`score_track`) and live windows (`window_logit`)."""

    def __init__(self, weights: Path = PACKAGED_WEIGHTS):
        if not weights.is_file():
            raise ModelError(
                f"CNN weights not found at {weights}; they ship with the package "
                "(rebuild them with `aimusicd train`)"
            )
        try:
            with safe_open(str(weights), framework="pt") as fh:
                self.meta = CnnModelMeta.from_metadata(fh.metadata())
                state = {k: fh.get_tensor(k) for k in fh.keys()}
            net = CnnNet(self.meta.net)
            net.load_state_dict(state)
        except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as exc:
            raise ModelError(f"{weights}: cannot load CNN weights ({exc})") from None
        self.sha256 = sha256_file(weights)
        # channels-last runs the small convs and pools 2-3x faster on CPU than NCHW, same outputs
        self.net = _fuse_batchnorm(net.eval()).to(memory_format=torch.channels_last)
        self.melspec = LogMel(self.meta.mel).eval()
        # Whole tracks are scored one at a time (torch already uses every core). Live windows take
        # no lock: a few ms of overlap costs less than waiting behind a whole-track pass.
        self._track_lock = threading.Lock()

    @property
    def sample_rate(self) -> int:
        return self.meta.mel.sample_rate

    def frame_logits(self, mono: np.ndarray) -> np.ndarray:
        """Raw frame logits for a mono signal, one per `net.time_stride` mel frames."""
        return self.frame_outputs(mono)[1]

    def frame_outputs(self, mono: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame embeddings (frames, hidden) and raw frame logits (frames,), from one pass."""
        stride = self.meta.net.time_stride
        x = torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))[None]
        with torch.inference_mode():
            padded = self.melspec.pad(x)
            total = self.melspec.n_frames(x.shape[-1])
            frames = total - total % stride
            outs, hidden = [], []
            for start in range(0, frames, CHUNK_FRAMES):
                lo = max(0, start - MARGIN_FRAMES)
                hi = min(total, start + CHUNK_FRAMES + MARGIN_FRAMES)   # right context as in one pass
                mel = self.melspec.frames(padded, lo, hi).contiguous(memory_format=torch.channels_last)
                h, out = self.net.frame_outputs(mel)
                first = (start - lo) // stride
                keep = slice(first, first + min(CHUNK_FRAMES, frames - start) // stride)
                outs.append(out[0, keep])
                hidden.append(h[0, :, keep])
        if not outs:
            return np.zeros((0, self.meta.net.hidden), np.float32), np.zeros(0, np.float32)
        return torch.cat(hidden, dim=1).T.numpy(), torch.cat(outs).numpy()

    def _calibrate(self, logit):
        return self.meta.calib_a * logit + self.meta.calib_b

    def window_logit(self, mono: np.ndarray) -> float:
        """Calibrated logit of one live window (the fusion turns it into a probability)."""
        return float(self._calibrate(self.frame_logits(mono).mean()))

    def score_track(self, mono: np.ndarray) -> CnnEvidence:
        started = time.perf_counter()
        with self._track_lock:
            hidden, logits = self.frame_outputs(mono)
        seconds_per_logit = self.meta.net.time_stride * self.meta.mel.hop / self.sample_rate
        per_window = max(1, round(self.meta.window_s / seconds_per_logit))
        per_hop = max(1, round(self.meta.hop_s / seconds_per_logit))
        windows: list[WindowScore] = []
        window_logits = []
        last_start = max(0, len(logits) - per_window)
        starts = list(range(0, last_start + 1, per_hop))
        if starts[-1] != last_start:
            starts.append(last_start)  # the tail of the track gets a window too
        for s in starts:
            raw = float(logits[s:s + per_window].mean())
            window_logits.append(raw)
            end = min(len(mono) / self.sample_rate, (s + per_window) * seconds_per_logit)
            windows.append(WindowScore(round(s * seconds_per_logit, 3), round(end, 3),
                                       round(float(sigmoid(self._calibrate(raw))), 4)))
        track_logit = float(self._calibrate(np.mean(window_logits)))
        return CnnEvidence(
            model=self.meta.name, model_sha256=self.sha256,
            probability_ai=float(sigmoid(track_logit)), logit=track_logit, windows=windows,
            seconds=time.perf_counter() - started,
            embedding=hidden.mean(axis=0) if len(hidden) else np.zeros(self.meta.net.hidden, np.float32),
        )

