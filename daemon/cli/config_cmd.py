"""`aimusicd config check|list`: validate presets and show the merged configuration."""

from __future__ import annotations

from ..config import available_presets, load_config, to_toml
from .common import add_preset_argument


def add_parser(sub) -> None:
    p = sub.add_parser("config", help="validate presets and print the merged configuration")
    csub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = csub.add_parser("check", help="validate a preset and print the merged result")
    check.add_argument("preset", nargs="?", metavar="NAME|PATH", help="default: packaged defaults only")
    listing = csub.add_parser("list", help="list the presets that can be named, and where each threshold comes from")
    add_preset_argument(listing)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.config_command == "list":
        return list_presets_and_thresholds(args.preset)
    cfg = load_config(args.preset)
    print(to_toml(cfg), end="")
    return 0


def list_presets_and_thresholds(preset: str | None) -> int:
    """The presets, and each threshold in force (with `--preset`, under that preset) with the
    place it comes from: a preset's own value, the thresholds file of `aimusicd calibrate`, or
    the models themselves."""
    from ..config.load import preset_thresholds, threshold_sources
    from ..engines.fingerprint import FingerprintEngine
    from ..engines.fusion import Fusion
    from ..engines.packs import load_packs, packs_root
    from ..errors import ModelError

    for name, path in available_presets().items():
        sets = preset_thresholds(path)
        note = f"  (sets {', '.join(sets)}: wins over calibrated thresholds)" if sets else ""
        print(f"{name:<20} {path}{note}")
    cfg = load_config(preset)
    rows = threshold_sources(preset)
    from_preset = [name for name, _, source in rows if source.startswith("preset ")]
    if from_preset:
        print(f"thresholds: {', '.join(from_preset)} from preset {preset}; the rest: {cfg.thresholds_source}")
    else:
        print(f"thresholds: {cfg.thresholds_source}")
    shipped = {"ai_threshold": None, "human_threshold": None}
    try:
        fusion = Fusion.load()
        shipped = {"ai_threshold": fusion.params.ai_threshold, "human_threshold": fusion.params.human_threshold}
    except ModelError:        # no fusion model built: the value column says "?"
        pass
    named = {name for name, _, _ in rows}
    try:
        generators = FingerprintEngine.load().generators
    except ModelError:
        generators = []
    rows += [(f"fingerprint {g.name}", g.threshold, "its own, shipped with the models")
             for g in generators if f"fingerprint {g.name}" not in named]
    rows += [(f"fingerprint {p.name}", p.threshold, f"its own, in pack {p.path}")
             for p in load_packs(packs_root(), cfg.models.packs) if f"fingerprint {p.name}" not in named]
    width = max(len(name) for name, _, _ in rows)
    for name, value, source in rows:
        value = shipped.get(name) if value is None else value
        print(f"  {name:<{width}}  {'?' if value is None else value!s:<7}  {source}")
    return 0
