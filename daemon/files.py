"""Which files count as audio to analyse: the configured patterns, minus the ignore list;
opening a file only if it is a regular one; and replacing a file whole."""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import BinaryIO


class NotRegularFile(OSError):
    """The path names a FIFO, a device, a socket or a folder."""


def open_regular(path: str | Path) -> BinaryIO:
    """Open for reading only if it is a regular file, checked on the opened file itself (no race
    with a swap); O_NONBLOCK so that opening a FIFO cannot wait for a writer."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegularFile(f"{path}: not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


@contextlib.contextmanager
def replaced(dest: Path) -> Iterator[Path]:
    """A temporary path beside `dest` to write to, renamed over `dest` when the block ends, removed
    if it fails: a reader sees the old file or the new one, never half of one."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{threading.get_native_id()}.tmp")
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):     # a read-only folder refuses even this
            tmp.unlink(missing_ok=True)
        raise


def is_candidate(path: Path, patterns: list[str], ignore: list[str]) -> bool:
    name = path.name.lower()
    if any(fnmatch(name, pat.lower()) for pat in ignore):
        return False
    return any(fnmatch(name, pat.lower()) for pat in patterns)


def audio_files_in(folder: Path, patterns: list[str], ignore: list[str], recursive: bool) -> list[Path]:
    """Candidate files under `folder`, sorted; ignored folders (e.g. hidden ones) are not entered."""
    found: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink() and entry.is_dir():
            continue   # a link to a folder can lead out of the watched tree, or round in a loop
        if entry.is_dir():
            if recursive and not any(fnmatch(entry.name.lower(), pat.lower()) for pat in ignore):
                found += audio_files_in(entry, patterns, ignore, recursive)
        elif entry.is_file() and is_candidate(entry, patterns, ignore):
            found.append(entry)
    return found
