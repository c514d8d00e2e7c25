"""Configuration: packaged defaults merged with a preset, validated against typed dataclasses."""

from .load import available_presets, load_config, resolve_preset, to_toml
from .paths import cache_dir, config_home, data_dir, reports_path_for, state_dir
from .schema import MODES, Config

__all__ = [
    "Config", "MODES", "available_presets", "cache_dir", "config_home", "data_dir", "load_config", "reports_path_for",
    "resolve_preset", "state_dir", "to_toml",
]
