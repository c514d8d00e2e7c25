"""Which files the daemon may read: the one rule for paths from OSC and from watched folders.

A path is resolved (symlinks included) before anything else, must lie inside one of the allowed
roots, and must be a regular file: a FIFO would block its reader forever and a device such as
/dev/zero never ends, so neither is ever opened.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import PathNotAllowedError


def allowed_file(raw: str | Path, roots: list[Path]) -> Path:
    """The resolved regular file `raw` names, inside `roots`; else PathNotAllowedError (one line)."""
    if not os.path.isabs(raw):
        raise PathNotAllowedError(f"{raw}: the path must be absolute")
    try:
        path = Path(raw).resolve(strict=True)
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise PathNotAllowedError(f"{raw}: file not found") from None
    except (OSError, RuntimeError) as exc:
        raise PathNotAllowedError(f"{raw}: cannot resolve ({exc})") from None
    if not any(path.is_relative_to(root) for root in roots):
        raise PathNotAllowedError(
            f"{raw}: outside the allowed roots ({', '.join(map(str, roots))})")
    if not stat.S_ISREG(st.st_mode):
        raise PathNotAllowedError(f"{raw}: not a regular file ({file_kind(st.st_mode)})")
    return path


def file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"
