"""A real local Ray cluster for the batch tests: `ray start --head` on 127.0.0.1 with 2 CPUs (two
worker processes), its own temp folder and port, in a session of its own so that stopping it ends
exactly the processes it started (SIGTERM to the session, then SIGKILL)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_env() -> dict[str, str]:
    """For the cluster and its drivers: loopback-only, so no token; the test support modules
    importable in the workers (the tiny models are pickled by reference to them)."""
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    return env


class RayCluster:
    def __init__(self, cpus: int = 2):
        # Ray's socket paths must stay short: a folder of its own under /tmp, not pytest's tmp_path
        self.temp_dir = Path(tempfile.mkdtemp(prefix="aimr-", dir="/tmp"))
        self.port = _free_tcp_port()
        self.address = f"127.0.0.1:{self.port}"
        self.cpus = cpus
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> None:
        ray = Path(sys.executable).with_name("ray")
        self.log = open(self.temp_dir / "ray-start.log", "w")
        self.proc = subprocess.Popen(
            [str(ray), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(self.port),
             "--num-cpus", str(self.cpus), "--include-dashboard=false", "--disable-usage-stats",
             "--temp-dir", str(self.temp_dir), "--block"],
            stdout=self.log, stderr=subprocess.STDOUT, env=cluster_env(), start_new_session=True)
        deadline = time.monotonic() + timeout
        while "Ray runtime started" not in (self.temp_dir / "ray-start.log").read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.temp_dir / "ray-start.log").read_text()
                self.stop()
                raise RuntimeError(f"ray start failed:\n{log[-3000:]}")
            time.sleep(0.5)

    def worker_pids(self, name: str) -> list[int]:
        """Live processes of this cluster whose title (Ray sets `ray::<actor class>...`) holds name."""
        return [pid for pid, title in _session_processes(self.proc.pid).items()
                if title.startswith("ray::") and name in title]

    def stop(self) -> None:
        if self.proc is not None:
            for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + wait
                while _session_processes(self.proc.pid) and time.monotonic() < deadline:
                    time.sleep(0.2)
                if not _session_processes(self.proc.pid):
                    break
            self.proc.wait(timeout=5)
            self.log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _session_processes(sid: int) -> dict[int, str]:
    """pid -> command line of the live (not zombie) processes of session `sid`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(") ", 1)[1][0]
            if state != "Z" and os.getsid(int(entry.name)) == sid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
    return found
