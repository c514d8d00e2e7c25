"""Shared fixtures: real audio files on disk, tiny random models for fast engine tests, the real
HTDemucs weights (fetched by `aimusicd models fetch`), and a real daemon process.

Markers (pyproject.toml): `weights` (real HTDemucs), `jack` (JACK + PortAudio), `liblo`
(oscsend/oscdump), `tools` (an integration's own program: lua, node, pd, sclang, systemd-analyze),
`browser`, `ray`, `slow`; `make test-fast` leaves them out. Nothing is skipped silently: a test
whose tool is missing fails and says what to install (`.ci/run` installs everything).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

from support import audio, daemon_proc  # noqa: E402
from support.jack import JackServer  # noqa: E402


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` not found: install Debian's {package} (.ci/run does)")
    return path


@pytest.fixture(scope="session")
def fixtures_dir(tmp_path_factory) -> Path:
    """Real audio files in every supported format, plus broken ones."""
    return audio.write_fixture_set(tmp_path_factory.mktemp("audio"))


@pytest.fixture
def music() -> np.ndarray:
    return audio.music(6.0, 44100, seed=1)


@pytest.fixture(scope="session")
def real_weights() -> Path:
    """The real HTDemucs weights, fetched through the project's own command (idempotent)."""
    cmd = [sys.executable, "-m", "daemon", "models", "fetch"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"`aimusicd models fetch` failed:\n{proc.stderr}")
    from daemon.config import cache_dir
    from daemon.engines.demucs.weights import WeightStore

    return WeightStore(cache_dir()).require()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """A randomly initialised CNN, tiny HTDemucs, head and fusion: the whole analysis path, fast."""
    from support.models import tiny_model_set

    return tiny_model_set(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture
def daemon(tmp_path, request):
    """Factory: start `aimusicd run` on a preset written for this test; stopped (and checked to
    stop cleanly) at the end."""
    started: list[daemon_proc.DaemonProcess] = []

    def start(**overrides) -> daemon_proc.DaemonProcess:
        proc = daemon_proc.DaemonProcess(tmp_path, overrides)
        started.append(proc)
        proc.start()
        return proc

    yield start
    for proc in started:
        proc.stop()
        proc.client.close()


@pytest.fixture
def jack(tmp_path):
    """A JACK server with the dummy backend, for the tests that feed it audio (marked `jack`)."""
    server = JackServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def wav(tmp_path):
    """Write a stereo WAV of synthetic music: wav(name, seconds=..., seed=...) -> Path."""
    def write(name: str, seconds: float = 5.0, seed: int = 0, rate: int = 44100) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, audio.music(seconds, rate, seed).T, rate, subtype="PCM_16")
        return path
    return write


@pytest.fixture
def off_loopback():
    """A non-loopback address of this machine for the dashboard when one can be made (root adds a
    TEST-NET address to lo, removed afterwards), else 0.0.0.0 (reached through 127.0.0.1)."""
    from support.web import add_off_loopback_address, remove_off_loopback_address

    address = add_off_loopback_address()
    yield address or "0.0.0.0"
    if address:
        remove_off_loopback_address(address)


os.environ.setdefault("PYTHONUNBUFFERED", "1")


@pytest.fixture
def tmpfs(tmp_path):
    """mount(name, size_kb, read_only=False) -> a fresh tmpfs of that size; unmounted afterwards."""
    mounted: list[Path] = []

    def mount(name: str, size_kb: int, read_only: bool = False) -> Path:
        point = tmp_path / name
        point.mkdir()
        options = f"size={size_kb}k" + (",ro" if read_only else "")
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"needs root with CAP_SYS_ADMIN to mount a small tmpfs "
                        f"({proc.stderr.strip() or 'mount failed'})")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)
