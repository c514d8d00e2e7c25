"""`aimusicd config check|list`: validate presets and show the merged configuration."""

from __future__ import annotations

from ..config import available_presets, load_config, to_toml


def add_parser(sub) -> None:
    p = sub.add_parser("config", help="validate presets and print the merged configuration")
    csub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = csub.add_parser("check", help="validate a preset and print the merged result")
    check.add_argument("preset", nargs="?", metavar="NAME|PATH", help="default: packaged defaults only")
    csub.add_parser("list", help="list the presets that can be named, and where the thresholds come from")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.config_command == "list":
        for name, path in available_presets().items():
            print(f"{name:<20} {path}")
        print(f"thresholds: {load_config().thresholds_source}")
        return 0
    cfg = load_config(args.preset)
    print(to_toml(cfg), end="")
    return 0
