"""Content hashes for audio files, reports and model weights."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .files import open_regular


def file_digest(path: str | Path, algorithm: str = "sha256") -> bytes:
    """Of a regular file only: a FIFO or a device (/dev/zero) would never end."""
    with open_regular(path) as fh:
        return hashlib.file_digest(fh, algorithm).digest()


def sha256_file(path: str | Path) -> str:
    return file_digest(path).hex()
