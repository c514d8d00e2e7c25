"""Live input: a PortAudio stream (sounddevice) feeding a preallocated ring buffer, scored by the
CNN every hop on its own thread.

The audio callback only copies into the ring and advances a frame counter: no numpy allocation,
no lock, no I/O, no logging (any of them can make PortAudio drop input). Everything else - the
window copy, resampling, scoring, smoothing, alerts, capture and device recovery - happens on the
scorer thread, which reads the counter and never blocks the callback.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from ..audio import ENGINE_RATE, resample
from ..config.schema import LiveConfig
from ..errors import DeviceError

log = logging.getLogger("aimusicd.live")

SILENCE_RMS = 10 ** (-60 / 20)       # below -60 dBFS a window says nothing about its origin
STALL_S = 2.0                        # no audio for this long: the device is gone
BACKOFF_S = (1, 2, 4, 8, 15, 30)


@dataclass
class LiveStats:
    scores: int
    overflows: int
    latency_p50_ms: float
    latency_p99_ms: float
    device: str
    reconnects: int


def input_devices() -> list[dict]:
    import sounddevice as sd

    return [dict(d, index=i) for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]


def rescan_devices() -> None:
    """PortAudio lists devices once, at initialisation: re-initialise to see new ones (e.g. a JACK
    server started after the daemon, or a USB interface plugged back in)."""
    import sounddevice as sd

    sd._terminate()
    sd._initialize()


def find_input_device(spec: str | None) -> dict:
    """By index ("3"), by case-insensitive name substring ("scarlett"), or the default input."""
    import sounddevice as sd

    devices = input_devices()
    if not devices:
        raise DeviceError("no audio input devices found (see `aimusicd devices`)")
    names = "; ".join(f"{d['index']}: {d['name']}" for d in devices)
    if not spec:
        default = sd.default.device[0]
        for d in devices:
            if d["index"] == default:
                return d
        return devices[0]
    if spec.strip().isdigit():
        for d in devices:
            if d["index"] == int(spec):
                return d
        raise DeviceError(f"input device {spec} not found (inputs: {names})")
    for d in devices:
        if spec.lower() in d["name"].lower():
            return d
    raise DeviceError(f"no input device matches {spec!r} (inputs: {names})")


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
        self._stream = None
        self._device_spec: str | None = None
        self.device_name = ""
        self.rate = 0
        self._ring = np.zeros((0, 1), np.float32)
        self._written = 0
        self._arrival = (0, 0.0)          # (frames written, monotonic time) of the latest block
        self._overflows = 0
        self._scores = 0
        self._reconnects = 0
        self._latencies: collections.deque[float] = collections.deque(maxlen=20000)

    # -- control ---------------------------------------------------------------------------------
    def start(self, device: str | None = None) -> None:
        if self.active:
            return
        self._device_spec = device if device is not None else (self.cfg.device or None)
        self._open()
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

    def stats(self) -> LiveStats:
        lat = np.array(self._latencies) * 1000 if self._latencies else np.array([-1.0])
        return LiveStats(self._scores, self._overflows, float(np.percentile(lat, 50)),
                         float(np.percentile(lat, 99)), self.device_name, self._reconnects)

    # -- the stream ------------------------------------------------------------------------------
    def _open(self) -> None:
        import sounddevice as sd

        dev = find_input_device(self._device_spec)
        rate = self.cfg.sample_rate or int(dev["default_samplerate"])
        channels = max(1, min(self.cfg.channels, dev["max_input_channels"]))
        capacity = int(rate * (max(self.window_s, self.cfg.capture_s) + 2))
        self._ring = np.zeros((capacity, channels), np.float32)
        self._written = 0
        self._arrival = (0, time.monotonic())
        try:
            stream = sd.InputStream(device=dev["index"], samplerate=rate, channels=channels,
                                    blocksize=self.cfg.block_size, dtype="float32",
                                    callback=self._callback)
            stream.start()
        except sd.PortAudioError as exc:
            raise DeviceError(f"cannot open input device {dev['name']!r}: {exc}") from None
        self._stream, self.rate, self.device_name = stream, rate, dev["name"]
        log.info("live input on %r: %d Hz, %d ch, block %d", dev["name"], rate, channels,
                 self.cfg.block_size)

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception:  # noqa: BLE001 - a vanished device may fail to close; it is gone anyway
                pass

    def _callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self._overflows += 1
        ring = self._ring
        cap = ring.shape[0]
        pos = self._written % cap
        first = min(frames, cap - pos)
        ring[pos:pos + first] = indata[:first]
        if first < frames:
            ring[:frames - first] = indata[first:]
        self._written += frames
        self._arrival = (self._written, time.monotonic())

    # -- the scorer thread -----------------------------------------------------------------------
    def _window(self, end: int, frames: int) -> np.ndarray:
        cap = self._ring.shape[0]
        idx = np.arange(end - frames, end) % cap
        return self._ring[idx]

    def _run(self) -> None:
        hop = max(1, int(self.cfg.hop_s * self.rate))
        win = int(self.window_s * self.rate)
        alpha = 1.0 - np.exp(-self.cfg.hop_s / self.cfg.smoothing_s) if self.cfg.smoothing_s else 1.0
        smoothed: float | None = None
        alert_since: float | None = None
        alerted = False
        next_end = win
        while not self._stop.is_set():
            written, arrived = self._arrival
            if written < next_end:
                if time.monotonic() - arrived > STALL_S or (self._stream is not None and not self._stream.active):
                    self._reconnect()
                    hop, win = max(1, int(self.cfg.hop_s * self.rate)), int(self.window_s * self.rate)
                    next_end, smoothed, alert_since, alerted = win, None, None, False
                    continue
                time.sleep(0.005)
                continue
            end = written
            next_end = end + hop          # if scoring fell behind, skip ahead rather than queue up
            mono = self._window(end, win).mean(axis=1)
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
        frames = min(int(self.cfg.capture_s * self.rate), end, self._ring.shape[0])
        self.capture_dir.mkdir(parents=True, exist_ok=True)
        path = self.capture_dir / time.strftime("live-%Y%m%d-%H%M%S.wav")
        try:
            sf.write(str(path), self._window(end, frames), self.rate, subtype="PCM_24")
        except (OSError, sf.LibsndfileError) as exc:
            log.error("cannot write live capture %s: %s", path, exc)
            return
        log.info("captured %.1f s of flagged live audio to %s", frames / self.rate, path)
        self.on_capture(path)

    def _reconnect(self) -> None:
        log.warning("live input %r stopped delivering audio; reconnecting", self.device_name)
        self._close()
        for attempt in range(10**9):
            delay = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            if self._stop.wait(delay):
                return
            try:
                rescan_devices()
                self._open()
                self._reconnects += 1
                log.info("live input reconnected after %d attempts", attempt + 1)
                return
            except DeviceError as exc:
                log.warning("live input still unavailable (retry in %d s): %s",
                            BACKOFF_S[min(attempt + 1, len(BACKOFF_S) - 1)], exc)
