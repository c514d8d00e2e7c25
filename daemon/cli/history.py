"""`aimusicd history`: past results from the SQLite history (no running daemon needed)."""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import datetime
from pathlib import Path

from ..config import load_config, state_dir
from ..errors import UsageError
from ..services.store import Store
from .common import add_preset_argument

PLOT_LIMIT = 1_000_000
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str) -> float:
    """'90m', '12h', '7d' (ago) or an ISO date/time ('2026-11-01', '2026-11-01T12:00')."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", text.strip())
    if m:
        return time.time() - float(m.group(1)) * UNITS[m.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise UsageError(f"--since {text!r}: expected e.g. 12h, 7d or 2026-11-01") from None


def add_parser(sub) -> None:
    p = sub.add_parser("history", help="list past results")
    p.add_argument("--since", help="e.g. 12h, 7d or 2026-11-01")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--failed", action="store_true", help="only failed jobs")
    p.add_argument("--json", action="store_true", help="JSON array of the jobs")
    p.add_argument("--plot", type=Path, metavar="OUT",
                   help="also write a PNG of the verdicts per day (all jobs since --since, not just --limit)")
    add_preset_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = load_config(args.preset)
    db = state_dir(cfg) / "aimusicd.sqlite"
    if not db.exists():
        print("[]" if args.json else f"no history yet ({db})")
        return 1 if args.plot else 0
    since = parse_since(args.since) if args.since else None
    states = ("failed",) if args.failed else ("done", "failed")
    store = Store(db)
    jobs = store.history(since, args.limit, states)
    if args.plot:
        from ..reporting.plots import save_png, verdict_timeline

        every = store.history(since, PLOT_LIMIT, states)
        print(f"plot: {save_png(verdict_timeline(every), args.plot)} ({len(every)} jobs)", file=sys.stderr)
    if args.json:
        print(json.dumps([j.to_dict() for j in jobs], indent=2))
        return 0
    for j in jobs:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j.finished or j.created))
        if j.state == "failed":
            print(f"{when}  {'failed':<9} {'':>6}  {j.error}")
        else:
            engines = "cnn+demucs" if j.demucs_prob is not None and j.cnn_prob is not None else (
                "demucs" if j.demucs_prob is not None else "cnn")
            # an entry written before non-finite results were refused may hold NULL
            prob = "     -" if j.probability_ai is None else f"{j.probability_ai:6.3f}"
            print(f"{when}  {j.verdict or '-':<9} {prob}  {engines:<10}  {j.path}")
    return 0
