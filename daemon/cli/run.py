"""`aimusicd run`: the long-running daemon."""

from __future__ import annotations

from ..config import load_config
from .common import add_preset_argument, apply_threads, set_log_level


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run the daemon: watch folders, serve OSC, monitor live input")
    add_preset_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..services.daemon import Daemon

    cfg = load_config(args.preset)
    set_log_level(cfg)
    apply_threads(cfg)
    return Daemon(cfg).run_forever()
