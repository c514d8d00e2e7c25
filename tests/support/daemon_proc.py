"""A real `aimusicd run` process on a preset of its own (temp folders, free ports), and an OSC
client that listens where the daemon replies."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from daemon.config.load import tables_to_toml
from daemon.services.osc import protocol as osc

READY_LINE = "aimusicd ready"


def free_udp_port() -> int:
    return free_udp_ports(1)[0]


def free_udp_ports(n: int) -> list[int]:
    """n different free ports (held open together while they are chosen)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class OscTestClient:
    """Listens on one UDP port and collects every message that arrives."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self.received: list[osc.Message] = []
        self.arrivals: list[float] = []     # time.time() at which each message arrived

    def close(self) -> None:
        self.sock.close()

    def send(self, target: tuple[str, int], address: str, *args: Any) -> None:
        self.sock.sendto(osc.encode(address, *args), target)

    def send_raw(self, target: tuple[str, int], data: bytes) -> None:
        self.sock.sendto(data, target)

    def pump(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(65536)
            messages = osc.decode(data)
            self.received.extend(messages)
            self.arrivals.extend([time.time()] * len(messages))
        except socket.timeout:
            pass

    def wait_for(self, address: str, timeout: float = 10.0,
                 where: Callable[[osc.Message], bool] = lambda m: True) -> osc.Message:
        deadline = time.monotonic() + timeout
        while True:
            for m in self.received:
                if m.address == address and where(m):
                    return m
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                got = ", ".join(f"{m.address} {m.args}" for m in self.received[-8:])
                raise AssertionError(f"no {address} within {timeout:g} s (last received: {got})")
            self.pump(min(remaining, 0.2))

    def arrival(self, message: osc.Message) -> float:
        return self.arrivals[self.received.index(message)]

    def all(self, address: str) -> list[osc.Message]:
        return [m for m in self.received if m.address == address]


class DaemonProcess:
    def __init__(self, root: Path, overrides: dict[str, dict[str, Any]]):
        self.root = root
        self.inbox = root / "inbox"
        self.state = root / "state"
        self.port, self.reply_port = free_udp_ports(2)
        config: dict[str, dict[str, Any]] = {
            "daemon": {"state_dir": str(self.state), "log_level": "debug"},
            "watch": {"folders": [str(self.inbox)], "mode": "cnn", "settle_s": 1.0},
            "osc": {"port": self.port, "reply_port": self.reply_port, "allowed_roots": [str(root)]},
            "engines": {"mode": "cnn", "demucs_excerpts": 1},
            "models": {},
        }
        for section, values in overrides.items():
            config.setdefault(section, {}).update(values)
        self.config = config
        self.preset = root / "test-preset.toml"
        self.log_path = root / "daemon.log"
        self.proc: subprocess.Popen | None = None
        self.client = OscTestClient(self.reply_port)
        self.target = ("127.0.0.1", self.port)
        self._log_offset = 0

    def write_preset(self) -> None:
        self.preset.write_text(tables_to_toml(self.config))

    def start(self, timeout: float = 90.0) -> None:
        self.write_preset()
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--preset", str(self.preset)],
            stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )
        wait_until(lambda: READY_LINE in self.log() or self.proc.poll() is not None, timeout,
                   "the daemon to start")
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[self._log_offset:] if self.log_path.exists() else ""

    def send(self, address: str, *args: Any) -> None:
        self.client.send(self.target, address, *args)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait: returns the exit code (the test checks it is 0)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"daemon did not stop within {timeout:g} s:\n{self.log()[-3000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def jobs(self) -> list[dict]:
        db = self.state / "aimusicd.sqlite"
        if not db.exists():
            return []
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute("SELECT * FROM jobs ORDER BY id")]
        finally:
            con.close()

    def wait_jobs(self, predicate: Callable[[list[dict]], bool], timeout: float, what: str) -> list[dict]:
        return wait_until(lambda: (lambda j: j if predicate(j) else None)(self.jobs()), timeout, what, 0.2)
