"""Load packaged defaults, merge a preset over them, validate every key against the schema."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import typing
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .paths import config_home
from .schema import Config

PRESET_ENV = "AIMUSICD_PRESETS"
THRESHOLDS_FILE = "thresholds.toml"


def preset_dirs() -> list[Path]:
    """Where preset names are looked up, first match wins."""
    dirs = [Path(p) for p in os.environ.get(PRESET_ENV, "").split(os.pathsep) if p]
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    dirs.append(config_home / "aimusicd" / "presets")
    dirs.append(Path(__file__).resolve().parents[2] / "presets")  # the checkout's presets/
    return dirs


def available_presets() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in reversed(preset_dirs()):
        for p in sorted(d.glob("*.toml")) if d.is_dir() else ():
            found[p.stem] = p
    return dict(sorted(found.items()))


def resolve_preset(name_or_path: str) -> Path:
    as_path = Path(name_or_path).expanduser()
    if as_path.suffix == ".toml" or os.sep in name_or_path:
        if not as_path.is_file():
            raise ConfigError(f"{name_or_path}: preset file not found")
        return as_path
    for d in preset_dirs():
        candidate = d / f"{name_or_path}.toml"
        if candidate.is_file():
            return candidate
    names = ", ".join(available_presets()) or "none found"
    raise ConfigError(f"preset {name_or_path!r} not found (available: {names})")


def _read_toml(path: Path | str, text: str | None = None) -> dict[str, Any]:
    try:
        if text is None:
            text = Path(path).read_text(encoding="utf-8")
        return tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None


def packaged_defaults() -> dict[str, Any]:
    text = resources.files("daemon.config").joinpath("defaults.toml").read_text(encoding="utf-8")
    return _read_toml("<packaged defaults>", text)


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; any other value (lists included) replaces the base value."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _describe(field: dataclasses.Field) -> str:
    meta = field.metadata
    if meta.get("choices"):
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    kind = _base_type(field)
    if kind in (int, float) and (meta.get("min") is not None or meta.get("max") is not None):
        return f"a {'number' if kind is float else 'whole number'} from {meta['min']} to {meta['max']}"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string",
            list: "a list of strings"}[kind]


def _base_type(field: dataclasses.Field) -> type:
    # schema.py uses postponed annotations, so field.type is the annotation's text.
    text = str(field.type).removeprefix("Optional[")
    for name, kind in (("bool", bool), ("int", int), ("float", float), ("list", list), ("str", str)):
        if text.startswith(name):
            return kind
    raise TypeError(f"unsupported config type {field.type}")


def _check_value(where: str, key: str, field: dataclasses.Field, value: Any) -> Any:
    kind = _base_type(field)
    meta = field.metadata
    bad = ConfigError(f"{where}: [{key}] = {value!r} is invalid; expected {_describe(field)}")
    if kind is bool:
        if not isinstance(value, bool):
            raise bad
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        value = float(value)
    elif kind is str:
        if not isinstance(value, str):
            raise bad
    elif kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad
    if meta.get("choices") and value not in meta["choices"]:
        raise bad
    if kind in (int, float):
        if (meta.get("min") is not None and value < meta["min"]) or (
            meta.get("max") is not None and value > meta["max"]
        ):
            raise bad
    return value


def config_sections() -> dict[str, type]:
    """Each section's name and dataclass (the schema's non-internal fields of `Config`)."""
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config) if not f.metadata.get("internal")}


def build_config(data: dict[str, Any], where: str) -> Config:
    """Turn merged TOML tables into a validated `Config`; errors name `where`, the key and allowed values.
    `data` must be complete: the packaged defaults with a preset merged over them."""
    sections = config_sections()
    built: dict[str, Any] = {}
    for name, table in data.items():
        if name not in sections:
            raise ConfigError(f"{where}: unknown section [{name}]; allowed: {', '.join(sections)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{name}] must be a table")
        section_type = sections[name]
        fields = {f.name: f for f in dataclasses.fields(section_type)}
        values = {}
        for key, value in table.items():
            if key not in fields:
                raise ConfigError(
                    f"{where}: unknown key [{name}].{key}; allowed: {', '.join(fields)}"
                )
            values[key] = _check_value(where, f"{name}.{key}", fields[key], value)
        if missing := [k for k, f in fields.items() if k not in values and f.default is dataclasses.MISSING]:
            raise ConfigError(f"{where}: [{name}] has no {', '.join(missing)} (nor do the packaged defaults)")
        built[name] = section_type(**values)
    if missing := [name for name in sections if name not in built]:
        raise ConfigError(f"{where}: no section [{', '.join(missing)}] (nor in the packaged defaults)")
    cfg = Config(**built, source=where)
    if cfg.osc.reply_port == cfg.osc.port:
        raise ConfigError(
            f"{where}: [osc] reply_port ({cfg.osc.reply_port}) must differ from port: the daemon "
            "would send its replies to itself"
        )
    lo, hi = cfg.engines.human_threshold, cfg.engines.ai_threshold
    if lo is not None and hi is not None and lo >= hi:
        raise ConfigError(
            f"{where}: [engines] human_threshold ({lo}) must be below ai_threshold ({hi})"
        )
    if cfg.web.enabled and not cfg.web.token and not is_loopback(cfg.web.host):
        raise ConfigError(
            f"{where}: [web] host {cfg.web.host!r} is not a loopback address; set [web] token so "
            "that only those who know it can see the dashboard")
    return cfg


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def thresholds_path() -> Path:
    return config_home() / THRESHOLDS_FILE


def read_thresholds(path: Path) -> tuple[dict[str, Any], dict[str, float], str]:
    """The thresholds `aimusicd calibrate` wrote: [engines] keys to merge, each fingerprint's
    threshold ([fingerprints]) and a line saying where they come from."""
    doc = _read_toml(path)
    engines = doc.get("engines", {})
    fingerprints = doc.get("fingerprints", {})
    if not isinstance(engines, dict) or not isinstance(fingerprints, dict) or set(engines) - {
            "ai_threshold", "human_threshold"}:
        raise ConfigError(f"{path}: not a thresholds file of `aimusicd calibrate` (rerun it)")
    for name, value in fingerprints.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
            raise ConfigError(f"{path}: [fingerprints] {name} = {value!r} is not a probability")
    about = doc.get("calibration", {})
    where = f"{path} (calibrated {about.get('created', '?')} on {about.get('excerpts', '?')} excerpts, " \
            f"false-positive rate {about.get('fpr', '?')})"
    return {"engines": engines} if engines else {}, {k: float(v) for k, v in fingerprints.items()}, where


def load_config(preset: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Packaged defaults, then the thresholds `aimusicd calibrate` wrote, then the preset (a name
    or a path), then `overrides` (already-parsed tables)."""
    data = packaged_defaults()
    where = "<packaged defaults>"
    fingerprints: dict[str, float] = {}
    thresholds_from = "shipped with the models"
    calibrated = thresholds_path()
    if calibrated.is_file():
        engines, fingerprints, thresholds_from = read_thresholds(calibrated)
        data = merge(data, engines)
    if preset:
        path = resolve_preset(str(preset))
        data = merge(data, _read_toml(path))
        where = str(path)
    if overrides:
        data = merge(data, overrides)
    cfg = build_config(data, where)
    cfg.fingerprint_thresholds, cfg.thresholds_source = fingerprints, thresholds_from
    return cfg


def threshold_sources(preset: str | Path | None = None) -> list[tuple[str, float | None, str]]:
    """Where each threshold in force comes from, in the order load_config merges them: a preset's
    own [engines] value wins over the one `aimusicd calibrate` wrote, which wins over the models'
    own. Rows of (name, value, source) for the fusion's two thresholds and each [fingerprints]
    entry the thresholds file sets (the generators and packs it does not name keep their own)."""
    calibrated = thresholds_path()
    engines, fingerprints, about = read_thresholds(calibrated) if calibrated.is_file() else ({}, {}, "")
    engines = engines.get("engines", {})
    own: dict[str, Any] = {}
    where = ""
    if preset:
        path = resolve_preset(str(preset))
        own = _read_toml(path).get("engines", {})
        where = f"preset {path}"
    rows: list[tuple[str, float | None, str]] = []
    for key in ("ai_threshold", "human_threshold"):
        if own.get(key) is not None:
            note = " (over the calibrated value)" if key in engines else ""
            rows.append((key, float(own[key]), where + note))
        elif key in engines:
            rows.append((key, float(engines[key]), about))
        else:
            rows.append((key, None, "shipped with the models (fusion.json)"))
    rows += [(f"fingerprint {name}", value, about) for name, value in sorted(fingerprints.items())]
    return rows


def preset_thresholds(path: Path) -> list[str]:
    """The [engines] thresholds a preset file sets itself (they win over calibrated ones)."""
    try:
        engines = _read_toml(path).get("engines", {})
    except ConfigError:
        return []
    return [k for k in ("ai_threshold", "human_threshold") if isinstance(engines, dict) and k in engines]


def to_toml(cfg: Config) -> str:
    """The merged configuration as TOML text (for `aimusicd config check`)."""
    lines: list[str] = [f"# merged from packaged defaults and {cfg.source}",
                        f"# thresholds: {cfg.thresholds_source}"]
    for section in dataclasses.fields(Config):
        if section.metadata.get("internal"):
            continue
        lines.append(f"\n[{section.name}]")
        for f in dataclasses.fields(getattr(cfg, section.name)):
            value = getattr(getattr(cfg, section.name), f.name)
            if value is None:
                lines.append(f"# {f.name} unset: calibrated default")
                continue
            lines.append(f"{f.name} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def tables_to_toml(tables: dict[str, dict[str, Any]]) -> str:
    """Tables of plain values (what a preset holds) as TOML text."""
    lines: list[str] = []
    for name, values in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def toml_value(value: Any) -> str:
    """A config value (bool, number, string, or a list of them) as a TOML literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
