"""The CNN engine: a small log-mel CNN, milliseconds per window."""

from .engine import PACKAGED_WEIGHTS, CnnEngine, CnnEvidence, CnnModelMeta, WindowScore, save_cnn
from .melspec import LogMel, MelConfig
from .net import CnnNet, NetConfig

__all__ = [
    "PACKAGED_WEIGHTS", "CnnEngine", "CnnEvidence", "CnnModelMeta", "CnnNet", "LogMel", "MelConfig",
    "NetConfig", "WindowScore", "save_cnn",
]
