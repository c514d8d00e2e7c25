"""OSC client used by `aimusicd send` and `aimusicd status`."""

from __future__ import annotations

import socket
import time
from typing import Any, Callable, Iterable

from ...config import Config
from ...errors import AimusicError
from . import protocol as osc

# Which reply answers each request.
ANSWERS = {
    osc.PING: (osc.PONG,), osc.STATUS: (osc.STATUS_REPLY,), osc.ANALYZE: (osc.RESULT,),
    osc.LIVE_START: (osc.LIVE_STATE,), osc.LIVE_STOP: (osc.LIVE_STATE,),
    osc.LIVE_STATS: (osc.LIVE_STATS_REPLY,), osc.SUBSCRIBE: (osc.SUBSCRIBED,),
    osc.UNSUBSCRIBE: (osc.UNSUBSCRIBED,),
}


ACK_TIMEOUT_S = 5.0   # a running daemon acknowledges any request at once


class OscClient:
    """Listens where the daemon replies: this socket's own port (the daemon replies to source
    ports unless its preset says reply_to = "reply_port"), or the reply port."""

    def __init__(self, cfg: Config, host: str | None = None, port: int | None = None,
                 listen_port: int | None = None):
        self.host = host or ("127.0.0.1" if cfg.osc.host in ("0.0.0.0", "::", "") else cfg.osc.host)
        self.port = port or cfg.osc.port
        listen = listen_port if listen_port is not None else (
            cfg.osc.reply_port if cfg.osc.reply_to == "reply_port" else 0)
        self.sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET,
                                  socket.SOCK_DGRAM)
        try:
            self.sock.bind(("", listen))
        except OSError as exc:
            self.sock.close()
            raise AimusicError(
                f"cannot listen for replies on port {listen} ({exc.strerror}); another program may "
                "use it: pass --listen-port, or set [osc] reply_to = \"source_port\"") from None

    def __enter__(self) -> "OscClient":
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()

    def request(self, address: str, args: Iterable[Any], timeout: float,
                answers: tuple[str, ...] | None = None, req: Any = None,
                on_message: Callable[[osc.Message], None] | None = None) -> osc.Message | None:
        """Send, then collect replies (those echoing `req`, if given) until one of `answers` (or
        an /aimusic/error) arrives; returns it, or None on timeout. Gives up after ACK_TIMEOUT_S
        if nothing at all comes back (no daemon), however long the answer itself may take."""
        answers = ANSWERS.get(address, ()) if answers is None else answers
        self.sock.sendto(osc.encode(address, *args), (self.host, self.port))
        started = time.monotonic()
        deadline = started + timeout
        heard = False
        while (remaining := deadline - time.monotonic()) > 0:
            if not heard:
                remaining = min(remaining, started + ACK_TIMEOUT_S - time.monotonic())
                if remaining <= 0:
                    break
            self.sock.settimeout(remaining)
            try:
                data, _ = self.sock.recvfrom(65536)
                messages = osc.decode(data)
            except socket.timeout:
                break
            except osc.MalformedPacket:
                continue
            heard = True
            for msg in messages:
                if req is not None and not (msg.args and msg.args[0] == req):
                    continue
                if on_message:
                    on_message(msg)
                if msg.address == osc.ERROR or not answers or msg.address in answers:
                    return msg
        return None
