"""Watched export folders: a file counts only once its writer has finished.

Linux (inotify): a file is ready after a close-after-write, or after appearing without being opened
(renamed or moved in from elsewhere), and a short quiet spell. Polling mode (network shares, where no events arrive) and other platforms:
size and mtime unchanged for `settle_s`. Either way a WAV/AIFF whose header still promises more
audio than the file holds is not ready yet; after INCOMPLETE_GIVE_UP_S without change it is handed
on anyway, so that the analysis reports the truncation instead of the file silently waiting.

A folder that disappears is watched again as soon as it comes back, and scanned.

Before any read, a path is resolved and must be a regular file inside the allowed roots, the same
rule as for paths from OSC (services/paths.py): a FIFO, a device, or a link that leads outside is
refused with one log line. Links to folders are not followed by the scan.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Callable

from watchdog.events import (
    FileClosedEvent, FileCreatedEvent, FileModifiedEvent, FileMovedEvent, FileOpenedEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from ..audio.decode import incomplete_reason
from ..config.paths import expand
from ..config.schema import WatchConfig
from ..errors import AimusicError
from ..files import audio_files_in, is_candidate
from .paths import allowed_file

log = logging.getLogger("aimusicd.watch")

QUIET_AFTER_CLOSE_S = 0.5
INCOMPLETE_GIVE_UP_S = 120.0
TICK_S = 0.25
HEALTH_EVERY_S = 2.0
MAX_REMEMBERED_REFUSALS = 10_000


@dataclass
class _Pending:
    size: int
    mtime: float
    changed: float          # monotonic time of the last observed change
    closed: bool            # the writer closed it (or renamed it into place) since that change
    opened: bool = False    # some writer has it open (created files that nobody opens were moved in)


class FolderWatcher:
    """`on_ready` gets the resolved path of each finished file inside `allowed_roots`."""

    def __init__(self, cfg: WatchConfig, on_ready: Callable[[Path], None], allowed_roots: list[Path]):
        self.cfg = cfg
        self.on_ready = on_ready
        self.allowed_roots = allowed_roots
        self._refused: dict[Path, str] = {}   # refused paths, each logged once per reason
        self.folders = [expand(f).resolve() for f in cfg.folders]
        self.use_close_events = sys.platform.startswith("linux") and not cfg.polling
        self._pending: dict[Path, _Pending] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watches: dict[Path, tuple[object, tuple[int, int]] | None] = {}
        self._observer = (PollingObserver(timeout=cfg.poll_interval_s) if cfg.polling else Observer())
        self._handler = _Handler(self)
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> None:
        for folder in self.folders:
            if not folder.exists():
                folder.mkdir(parents=True, exist_ok=True)
                log.info("created watch folder %s", folder)
            self._watches[folder] = None
        self._observer.start()
        for folder in self.folders:
            self._watch(folder, scan=self.cfg.startup_scan)
        self._thread = threading.Thread(target=self._run, name="watch-settle", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._observer.stop()
        self._observer.join(timeout=3)
        if self._thread:
            self._thread.join(timeout=2)

    def _watch(self, folder: Path, scan: bool) -> None:
        try:
            st = folder.stat()
            watch = self._observer.schedule(self._handler, str(folder), recursive=self.cfg.recursive)
        except OSError as exc:
            log.warning("cannot watch %s: %s", folder, exc)
            return
        self._watches[folder] = (watch, (st.st_dev, st.st_ino))
        mode = "polling" if self.cfg.polling else ("close events" if self.use_close_events else "settle")
        log.info("watching %s (%s%s)", folder, mode, ", recursive" if self.cfg.recursive else "")
        if scan:
            found = audio_files_in(folder, self.cfg.patterns, self.cfg.ignore, self.cfg.recursive)
            for path in found:
                self.note(path, closed=True, settled=True)
            if found:
                log.info("scan of %s: %d candidate files", folder, len(found))

    # -- events ----------------------------------------------------------------------------------
    def wanted(self, path: Path) -> bool:
        """A candidate by name, and not inside an ignored (e.g. hidden) sub-folder."""
        for folder in self.folders:
            if path.is_relative_to(folder):
                parts = path.relative_to(folder).parts[:-1]
                if any(fnmatch(p.lower(), pat.lower()) for p in parts for pat in self.cfg.ignore):
                    return False
                if parts and not self.cfg.recursive:
                    return False
                return is_candidate(path, self.cfg.patterns, self.cfg.ignore)
        return False

    def admitted(self, path: Path) -> Path | None:
        """The resolved file if it may be read (see the module docstring); else None, logged."""
        try:
            resolved = allowed_file(path, self.allowed_roots)
        except AimusicError as exc:
            reason = str(exc)
            with self._lock:
                if self._refused.get(path) == reason:
                    return None
                if len(self._refused) >= MAX_REMEMBERED_REFUSALS:
                    self._refused.clear()
                self._refused[path] = reason
            if "file not found" not in reason:   # gone again before we looked: nothing to say
                log.warning("ignored %s", reason)
            return None
        with self._lock:
            self._refused.pop(path, None)
        return resolved

    def note(self, path: Path, closed: bool, settled: bool = False) -> None:
        if not self.wanted(path) or self.admitted(path) is None:
            return
        try:
            st = path.stat()
        except OSError:
            return
        now = time.monotonic()
        if settled:   # found by a scan: as good as closed and quiet, but an unfinished header still waits
            now -= max(self.cfg.settle_s, QUIET_AFTER_CLOSE_S)
        with self._lock:
            previous = self._pending.get(path)
            opened = previous.opened and not closed if previous else False
            self._pending[path] = _Pending(st.st_size, st.st_mtime, now, closed, opened)

    def note_opened(self, path: Path) -> None:
        with self._lock:
            if path in self._pending:
                self._pending[path].opened = True

    # -- the settle loop -------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        last_health = 0.0
        while not self._stop.wait(TICK_S):
            try:
                self._settle()
                if time.monotonic() - last_health > HEALTH_EVERY_S:
                    last_health = time.monotonic()
                    self._check_folders()
            except Exception:  # noqa: BLE001 - the settle loop must outlive any one bug
                log.exception("watcher: unexpected error; going on")

    def _settle(self) -> None:
        now = time.monotonic()
        with self._lock:
            items = list(self._pending.items())
        for path, p in items:
            try:
                st = path.stat()
            except OSError:
                with self._lock:
                    self._pending.pop(path, None)
                continue
            if (st.st_size, st.st_mtime) != (p.size, p.mtime):
                p.size, p.mtime, p.changed = st.st_size, st.st_mtime, now
                p.closed = False if self.use_close_events else p.closed
                continue
            quiet = now - p.changed
            if self.use_close_events:
                ready = (p.closed or not p.opened) and quiet >= QUIET_AFTER_CLOSE_S
            else:
                ready = quiet >= self.cfg.settle_s
            if not ready:
                continue
            resolved = self.admitted(path)   # again: a link may have been pointed elsewhere
            if resolved is None:
                with self._lock:
                    self._pending.pop(path, None)
                continue
            unfinished = incomplete_reason(resolved)
            if unfinished and quiet < INCOMPLETE_GIVE_UP_S:
                continue   # e.g. the header is rewritten at the end of a render
            with self._lock:
                self._pending.pop(path, None)
            try:
                self.on_ready(resolved)
            except Exception:  # noqa: BLE001 - one file must not stop the watcher
                log.exception("cannot hand on %s", path)

    def _check_folders(self) -> None:
        for folder, current in list(self._watches.items()):
            try:
                st = folder.stat()
                identity = (st.st_dev, st.st_ino)
            except OSError:
                identity = None
            if current is not None and identity == current[1]:
                continue
            if current is not None:
                try:
                    self._observer.unschedule(current[0])
                except (KeyError, ValueError):
                    pass
                self._watches[folder] = None
                if identity is None:
                    log.warning("watched folder %s is gone; watching for it to come back", folder)
            if identity is not None:
                log.info("watched folder %s is back", folder)
                self._watch(folder, scan=True)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: FolderWatcher):
        self.watcher = watcher

    def on_any_event(self, event) -> None:
        if event.is_directory:
            return
        if isinstance(event, FileMovedEvent):
            self.watcher.note(Path(event.dest_path), closed=True)
        elif isinstance(event, FileClosedEvent):
            self.watcher.note(Path(event.src_path), closed=True)
        elif isinstance(event, FileOpenedEvent):
            self.watcher.note_opened(Path(event.src_path))
        elif isinstance(event, (FileCreatedEvent, FileModifiedEvent)):
            self.watcher.note(Path(event.src_path), closed=False)
