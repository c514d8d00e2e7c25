"""Typed configuration. The dataclasses are the schema: a key not declared here is an error.

They hold types and allowed values only. Every default value lives in defaults.toml, which every
configuration is merged over, so the schema declares no defaults of its own that could drift from
it; only the optional keys (unset unless a preset or `aimusicd calibrate` sets them) default to None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

MODES: tuple[str, ...] = ("auto", "full", "cnn", "demucs")


def opt(*, choices=None, min=None, max=None, optional=False):
    """A config field with validation metadata; `optional` ones default to None (unset)."""
    meta = {"choices": choices, "min": min, "max": max}
    if optional:
        return field(default=None, metadata=meta)
    return field(metadata=meta)


@dataclass
class DaemonConfig:
    state_dir: str
    log_level: str = opt(choices=("debug", "info", "warning", "error"))


@dataclass
class WatchConfig:
    enabled: bool
    folders: list[str]
    recursive: bool
    patterns: list[str]
    ignore: list[str]
    polling: bool
    poll_interval_s: float = opt(min=0.1, max=3600)
    settle_s: float = opt(min=0.0, max=3600)
    mode: str = opt(choices=MODES)
    startup_scan: bool


@dataclass
class OscConfig:
    enabled: bool
    host: str
    port: int = opt(min=0, max=65535)
    reply_port: int = opt(min=1, max=65535)
    reply_to: str = opt(choices=("both", "reply_port", "source_port"))
    allowed_senders: list[str]
    allowed_roots: list[str]
    max_packet_bytes: int = opt(min=64, max=65507)


@dataclass
class LiveConfig:
    enabled: bool
    device: str
    sample_rate: int = opt(min=0, max=192000)
    channels: int = opt(min=1, max=64)
    block_size: int = opt(min=32, max=16384)
    hop_s: float = opt(min=0.05, max=10)
    smoothing_s: float = opt(min=0.0, max=600)
    alert_threshold: float = opt(min=0.0, max=1.0)
    alert_after_s: float = opt(min=0.0, max=3600)
    capture: bool
    capture_s: float = opt(min=1.0, max=600)
    capture_dir: str
    demucs_check: bool


@dataclass
class EnginesConfig:
    mode: str = opt(choices=MODES)
    threads: int = opt(min=0, max=256)
    demucs_excerpts: int = opt(min=1, max=32)
    demucs_device: str = opt(choices=("auto", "cpu", "cuda", "mps"))
    min_duration_s: float = opt(min=0.5, max=60)
    max_duration_s: float = opt(min=1.0, max=86400)
    max_file_mb: int = opt(min=1, max=1 << 20)
    ai_threshold: Optional[float] = opt(min=0.0, max=1.0, optional=True)
    human_threshold: Optional[float] = opt(min=0.0, max=1.0, optional=True)


@dataclass
class JobsConfig:
    max_queued: int = opt(min=1, max=1_000_000)
    keep_done_days: int = opt(min=1, max=100_000)


@dataclass
class ModelsConfig:
    cache_dir: str
    demucs: str = opt(choices=("htdemucs",))
    packs: list[str]


@dataclass
class ReportsConfig:
    enabled: bool
    dir: str


@dataclass
class WebConfig:
    enabled: bool
    host: str
    port: int = opt(min=0, max=65535)
    token: str                    # required when host is not a loopback address
    page_size: int = opt(min=5, max=1000)


@dataclass
class Config:
    daemon: DaemonConfig
    watch: WatchConfig
    osc: OscConfig
    live: LiveConfig
    engines: EnginesConfig
    jobs: JobsConfig
    models: ModelsConfig
    reports: ReportsConfig
    web: WebConfig
    source: str = field(default="<defaults>", metadata={"internal": True})
    # Written by `aimusicd calibrate`: each known generator's or pack's own threshold, and where
    # the thresholds in force come from.
    fingerprint_thresholds: dict[str, float] = field(default_factory=dict, metadata={"internal": True})
    thresholds_source: str = field(default="shipped with the models", metadata={"internal": True})
