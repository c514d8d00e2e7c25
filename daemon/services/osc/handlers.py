"""Handlers for each /aimusic address (one method each), each served by the few services it needs:
the job runner, the store, live input and the models' state."""

from __future__ import annotations

import ipaddress
import logging
import time
from pathlib import Path
from typing import Any, Callable

from ... import __version__
from ...config import MODES
from ...errors import AimusicError
from ..jobs import JobRunner
from ..live_control import LiveController
from ..paths import allowed_file
from ..store import Store
from .protocol import (
    ANALYZE, INT32, LIVE_START, LIVE_STATE, LIVE_STATS, LIVE_STATS_REPLY, LIVE_STOP, NO_REQUEST, PING,
    PONG, QUEUED, STATUS, STATUS_REPLY, SUBSCRIBE, SUBSCRIBED, UNSUBSCRIBE, UNSUBSCRIBED, Message,
)
from .server import Address, OscServer, RequestError

log = logging.getLogger("aimusicd.osc")


def _int(value: Any) -> int | None:
    """Pd and Max often send numbers as floats: accept whole floats where an int is expected."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


class Handlers:
    """`loaded_models`: the names of the models in memory; `allowed_roots`: where requested files
    may lie; `default_mode`: for an analyze request that names none."""

    def __init__(self, server: OscServer, runner: JobRunner, store: Store, live: LiveController,
                 loaded_models: Callable[[], list[str]], allowed_roots: list[Path], default_mode: str):
        self.server = server
        self.runner = runner
        self.store = store
        self.live = live
        self.loaded_models = loaded_models
        self.allowed_roots = allowed_roots
        self.default_mode = default_mode
        for address, handler in {
            PING: self.ping, ANALYZE: self.analyze, STATUS: self.status,
            LIVE_START: self.live_start, LIVE_STOP: self.live_stop, LIVE_STATS: self.live_stats,
            SUBSCRIBE: self.subscribe, UNSUBSCRIBE: self.unsubscribe,
        }.items():
            server.route(address, handler)

    def ping(self, msg: Message, sender: Address) -> None:
        self.server.reply(sender, PONG, "ok", __version__)

    def analyze(self, msg: Message, sender: Address) -> None:
        args = msg.args
        req = NO_REQUEST
        if len(args) >= 2:
            req = _int(args[1])
            if req is None:
                raise RequestError(NO_REQUEST, f"request id must be an int, got {args[1]!r}")
            if not INT32[0] <= req <= INT32[1]:   # replies echo it as an OSC int
                raise RequestError(NO_REQUEST, f"request id {req} does not fit a 32-bit OSC int "
                                               f"({INT32[0]} to {INT32[1]})")
        if not args or not isinstance(args[0], str) or not args[0]:
            raise RequestError(req, "usage: /aimusic/analyze s:path [i:request_id] [s:mode]")
        mode = args[2] if len(args) >= 3 else self.default_mode
        if mode not in MODES:
            raise RequestError(req, f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        path = self._allowed_path(args[0], req)
        try:
            st = path.stat()
            job = self.runner.submit(
                str(path), mode, "osc", req_id=None if req == NO_REQUEST else req,
                request_path=args[0], sender=sender, size=st.st_size, mtime=st.st_mtime,
            )
        except AimusicError as exc:
            raise RequestError(req, str(exc)) from None
        self.server.reply(sender, QUEUED, job.request_id, job.reply_path)

    def _allowed_path(self, raw: str, req: int) -> Path:
        try:
            return allowed_file(raw, self.allowed_roots)
        except AimusicError as exc:
            raise RequestError(req, str(exc)) from None

    def status(self, msg: Message, sender: Address) -> None:
        try:
            counts = self.store.counts()
        except AimusicError as exc:
            raise RequestError(NO_REQUEST, str(exc)) from None
        workers = self.runner.health()
        per_worker = []
        for stage in ("cnn", "demucs"):
            h = workers[stage]
            last = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(h.last_done)) if h.last_done else ""
            per_worker += [h.state, last]
        self.server.reply(
            sender, STATUS_REPLY, counts["queued"], counts["running"], counts["done"],
            int(self.live.active), counts["failed"], ",".join(self.loaded_models()) or "none",
            *per_worker, self.server.packets, -1 if self.server.drops is None else self.server.drops,
        )

    def live_start(self, msg: Message, sender: Address) -> None:
        # Only a string names a device ("3" for an index): buttons that send their value (1.0)
        # must not silently pick device number 1.
        device = msg.args[0] if msg.args and isinstance(msg.args[0], str) else ""
        try:
            self.live.start(device or None, requester=sender)
        except AimusicError as exc:
            raise RequestError(NO_REQUEST, str(exc)) from None
        self.server.reply(sender, LIVE_STATE, 1)

    def live_stop(self, msg: Message, sender: Address) -> None:
        self.live.stop()
        self.server.reply(sender, LIVE_STATE, 0)

    def live_stats(self, msg: Message, sender: Address) -> None:
        s = self.live.stats()
        if s is None:
            self.server.reply(sender, LIVE_STATS_REPLY, 0, 0, -1.0, -1.0, 0)
            return
        self.server.reply(sender, LIVE_STATS_REPLY, int(self.live.active), s.scores, s.latency_p50_ms,
                          s.latency_p99_ms, s.overflows)

    def _subscriber(self, msg: Message, sender: Address) -> Address:
        """The explicit host and port, or else where replies to this sender go (its reply port).
        The host must be an IP address (no name to resolve) inside [osc] allowed_senders, and the
        target not this server itself (a subscription to itself would loop)."""
        if not msg.args:
            target = self.server.reply_targets(sender)[0]
        else:
            if len(msg.args) != 2 or not isinstance(msg.args[0], str) or _int(msg.args[1]) is None:
                raise RequestError(NO_REQUEST, f"usage: {msg.address} [s:host i:port]")
            host, port = msg.args[0], _int(msg.args[1])
            if not 0 < port < 65536:
                raise RequestError(NO_REQUEST, f"port {port} out of range")
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise RequestError(NO_REQUEST, f"host {host!r} is not an IP address") from None
            if not self.server.allowed_sender(host):
                raise RequestError(NO_REQUEST, f"host {host} is outside [osc] allowed_senders")
            target = (host, port)
        if msg.address == SUBSCRIBE and self.server.is_own_address(target):
            raise RequestError(NO_REQUEST, f"{target[0]}:{target[1]} is this daemon's own address")
        return target

    def subscribe(self, msg: Message, sender: Address) -> None:
        target = self._subscriber(msg, sender)
        self.server.subscribe(target)
        log.info("subscriber added: %s:%d", *target)
        self.server.reply(sender, SUBSCRIBED, target[0], target[1])

    def unsubscribe(self, msg: Message, sender: Address) -> None:
        target = self._subscriber(msg, sender)
        self.server.unsubscribe(target)
        self.server.reply(sender, UNSUBSCRIBED, target[0], target[1])
