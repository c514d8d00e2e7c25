"""A private JACK server on the dummy backend (no sound hardware needed) and jack-play feeding a
client's input ports: real audio through PortAudio, as in a studio."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

RATE = 48000
PERIOD = 1024


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` not found: install Debian's {package} (.ci/run does)")
    return path


class JackServer:
    def __init__(self, log_dir: Path):
        self.name = f"aimusicd-test-{os.getpid()}-{time.monotonic_ns() % 100000}"
        self.log = log_dir / "jackd.log"
        self.proc: subprocess.Popen | None = None
        self.env = dict(os.environ, JACK_DEFAULT_SERVER=self.name, JACK_NO_START_SERVER="1",
                        JACK_NO_AUDIO_RESERVATION="1")
        self.jackd = _tool("jackd", "jackd2")
        self.jack_wait = _tool("jack_wait", "jackd2")
        self.jack_lsp = _tool("jack_lsp", "jackd2")
        self.jack_alias = _tool("jack_alias", "jackd2")
        self.jack_play = _tool("jack-play", "jack-tools")

    def start(self) -> None:
        # "-r" before -d: no realtime scheduling; after "-d dummy": the sample rate. "-p 64" caps
        # the port count, which keeps its shared memory small.
        self.proc = subprocess.Popen(
            [self.jackd, "-n", self.name, "-r", "-p", "64", "-d", "dummy", "-r", str(RATE),
             "-p", str(PERIOD), "-C", "2", "-P", "2"],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.env, start_new_session=True)
        ok = subprocess.run([self.jack_wait, "-s", self.name, "-w", "-t", "10"], env=self.env,
                            capture_output=True).returncode == 0
        if not ok or self.proc.poll() is not None:
            self.stop()
            raise AssertionError(f"jackd did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def ports(self) -> list[str]:
        return subprocess.run([self.jack_lsp], env=self.env, capture_output=True, text=True).stdout.split()

    def wait_for_port(self, port: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port in self.ports():
                return
            time.sleep(0.1)
        raise AssertionError(f"JACK port {port} never appeared (ports: {self.ports()})")

    def play(self, wav: Path, into: str = "PortAudio") -> subprocess.Popen:
        """Play a WAV into `into`'s input ports from the first sample: 1-based aliases let
        jack-play connect itself as it starts (jack_connect afterwards would drop audio)."""
        for i in (0, 1):
            subprocess.run([self.jack_alias, f"{into}:in_{i}", f"sut:in_{i + 1}"], env=self.env,
                           capture_output=True)
        env = dict(self.env, JACK_PLAY_CONNECT_TO="sut:in_%d")
        # -c 3: zero-order hold, so a same-rate file passes unchanged (the default sinc low-passes)
        return subprocess.Popen([self.jack_play, "-c", "3", "-u", "-n", "player", str(wav)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
