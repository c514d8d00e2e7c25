"""Where aimusicd keeps its state, caches and reports, resolved from config and environment."""

from __future__ import annotations

import os
from pathlib import Path

from .schema import Config

CACHE_ENV = "AIMUSICD_CACHE"
STATE_ENV = "AIMUSICD_STATE"
DATA_ENV = "AIMUSICD_DATA"
REPORT_SUFFIX = ".aimusic.json"


def expand(path: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(path)))


def state_dir(cfg: Config) -> Path:
    if cfg.daemon.state_dir:
        return expand(cfg.daemon.state_dir)
    if os.environ.get(STATE_ENV):
        return expand(os.environ[STATE_ENV])
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "aimusicd"


def cache_dir(cfg: Config | None = None) -> Path:
    if cfg is not None and cfg.models.cache_dir:
        return expand(cfg.models.cache_dir)
    if os.environ.get(CACHE_ENV):
        return expand(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "aimusicd"


def data_dir() -> Path:
    """User data that outlives caches: the model packs `aimusicd learn` writes."""
    if os.environ.get(DATA_ENV):
        return expand(os.environ[DATA_ENV])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "aimusicd"


def config_home() -> Path:
    """The user's own configuration folder: presets, and the thresholds `aimusicd calibrate` writes."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "aimusicd"


def reports_path_for(cfg: Config, audio_path: Path, reports_dir: Path | None = None) -> Path:
    """Sidecar next to the audio, or inside the reports folder (CLI flag first, then config).
    In the reports folder, files from a watch folder keep their sub-folders, so that two uploads
    called mix.wav in different folders do not share one report."""
    folder = reports_dir or (expand(cfg.reports.dir) if cfg.reports.dir else None)
    name = audio_path.name + REPORT_SUFFIX
    if folder is None:
        return audio_path.with_name(name)
    for watched in cfg.watch.folders:
        root = expand(watched).resolve()
        if audio_path.is_relative_to(root):
            return folder / audio_path.parent.relative_to(root) / name
    return folder / name
