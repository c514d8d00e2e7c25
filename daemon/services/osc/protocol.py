"""OSC encoding and decoding (python-osc does the wire format), and the namespace's addresses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from ...errors import AimusicError

NAMESPACE = "/aimusic"
PING, PONG = "/aimusic/ping", "/aimusic/pong"
ANALYZE, QUEUED, PRELIMINARY, RESULT = (
    "/aimusic/analyze", "/aimusic/queued", "/aimusic/preliminary", "/aimusic/result")
STATUS, STATUS_REPLY = "/aimusic/status", "/aimusic/status.reply"
LIVE_START, LIVE_STOP, LIVE_STATE = "/aimusic/live/start", "/aimusic/live/stop", "/aimusic/live/state"
LIVE_SCORE, LIVE_ALERT = "/aimusic/live/score", "/aimusic/live/alert"
LIVE_STATS, LIVE_STATS_REPLY = "/aimusic/live/stats", "/aimusic/live/stats.reply"
SUBSCRIBE, UNSUBSCRIBE = "/aimusic/subscribe", "/aimusic/unsubscribe"
SUBSCRIBED, UNSUBSCRIBED = "/aimusic/subscribed", "/aimusic/unsubscribed"
ERROR = "/aimusic/error"
REPLIES = frozenset({PONG, QUEUED, PRELIMINARY, RESULT, STATUS_REPLY, LIVE_STATE, LIVE_SCORE,
                     LIVE_ALERT, LIVE_STATS_REPLY, SUBSCRIBED, UNSUBSCRIBED, ERROR})
INT32 = (-2**31, 2**31 - 1)   # an OSC int ("i") is 32 bits
NO_REQUEST = -1   # request id in errors that belong to no request (e.g. a malformed packet)


class MalformedPacket(AimusicError):
    """Bytes that are not an OSC packet; `str(err)` says what the parser found wrong."""


@dataclass(frozen=True)
class Message:
    address: str
    args: tuple[Any, ...]


def encode(address: str, *args: Any) -> bytes:
    """Ints (and bools, as 0/1 for Max and Pd) -> i, floats -> f, everything else -> s."""
    builder = OscMessageBuilder(address=address)
    for arg in args:
        if isinstance(arg, bool):
            builder.add_arg(int(arg), "i")
        elif isinstance(arg, int):
            builder.add_arg(arg, "i")
        elif isinstance(arg, float):
            builder.add_arg(arg, "f")
        else:
            builder.add_arg(str(arg), "s")
    return builder.build().dgram


def decode(data: bytes) -> list[Message]:
    """All messages of a packet (bundles flattened, in time-tag order)."""
    try:
        packet = OscPacket(data)
        return [Message(m.message.address, tuple(m.message.params)) for m in packet.messages]
    except Exception as exc:  # noqa: BLE001 - the parser raises many types on garbage input
        raise MalformedPacket(str(exc) or type(exc).__name__) from None
