"""Which finished files of the watched folders become jobs: each file, and each content, once.

A file already known by path, size and mtime is skipped without reading it; otherwise its content
is hashed and skipped if the same content is pending, done, or failed because of itself. The digest
goes with the job, so the analysis does not hash the file again.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import QueueFullError, StoreError
from ..hashing import sha256_file
from .jobs import JobRunner
from .store import Store

log = logging.getLogger("aimusicd")


class Intake:
    def __init__(self, store: Store, runner: JobRunner, mode: str, max_file_mb: int):
        self.store = store
        self.runner = runner
        self.mode = mode
        self.max_bytes = max_file_mb * 1024 * 1024

    def file_ready(self, path: Path) -> None:
        """`path`: resolved, a regular file inside the allowed roots (the watcher checked)."""
        try:
            st = path.stat()
        except OSError:
            return
        key = str(path)
        try:
            if self.store.known(key, st.st_size, st.st_mtime, None):
                return
            # Too large: not worth hashing (seconds per GB); the job fails at once with the reason.
            digest = None
            if st.st_size <= self.max_bytes:
                try:
                    digest = sha256_file(path)
                except OSError as exc:
                    log.warning("cannot read %s: %s", path, exc)
                    return
                twin = self.store.known(key, st.st_size, st.st_mtime, digest)
                if twin is not None:
                    if twin.state == "failed":
                        log.info("skipped %s: the same content failed before (job #%d: %s)", path,
                                 twin.id, twin.error)
                    else:
                        log.info("skipped %s: same content as job #%d (%s)", path, twin.id, twin.path)
                    return
            self.runner.submit(key, self.mode, "watch", size=st.st_size, mtime=st.st_mtime, sha256=digest)
        except (QueueFullError, StoreError) as exc:
            log.error("%s; it will be picked up by the next scan", exc)
