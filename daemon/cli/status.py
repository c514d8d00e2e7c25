"""`aimusicd status`: ask the running daemon; when none answers, say so and show the history's counts."""

from __future__ import annotations

from ..config import load_config, state_dir
from ..services.osc import protocol as osc
from ..services.osc.client import OscClient
from ..services.store import Store
from .common import add_preset_argument

EXIT_NOT_RUNNING = 3


def add_parser(sub) -> None:
    p = sub.add_parser("status", help="queue, running, done, live state and loaded models")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the daemon")
    p.add_argument("--listen-port", type=int, help="where to wait for replies (see `send`)")
    add_preset_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = load_config(args.preset)
    with OscClient(cfg, listen_port=args.listen_port) as client:
        pong = client.request(osc.PING, (), args.timeout)
        status = client.request(osc.STATUS, (), args.timeout) if pong else None
    if pong is None or status is None or status.address != osc.STATUS_REPLY:
        print(f"daemon    not answering at {client.host}:{client.port}")
        db = state_dir(cfg) / "aimusicd.sqlite"
        if db.exists():
            counts = Store(db).counts()
            print("history   " + ", ".join(f"{k} {v}" for k, v in counts.items()) + f"  ({db})")
        return EXIT_NOT_RUNNING
    queued, running, done, live_on, failed, models = status.args[:6]
    print(f"daemon    running (aimusicd {pong.args[1]} at {client.host}:{client.port})")
    print(f"queued    {queued}\nrunning   {running}\ndone      {done}\nfailed    {failed}")
    print(f"live      {'on' if live_on else 'off'}\nmodels    {models}")
    if len(status.args) >= 12:   # daemons of this version and later
        cnn_state, cnn_last, demucs_state, demucs_last, packets, drops = status.args[6:12]
        for name, state, last in (("cnn", cnn_state, cnn_last), ("demucs", demucs_state, demucs_last)):
            print(f"{name:<10}{state}; last job {last or 'none yet'}")
        print(f"osc       {packets} packets received, "
              + ("drops not measurable here" if drops < 0 else f"{drops} dropped by the kernel"))
    return 0
