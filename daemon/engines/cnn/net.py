"""The small log-mel CNN. Fully convolutional in time: one pass scores a whole track, and a window's
logit is the mean of the frame logits inside it, exactly as in training on random crops."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class NetConfig:
    n_mels: int = 128
    channels: tuple[int, ...] = (16, 32, 64, 128)
    hidden: int = 64

    @property
    def time_stride(self) -> int:
        return 2 ** len(self.channels)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NetConfig":
        return cls(n_mels=int(d["n_mels"]), channels=tuple(d["channels"]), hidden=int(d["hidden"]))


class CnnNet(nn.Module):
    """(batch, 1, n_mels, frames) -> frame logits (batch, frames // time_stride).

    Frequency keeps a coarse position axis to the end (flattened into the head), because the cues
    (upsampling images, fixed spectral peaks, codec band edges) sit at particular frequencies.
    """

    def __init__(self, cfg: NetConfig = NetConfig()):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c_in = 1
        for i, c_out in enumerate(cfg.channels):
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        freq_out = cfg.n_mels // 2 ** len(cfg.channels)
        self.head = nn.Sequential(
            nn.Conv1d(c_in * freq_out, cfg.hidden, 1),
            nn.ReLU(inplace=True),
            nn.Dropout(0.2),
            nn.Conv1d(cfg.hidden, 1, 1),
        )

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = self.features(mel)                       # (B, C, F', T')
        h = h.flatten(1, 2)                          # (B, C*F', T')
        return self.head(h).squeeze(1)               # (B, T')

    def frame_outputs(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's hidden layer after its ReLU, (B, hidden, T'): the frame embeddings, and the
        frame logits computed from them, (B, T') (as `forward`, in eval mode). The last layer is
        linear, so the mean embedding over a track carries its mean logit exactly."""
        h = self.features(mel).flatten(1, 2)
        hidden = self.head[1](self.head[0](h))
        return hidden, self.head[3](self.head[2](hidden)).squeeze(1)

    def window_logit(self, mel: torch.Tensor) -> torch.Tensor:
        """Training and live use: one logit per input crop."""
        return self.forward(mel).mean(dim=1)
