"""UDP OSC server: sender and size checks, decoding, dispatch, replies and pushes.

Its own small socket loop rather than python-osc's server, because python-osc silently drops
malformed packets and hides the sender's port; here every bad packet gets an /aimusic/error reply
and a log line, and replies can go to either the sender's reply port or its source port.

No loops: nothing is ever sent to the server's own address, packets from it are dropped, and the
replies and pushes of this namespace (a /aimusic/result arriving here, say from a second daemon)
are never answered with an error. The receive buffer is enlarged so that a burst of requests is
not dropped by the kernel, and what the kernel still drops is counted (Linux: SO_RXQ_OVFL).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import socket
import struct
import sys
import threading
from typing import Any, Callable

from ...config.schema import OscConfig
from ...errors import AimusicError
from .protocol import (
    ERROR, NAMESPACE, NO_REQUEST, REPLIES, MalformedPacket, Message, decode, encode,
)

log = logging.getLogger("aimusicd.osc")

Address = tuple[str, int]
Handler = Callable[[Message, Address], None]

RECEIVE_BUFFER_BYTES = 4 << 20
_LINUX = sys.platform.startswith("linux")
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33 if _LINUX else None)
_SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40 if _LINUX else None)


@functools.lru_cache(maxsize=256)
def is_local_ip(host: str) -> bool:
    """This machine's own address: loopback, or one a socket can be bound to."""
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    if ip.is_loopback or ip.is_unspecified:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, 0))
        except OSError:
            return False
    return True


class RequestError(AimusicError):
    """A request that cannot be served: answered with /aimusic/error i:req s:address s:message."""

    def __init__(self, req: int, message: str):
        super().__init__(message)
        self.req = req
        self.message = message


class OscServer:
    def __init__(self, cfg: OscConfig):
        self.cfg = cfg
        self._routes: dict[str, Handler] = {}
        self._allowed = [ipaddress.ip_network(s, strict=False) for s in cfg.allowed_senders]
        self._subscribers: set[Address] = set()
        self._sub_lock = threading.Lock()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.port = cfg.port
        self.packets = 0        # packets received
        self.drops: int | None = None   # packets the kernel dropped (None: not measurable here)

    def route(self, address: str, handler: Handler) -> None:
        """Serve requests to `address` with `handler`; a RequestError it raises is answered with
        /aimusic/error."""
        self._routes[address] = handler

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.cfg.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((self.cfg.host, self.cfg.port))
        except OSError as exc:
            sock.close()
            raise AimusicError(
                f"cannot listen for OSC on {self.cfg.host}:{self.cfg.port} ({exc.strerror}); "
                "is another aimusicd running? ([osc] port)") from None
        sock.settimeout(0.25)
        buffer = self._enlarge_receive_buffer(sock)
        if _SO_RXQ_OVFL is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, _SO_RXQ_OVFL, 1)
                self.drops = 0
            except OSError:
                pass
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="osc-server", daemon=True)
        self._thread.start()
        where = {"reply_port": f"port {self.cfg.reply_port}", "source_port": "the source port",
                 "both": f"port {self.cfg.reply_port} and the source port"}[self.cfg.reply_to]
        log.info("OSC listening on %s:%d (replies to %s; receive buffer %d KiB)", self.cfg.host,
                 self.port, where, buffer // 1024)

    @staticmethod
    def _enlarge_receive_buffer(sock: socket.socket) -> int:
        """Ask for RECEIVE_BUFFER_BYTES (past the system's cap where allowed); returns what the
        kernel gave (Linux reports twice the usable size)."""
        for option in (_SO_RCVBUFFORCE, socket.SO_RCVBUF):
            if option is None:
                continue
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, RECEIVE_BUFFER_BYTES)
                break
            except OSError:
                continue
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        if self._sock:
            self._sock.close()

    # -- sending ---------------------------------------------------------------------------------
    def reply_targets(self, sender: Address) -> tuple[Address, ...]:
        """Where replies to `sender` go, per [osc] reply_to (each target once)."""
        port_target = (sender[0], self.cfg.reply_port)
        if self.cfg.reply_to == "reply_port" or sender == port_target:
            return (port_target,)
        if self.cfg.reply_to == "source_port":
            return (sender,)
        return (port_target, sender)

    def is_own_address(self, target: Address) -> bool:
        return target[1] == self.port and is_local_ip(target[0])

    def send(self, target: Address, address: str, *args: Any) -> None:
        if self._sock is None:
            return
        if self.is_own_address(target):
            log.debug("not sending %s to %s:%d: that is this server itself", address, *target)
            return
        try:
            packet = encode(address, *args)
        except Exception:  # noqa: BLE001 - a value OSC cannot carry is a bug here, never fatal
            log.exception("cannot encode %s %r", address, args)
            return
        try:
            self._sock.sendto(packet, target)
        except OSError as exc:  # an unreachable client must not stop the server
            log.debug("cannot send %s to %s:%d: %s", address, target[0], target[1], exc)

    def reply(self, sender: Address, address: str, *args: Any) -> None:
        for target in self.reply_targets(sender):
            self.send(target, address, *args)

    def error(self, sender: Address, req: int, address: str, message: str) -> None:
        self.reply(sender, ERROR, req, address, message)

    def push(self, address: str, *args: Any, senders: tuple[Address, ...] = ()) -> None:
        """To every subscriber and to where replies to `senders` go (e.g. the requester), each
        target once."""
        with self._sub_lock:
            targets = set(self._subscribers)
        for sender in senders:
            targets.update(self.reply_targets(sender))
        for target in targets:
            self.send(target, address, *args)

    # -- subscribers -----------------------------------------------------------------------------
    def subscribe(self, target: Address) -> None:
        with self._sub_lock:
            self._subscribers.add(target)

    def unsubscribe(self, target: Address) -> None:
        with self._sub_lock:
            self._subscribers.discard(target)

    @property
    def subscribers(self) -> list[Address]:
        with self._sub_lock:
            return sorted(self._subscribers)

    # -- receiving -------------------------------------------------------------------------------
    def allowed_sender(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return False
        return any(ip in net for net in self._allowed)

    def _serve(self) -> None:
        assert self._sock is not None
        ancillary = socket.CMSG_SPACE(4) if self.drops is not None else 0
        while not self._stop.is_set():
            try:
                data, cmsgs, _flags, sender = self._sock.recvmsg(65536, ancillary)
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            self.packets += 1
            for level, kind, value in cmsgs:
                if level == socket.SOL_SOCKET and kind == _SO_RXQ_OVFL and len(value) >= 4:
                    self.drops = struct.unpack("I", value[:4])[0]   # the kernel's running total
            try:
                self.handle_packet(data, (sender[0], sender[1]))
            except Exception:  # noqa: BLE001 - the server thread must outlive any one packet
                log.exception("OSC packet from %s:%d could not be handled", sender[0], sender[1])

    def handle_packet(self, data: bytes, sender: Address) -> None:
        if not self.allowed_sender(sender[0]):
            log.warning("ignored OSC packet from %s:%d (not in [osc] allowed_senders)", *sender)
            return
        if self.is_own_address(sender):
            log.warning("ignored OSC packet from this server's own address %s:%d", *sender)
            return
        if len(data) > self.cfg.max_packet_bytes:
            msg = f"packet too large ({len(data)} bytes; the limit is {self.cfg.max_packet_bytes})"
            log.warning("OSC from %s:%d: %s", *sender, msg)
            self.error(sender, NO_REQUEST, "", msg)
            return
        try:
            messages = decode(data)
        except MalformedPacket as exc:
            log.warning("OSC from %s:%d: malformed packet (%s)", *sender, exc)
            self.error(sender, NO_REQUEST, "", f"malformed OSC packet ({exc})")
            return
        for message in messages:
            self._dispatch(message, sender)

    def _dispatch(self, message: Message, sender: Address) -> None:
        handler = self._routes.get(message.address)
        if handler is None and message.address in REPLIES:
            # Someone's reply or push (another daemon's?): answering it could start a loop.
            log.debug("OSC from %s:%d: ignored %s (a reply, not a request)", *sender, message.address)
            return
        if handler is None:
            known = "" if message.address.startswith(NAMESPACE) else f" (this server serves {NAMESPACE}/...)"
            log.warning("OSC from %s:%d: unknown address %s", *sender, message.address)
            self.error(sender, NO_REQUEST, message.address, f"unknown address {message.address}{known}")
            return
        try:
            handler(message, sender)
        except RequestError as exc:
            log.warning("OSC %s from %s:%d: %s", message.address, *sender, exc.message)
            self.error(sender, exc.req, message.address, exc.message)
        except Exception as exc:  # noqa: BLE001 - one bad request must not stop the server
            log.exception("OSC %s from %s:%d failed", message.address, *sender)
            self.error(sender, NO_REQUEST, message.address, f"internal error: {exc}")
