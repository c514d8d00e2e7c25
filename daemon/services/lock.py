"""One daemon per state folder: an exclusive lock on `aimusicd.lock` in it, held while it runs."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import BinaryIO

from ..errors import AimusicError


def hold_state_lock(state_dir: Path) -> BinaryIO:
    """Create the state folder and lock it (the lock lasts as long as the returned file stays
    open); any failure is one line naming the folder."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fh = open(state_dir / "aimusicd.lock", "wb", buffering=0)   # close cannot re-fail
    except OSError as exc:
        raise AimusicError(f"state folder {state_dir}: cannot write there ({exc.strerror}); "
                           "check [daemon] state_dir") from None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise AimusicError(f"another aimusicd is already running with state folder {state_dir}") from None
    try:
        fh.write(str(os.getpid()).encode())
    except OSError as exc:
        fh.close()
        raise AimusicError(f"state folder {state_dir}: cannot write there ({exc.strerror}); "
                           "check [daemon] state_dir") from None
    return fh
