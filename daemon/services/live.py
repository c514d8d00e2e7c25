"""Live input: a capture process (daemon/services/capture.py) fills a shared-memory ring from a
PortAudio stream; here the CNN scores the latest window every hop, smooths the scores, raises
alerts, captures flagged audio and restarts the capture process when the device goes away.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing import shared_memory
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from ..audio import ENGINE_RATE, resample
from ..config.schema import LiveConfig
from ..errors import DeviceError
from .capture import ARRIVED, OVERFLOWS, WRITTEN, ring_bytes, ring_views

log = logging.getLogger("aimusicd.live")

SILENCE_RMS = 10 ** (-60 / 20)       # below -60 dBFS a window says nothing about its origin
STALL_S = 2.0                        # no audio for this long: the device is gone
OPEN_TIMEOUT_S = 15.0
BACKOFF_S = (1, 2, 4, 8, 15, 30)
MAX_RATE = 192000


@dataclass
class LiveStats:
    scores: int
    overflows: int
    latency_p50_ms: float
    latency_p99_ms: float
    device: str
    reconnects: int


class LiveMonitor:
    def __init__(self, cfg: LiveConfig, window_s: float, score: Callable[[np.ndarray], float],
                 label: Callable[[float], str], on_score: Callable[[float, float, str], None],
                 on_alert: Callable[[float, float], None], on_capture: Callable[[Path], None],
                 capture_dir: Path):
        self.cfg = cfg
        self.window_s = window_s
        self.score = score
        self.label = label
        self.on_score = on_score
        self.on_alert = on_alert
        self.on_capture = on_capture
        self.capture_dir = capture_dir
        self.active = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen | None = None
        self._device_spec: str | None = None
        self.device_name = ""
        self.rate = 0
        # Sized for the highest rate a device may choose: the ring outlives capture processes.
        self._frames = int(MAX_RATE * (max(window_s, cfg.capture_s) + 2))
        self._shm: shared_memory.SharedMemory | None = None
        self._channels = cfg.channels
        self._dev_channels = cfg.channels
        self._overflows_before = 0
        self._scores = 0
        self._reconnects = 0
        self._header = np.zeros(3, np.int64)
        self._latencies: collections.deque[float] = collections.deque(maxlen=20000)

    # -- control ---------------------------------------------------------------------------------
    def start(self, device: str | None = None) -> None:
        if self.active:
            return
        self._device_spec = device if device is not None else (self.cfg.device or None)
        self._shm = shared_memory.SharedMemory(create=True, size=ring_bytes(self._frames, self._channels))
        self._header, self._ring = ring_views(self._shm, self._frames, self._channels)
        try:
            self._open()
        except DeviceError:
            self._release_ring()
            raise
        self._stop.clear()
        self.active = True
        self._thread = threading.Thread(target=self._run, name="live-scorer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=3)
        self._close()
        self.active = False
        self._release_ring()

    def _release_ring(self) -> None:
        shm, self._shm = self._shm, None
        if shm is None:
            return
        self._overflows_before += int(self._header[OVERFLOWS])
        self._header = np.zeros(3, np.int64)      # stats stay readable after the ring is gone
        self._ring = np.zeros((0, self._channels), np.float32)   # drop the views before close()
        shm.close()
        shm.unlink()

    def stats(self) -> LiveStats:
        lat = np.array(self._latencies) * 1000 if self._latencies else np.array([-1.0])
        return LiveStats(self._scores, self._overflows_before + int(self._header[OVERFLOWS]),
                         float(np.percentile(lat, 50)), float(np.percentile(lat, 99)),
                         self.device_name, self._reconnects)

    # -- the capture process ---------------------------------------------------------------------
    def _open(self) -> None:
        self._overflows_before += int(self._header[OVERFLOWS])
        self._header[:] = 0
        self._header[ARRIVED] = time.monotonic_ns()
        cmd = [sys.executable, "-m", "daemon.services.capture", "--shm", self._shm.name,
               "--frames", str(self._frames), "--channels", str(self._channels),
               "--device", self._device_spec or "", "--rate", str(self.cfg.sample_rate),
               "--block", str(self.cfg.block_size)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        reply = _read_line(proc, OPEN_TIMEOUT_S)
        if reply is None or "error" in reply:
            _kill(proc)
            reason = reply["error"] if reply else "the capture process did not start"
            raise DeviceError(reason)
        self._proc, self.rate, self.device_name = proc, int(reply["rate"]), reply["device"]
        self._dev_channels = int(reply["channels"])
        log.info("live input on %r: %d Hz, %d ch, block %d", self.device_name, self.rate,
                 reply["channels"], self.cfg.block_size)

    def _close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _kill(proc)

    # -- the scorer thread -----------------------------------------------------------------------
    def _window(self, end: int, frames: int) -> np.ndarray:
        idx = np.arange(end - frames, end) % self._frames
        return self._ring[idx]

    def _latest(self) -> tuple[int, float]:
        """(frames written, monotonic time of the newest block) from the capture process."""
        arrived = self._header[ARRIVED] / 1e9
        return int(self._header[WRITTEN]), float(arrived)

    def _run(self) -> None:
        hop = max(1, int(self.cfg.hop_s * self.rate))
        win = int(self.window_s * self.rate)
        alpha = 1.0 - np.exp(-self.cfg.hop_s / self.cfg.smoothing_s) if self.cfg.smoothing_s else 1.0
        smoothed: float | None = None
        alert_since: float | None = None
        alerted = False
        next_end = win
        while not self._stop.is_set():
            written, arrived = self._latest()
            if written < next_end:
                if time.monotonic() - arrived > STALL_S or self._proc is None or self._proc.poll() is not None:
                    self._reconnect()
                    hop, win = max(1, int(self.cfg.hop_s * self.rate)), int(self.window_s * self.rate)
                    next_end, smoothed, alert_since, alerted = win, None, None, False
                    continue
                time.sleep(0.005)
                continue
            end = written
            next_end = end + hop          # if scoring fell behind, skip ahead rather than queue up
            mono = self._window(end, win)[:, :self._dev_channels].mean(axis=1)
            if float(np.sqrt(np.mean(mono ** 2))) < SILENCE_RMS:
                self.on_score(-1.0, -1.0 if smoothed is None else smoothed, "silence")
                self._latencies.append(time.monotonic() - arrived)
                continue
            p = self.score(resample(mono, self.rate, ENGINE_RATE))
            smoothed = p if smoothed is None else smoothed + alpha * (p - smoothed)
            self._scores += 1
            self.on_score(p, smoothed, self.label(smoothed))
            self._latencies.append(time.monotonic() - arrived)
            now = time.monotonic()
            if smoothed >= self.cfg.alert_threshold:
                alert_since = now if alert_since is None else alert_since
                if not alerted and now - alert_since >= self.cfg.alert_after_s:
                    alerted = True
                    self.on_alert(smoothed, now - alert_since)
                    if self.cfg.capture:
                        self._capture(end)
            else:
                alert_since, alerted = None, False

    def _capture(self, end: int) -> None:
        frames = min(int(self.cfg.capture_s * self.rate), end, self._frames)
        self.capture_dir.mkdir(parents=True, exist_ok=True)
        path = self.capture_dir / time.strftime("live-%Y%m%d-%H%M%S.wav")
        try:
            sf.write(str(path), self._window(end, frames)[:, :self._dev_channels], self.rate, subtype="PCM_24")
        except (OSError, sf.LibsndfileError) as exc:
            log.error("cannot write live capture %s: %s", path, exc)
            return
        log.info("captured %.1f s of flagged live audio to %s", frames / self.rate, path)
        self.on_capture(path)

    def _reconnect(self) -> None:
        log.warning("live input %r stopped delivering audio; reconnecting", self.device_name)
        self._close()
        for attempt in itertools.count():
            if self._stop.wait(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]):
                return
            try:
                self._open()
                self._reconnects += 1
                log.info("live input reconnected after %d attempts", attempt + 1)
                return
            except DeviceError as exc:
                log.warning("live input still unavailable (retrying): %s", exc)


def _read_line(proc: subprocess.Popen, timeout: float) -> dict | None:
    """The capture process's first line (JSON), or None if it says nothing in time."""
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    try:
        return json.loads(box[0]) if box and box[0] else None
    except ValueError:
        return None


def _kill(proc: subprocess.Popen) -> None:
    """Close its stdin (it then stops its stream and exits); kill it if it hangs, e.g. inside a
    PortAudio call on a vanished device."""
    try:
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
