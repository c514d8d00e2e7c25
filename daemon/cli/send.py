"""`aimusicd send ADDRESS [ARGS...]`: a small OSC client for scripts and DAW hooks.

It sends one message and prints the replies until the one that answers it arrives:
/aimusic/pong for /aimusic/ping, /aimusic/result (or /aimusic/error) for /aimusic/analyze, ...
"""

from __future__ import annotations

import json
import random
import sys

from ..config import load_config
from ..errors import UsageError
from ..services.osc import protocol as osc
from ..services.osc.client import OscClient
from .common import add_preset_argument

EXIT_TIMEOUT = 3


def add_parser(sub) -> None:
    p = sub.add_parser("send", help="send one OSC message to the daemon and print the replies")
    p.add_argument("address", help="e.g. /aimusic/ping or /aimusic/analyze")
    p.add_argument("args", nargs="*", help="arguments; typed as int, float or string, or forced "
                   "with a prefix: i:3 f:0.5 s:42")
    p.add_argument("--host", help="daemon host (default: [osc] host)")
    p.add_argument("--port", type=int, help="daemon port (default: [osc] port)")
    p.add_argument("--listen-port", type=int,
                   help="where to wait for replies (default: any free port; the [osc] reply_port "
                        "when the daemon replies only there)")
    p.add_argument("--timeout", type=float, help="seconds to wait (default 5; 900 for analyze)")
    p.add_argument("--no-wait", action="store_true", help="for analyze: stop at /aimusic/queued")
    p.add_argument("--json", action="store_true", help="print each reply as a JSON object")
    add_preset_argument(p)
    p.set_defaults(func=run)


def typed(arg: str):
    """'i:3' -> 3, 'f:1' -> 1.0, 's:42' -> '42'; otherwise int, then float, then string."""
    kind, sep, rest = arg.partition(":")
    if sep and kind in ("i", "f", "s"):
        try:
            return {"i": int, "f": float, "s": str}[kind](rest)
        except ValueError:
            raise UsageError(f"argument {arg!r}: not a valid {kind}") from None
    for cast in (int, float):
        try:
            return cast(arg)
        except ValueError:
            pass
    return arg


def format_message(msg: osc.Message) -> str:
    parts = [msg.address]
    for a in msg.args:
        parts.append(f"{a:.6g}" if isinstance(a, float) else json.dumps(a) if isinstance(a, str) else str(a))
    return " ".join(parts)


def run(args) -> int:
    cfg = load_config(args.preset)
    values = [typed(a) for a in args.args]
    req = None
    if args.address == osc.ANALYZE:
        if not values:
            raise UsageError("usage: aimusicd send /aimusic/analyze PATH [REQUEST_ID] [MODE]")
        if len(values) < 2:
            values.append(random.randint(1, 2**30))   # a request id to recognise our result by
        req = values[1]
    timeout = args.timeout or (900.0 if args.address == osc.ANALYZE and not args.no_wait else 5.0)

    def show(msg: osc.Message) -> None:
        text = json.dumps({"address": msg.address, "args": list(msg.args)}) if args.json else format_message(msg)
        print(text, flush=True)

    with OscClient(cfg, args.host, args.port, args.listen_port) as client:
        answer = client.request(args.address, values, timeout, req=req, on_message=show,
                                answers=(osc.QUEUED,) if args.no_wait else None)
    if answer is None:
        print(f"aimusicd: no answer from {client.host}:{client.port} "
              "(is the daemon running? `aimusicd run`)", file=sys.stderr)
        return EXIT_TIMEOUT
    return 1 if answer.address == osc.ERROR else 0
