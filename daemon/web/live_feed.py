"""The latest live score, handed from the live-input thread to the dashboard's event streams."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class LiveScore:
    seq: int
    time: float
    probability: float       # -1 on silence
    smoothed: float
    verdict: str             # ai | human | uncertain | silence

    def to_dict(self) -> dict:
        return asdict(self)


class LiveFeed:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: LiveScore | None = None

    def publish(self, probability: float, smoothed: float, verdict: str) -> None:
        with self._lock:
            seq = self._latest.seq + 1 if self._latest else 1
            self._latest = LiveScore(seq, time.time(), probability, smoothed, verdict)

    def latest(self) -> LiveScore | None:
        with self._lock:
            return self._latest
