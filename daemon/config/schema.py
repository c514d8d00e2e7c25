"""Typed configuration. The dataclasses are the schema: a key not declared here is an error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

Mode = Literal["auto", "full", "cnn", "demucs"]
MODES: tuple[str, ...] = ("auto", "full", "cnn", "demucs")


def opt(default=None, *, choices=None, min=None, max=None, factory=None):
    """A config field with validation metadata."""
    meta = {"choices": choices, "min": min, "max": max}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DaemonConfig:
    state_dir: str = ""
    log_level: str = opt("info", choices=("debug", "info", "warning", "error"))


@dataclass
class WatchConfig:
    enabled: bool = True
    folders: list[str] = opt(factory=list)
    recursive: bool = True
    patterns: list[str] = opt(factory=list)
    ignore: list[str] = opt(factory=list)
    polling: bool = False
    poll_interval_s: float = opt(2.0, min=0.1, max=3600)
    settle_s: float = opt(2.0, min=0.0, max=3600)
    mode: str = opt("full", choices=MODES)
    startup_scan: bool = True


@dataclass
class OscConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = opt(9431, min=0, max=65535)
    reply_port: int = opt(9432, min=1, max=65535)
    reply_to: str = opt("both", choices=("both", "reply_port", "source_port"))
    allowed_senders: list[str] = opt(factory=list)
    allowed_roots: list[str] = opt(factory=list)
    max_packet_bytes: int = opt(8192, min=64, max=65507)


@dataclass
class LiveConfig:
    enabled: bool = False
    device: str = ""
    sample_rate: int = opt(0, min=0, max=192000)
    channels: int = opt(2, min=1, max=64)
    block_size: int = opt(1024, min=32, max=16384)
    hop_s: float = opt(0.5, min=0.05, max=10)
    smoothing_s: float = opt(3.0, min=0.0, max=600)
    alert_threshold: float = opt(0.8, min=0.0, max=1.0)
    alert_after_s: float = opt(10.0, min=0.0, max=3600)
    capture: bool = True
    capture_s: float = opt(30.0, min=1.0, max=600)
    capture_dir: str = ""
    demucs_check: bool = True


@dataclass
class EnginesConfig:
    mode: str = opt("auto", choices=MODES)
    threads: int = opt(0, min=0, max=256)
    demucs_excerpts: int = opt(3, min=1, max=32)
    demucs_device: str = opt("auto", choices=("auto", "cpu", "cuda", "mps"))
    min_duration_s: float = opt(2.0, min=0.5, max=60)
    max_duration_s: float = opt(3600.0, min=1.0, max=86400)
    max_file_mb: int = opt(2048, min=1, max=1 << 20)
    ai_threshold: Optional[float] = opt(None, min=0.0, max=1.0)
    human_threshold: Optional[float] = opt(None, min=0.0, max=1.0)


@dataclass
class JobsConfig:
    max_queued: int = opt(500, min=1, max=1_000_000)
    keep_done_days: int = opt(365, min=1, max=100_000)


@dataclass
class ModelsConfig:
    cache_dir: str = ""
    demucs: str = opt("htdemucs", choices=("htdemucs",))
    packs: list[str] = opt(factory=lambda: ["*"])


@dataclass
class ReportsConfig:
    enabled: bool = True
    dir: str = ""


@dataclass
class WebConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = opt(9433, min=0, max=65535)
    token: str = ""               # required when host is not a loopback address
    page_size: int = opt(50, min=5, max=1000)


@dataclass
class Config:
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)
    osc: OscConfig = field(default_factory=OscConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    engines: EnginesConfig = field(default_factory=EnginesConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    reports: ReportsConfig = field(default_factory=ReportsConfig)
    web: WebConfig = field(default_factory=WebConfig)
    source: str = field(default="<defaults>", metadata={"internal": True})
    # Written by `aimusicd calibrate`: each known generator's or pack's own threshold, and where
    # the thresholds in force come from.
    fingerprint_thresholds: dict[str, float] = field(default_factory=dict, metadata={"internal": True})
    thresholds_source: str = field(default="shipped with the models", metadata={"internal": True})
