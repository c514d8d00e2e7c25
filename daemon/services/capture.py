"""The audio capture process: one PortAudio input stream writing into a shared-memory ring.

It runs apart from the daemon (`python -m daemon.services.capture ...`, started by LiveMonitor) so
that a vanished interface or a PortAudio failure can only take this small process down: the
daemon notices the stall, kills it and starts a fresh one, which also sees devices that appeared
since (PortAudio lists devices once per process). It imports numpy and sounddevice only.

The callback copies the block into the ring and updates the header - no allocation of arrays, no
lock, no I/O. Header (int64): frames written, input overflows, monotonic ns of the last block.
The process exits when its stdin closes (the daemon went away) or its stream stops.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from multiprocessing import resource_tracker, shared_memory

import numpy as np

HEADER = 3          # int64 slots: written, overflows, last block time (ns)
WRITTEN, OVERFLOWS, ARRIVED = range(HEADER)


def ring_views(shm: shared_memory.SharedMemory, frames: int, channels: int):
    header = np.ndarray((HEADER,), np.int64, buffer=shm.buf)
    ring = np.ndarray((frames, channels), np.float32, buffer=shm.buf, offset=HEADER * 8)
    return header, ring


def ring_bytes(frames: int, channels: int) -> int:
    return HEADER * 8 + frames * channels * 4


def input_devices() -> list[dict]:
    """PortAudio's devices that have inputs, each with its index (what `aimusicd devices` lists)."""
    import sounddevice as sd

    return [dict(d, index=i) for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]


def find_input_device(spec: str | None) -> dict:
    """By index ("3"), by case-insensitive name substring ("scarlett"), or the default input."""
    import sounddevice as sd

    devices = input_devices()
    if not devices:
        raise LookupError("no audio input devices found (see `aimusicd devices`)")
    names = "; ".join(f"{d['index']}: {d['name']}" for d in devices)
    if not spec:
        default = sd.default.device[0]
        return next((d for d in devices if d["index"] == default), devices[0])
    if spec.strip().isdigit():
        for d in devices:
            if d["index"] == int(spec):
                return d
        raise LookupError(f"input device {spec} not found (inputs: {names})")
    for d in devices:
        if spec.lower() in d["name"].lower():
            return d
    raise LookupError(f"no input device matches {spec!r} (inputs: {names})")


def _say(**message) -> None:
    print(json.dumps(message), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m daemon.services.capture")
    p.add_argument("--shm", required=True)
    p.add_argument("--frames", type=int, required=True)
    p.add_argument("--channels", type=int, required=True)
    p.add_argument("--device", default="")
    p.add_argument("--rate", type=int, default=0)
    p.add_argument("--block", type=int, default=1024)
    args = p.parse_args(argv)
    try:
        import sounddevice as sd

        dev = find_input_device(args.device or None)
        rate = args.rate or int(dev["default_samplerate"])
        channels = max(1, min(args.channels, dev["max_input_channels"]))
    except (LookupError, OSError) as exc:
        _say(error=str(exc))
        return 1
    shm = shared_memory.SharedMemory(name=args.shm)
    # Attaching registers the segment with this process's resource tracker, which would unlink
    # it when this process ends; the daemon owns it and outlives us.
    resource_tracker.unregister(shm._name, "shared_memory")
    header, ring = ring_views(shm, args.frames, args.channels)
    cap = args.frames

    def callback(indata, frames, time_info, status) -> None:
        if status.input_overflow:
            header[OVERFLOWS] += 1
        pos = int(header[WRITTEN]) % cap
        first = min(frames, cap - pos)
        ring[pos:pos + first, :channels] = indata[:first]
        if first < frames:
            ring[:frames - first, :channels] = indata[first:]
        header[ARRIVED] = time.monotonic_ns()
        header[WRITTEN] += frames     # last: the reader trusts frames below this count

    try:
        stream = sd.InputStream(device=dev["index"], samplerate=rate, channels=channels,
                                blocksize=args.block, dtype="float32", callback=callback)
        stream.start()
    except sd.PortAudioError as exc:
        _say(error=f"cannot open input device {dev['name']!r}: {exc}")
        return 1
    _say(device=dev["name"], rate=rate, channels=channels)
    gone = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), gone.set()), daemon=True).start()
    while not gone.wait(0.5) and stream.active:
        pass
    return 0   # the daemon kills this process rather than waiting for PortAudio to close


if __name__ == "__main__":
    sys.exit(main())
