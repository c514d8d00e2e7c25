"""`aimusicd run`: the long-running daemon."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

from ..config import load_config
from .common import add_preset_argument, apply_threads, set_log_level


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run the daemon: watch folders, serve OSC, monitor live input")
    add_preset_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..services.daemon import Daemon

    _one_malloc_arena()
    cfg = load_config(args.preset)
    set_log_level(cfg)
    apply_threads(cfg)
    return Daemon(cfg).run_forever()


M_ARENA_MAX = -8


def _one_malloc_arena() -> None:
    """glibc gives each allocating thread an arena of its own, and the workers' large buffers
    freed into several arenas keep the daemon's pages: with one arena a full job with both models
    peaks at about 1.4 GB RSS instead of 1.55 (benchmarks/scan.py). First thing, before any
    thread allocates: glibc fixes the limit when it makes its second arena."""
    if sys.platform.startswith("linux") and (libc := ctypes.util.find_library("c")):
        ctypes.CDLL(libc).mallopt(M_ARENA_MAX, 1)
