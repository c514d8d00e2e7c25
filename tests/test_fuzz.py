"""Bounded fuzzing of a real daemon: 2,000 random and mutated OSC packets and 200 mutated audio
files from a seeded generator. At the end the daemon must still answer, still analyse a good file
through OSC and through its watch folder, and no worker may have died; every analysis request got
exactly one answer, and every number it sent back and wrote is finite."""

from __future__ import annotations

import io
import json
import math
import os
import random
import socket
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from daemon.services.osc import protocol as osc
from support.audio import music
from support.daemon_proc import wait_until

SEED = 19
PACKETS = 2000
AUDIO_FILES = 200
FIRST_AUDIO_REQ = 100_000
ADDRESSES = [a for a in (osc.PING, osc.ANALYZE, osc.STATUS, osc.LIVE_STOP, osc.LIVE_STATS,
                         osc.SUBSCRIBE, osc.UNSUBSCRIBE, *sorted(osc.REPLIES))]


def _client_buffer(sock: socket.socket) -> None:
    for option in (33, socket.SO_RCVBUF):            # SO_RCVBUFFORCE where allowed, else capped
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, 16 << 20)
            return
        except OSError:
            continue


class PacketFuzzer:
    def __init__(self, rng: random.Random, paths: list[str]):
        self.rng = rng
        self.paths = paths

    def text(self) -> str:
        r = self.rng
        pool = [*self.paths, "", "relative.wav", "/", "/etc/passwd", "/dev/zero", "a\nb\r\x00c",
                "é" * r.randint(1, 50), "x" * r.randint(0, 3000), "cnn", "full?", "%s%n"]
        return r.choice(pool)

    def arg(self) -> tuple[object, str]:
        r = self.rng
        kind = r.choice("iihffdssssbTFN")
        if kind == "i":
            return r.choice([0, -1, 1, 2**31 - 1, -2**31, r.randint(-2**31, 2**31 - 1)]), "i"
        if kind == "h":
            return r.randint(-2**63, 2**63 - 1), "h"
        if kind in "fd":
            return r.choice([0.0, -1.0, 5.0, 3e9, float("nan"), float("inf"), r.uniform(-1e6, 1e6)]), kind
        if kind == "s":
            return self.text(), "s"
        if kind == "b":
            return r.randbytes(r.randint(1, 64)), "b"   # python-osc cannot build an empty blob
        return {"T": True, "F": False, "N": None}[kind], kind

    def message(self) -> bytes:
        r = self.rng
        address = r.choice(ADDRESSES + ["/aimusic/" + r.randbytes(4).hex(), "/other/x", "/aimusic/ping\n"])
        builder = OscMessageBuilder(address)
        for _ in range(r.randint(0, 4)):
            value, kind = self.arg()
            builder.add_arg(value, kind)
        return builder.build().dgram

    def bundle(self, depth: int = 0) -> bytes:
        builder = OscBundleBuilder(IMMEDIATELY)
        for _ in range(self.rng.randint(1, 3)):
            if depth < 2 and self.rng.random() < 0.3:
                builder.add_content(OscBundle(self.bundle(depth + 1)))
            else:
                builder.add_content(OscMessage(self.message()))
        return builder.build().dgram

    def mutate(self, data: bytes) -> bytes:
        r = self.rng
        b = bytearray(data)
        for _ in range(r.randint(1, 6)):
            op = r.random()
            if op < 0.4 and b:
                b[r.randrange(len(b))] = r.randrange(256)
            elif op < 0.6 and b:
                del b[r.randrange(len(b)):]
            elif op < 0.8:
                i = r.randint(0, len(b))
                b[i:i] = r.randbytes(r.randint(1, 8))
            elif b:
                i = r.randrange(len(b))
                b[i:i + 4] = struct.pack(">i", r.choice([-1, 0, 2**31 - 1, len(b) * 4]))
        return bytes(b)

    def packet(self) -> bytes:
        r = self.rng
        while True:
            choice = r.random()
            if choice < 0.15:
                data = r.randbytes(r.randint(0, 300))
            elif choice < 0.5:
                data = self.message()
            elif choice < 0.6:
                data = self.bundle()
            elif choice < 0.9:
                data = self.mutate(self.message())
            else:
                data = self.mutate(self.bundle())
            if not self._starts_live_input(data):   # that would open a real audio device
                return data

    @staticmethod
    def _starts_live_input(data: bytes) -> bool:
        try:
            return any(m.address == osc.LIVE_START for m in osc.decode(data))
        except osc.MalformedPacket:
            return False


def mutated_audio(rng: random.Random, base: dict[str, bytes], folder: Path, n: int) -> list[Path]:
    """n files: a seeded choice of format, then header/data corruption, truncation, garbage, or
    out-of-range samples."""
    files = []
    for i in range(n):
        name, data = rng.choice(sorted(base.items()))
        b = bytearray(data)
        op = rng.randrange(7)
        if op == 0:                                      # bytes flipped in the header
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(min(64, len(b)))] = rng.randrange(256)
        elif op == 1:                                    # bytes flipped anywhere
            for _ in range(rng.randint(1, 200)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 2:                                    # truncated
            del b[rng.randint(0, len(b) - 1):]
        elif op == 3:                                    # a header field set to an extreme
            pos = rng.randrange(4, min(60, len(b) - 4))
            b[pos:pos + 4] = struct.pack("<I", rng.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 8, 384000]))
        elif op == 4:                                    # garbage appended or prepended
            junk = rng.randbytes(rng.randint(1, 5000))
            b = bytearray(junk) + b if rng.random() < 0.5 else b + bytearray(junk)
        elif op == 5:                                    # a zeroed range
            start = rng.randrange(len(b))
            b[start:start + rng.randint(1, 20000)] = bytes(min(len(b) - start, 20000))
        else:                                            # samples far out of range, or not numbers
            scale = rng.choice([1e30, 1e38, -1e20, 0.0])
            x = music(3, 22050, seed=i) * scale
            if rng.random() < 0.3:
                x[:, rng.randrange(x.shape[1])] = rng.choice([np.inf, -np.inf, np.nan])
            buf = io.BytesIO()
            sf.write(buf, x.T, 22050, subtype="FLOAT", format="WAV")
            b, name = bytearray(buf.getvalue()), "float.wav"
        path = folder / f"m{i:03d}{Path(name).suffix}"
        path.write_bytes(bytes(b))
        files.append(path)
    return files


def _finite_json(path: Path) -> None:
    def refuse(constant):
        raise AssertionError(f"{path}: {constant} in the report")
    json.loads(path.read_text(), parse_constant=refuse)


def test_fuzzed_packets_and_files_leave_the_daemon_answering_and_analysing(daemon, tmp_path):
    rng = random.Random(SEED)
    d = daemon()
    _client_buffer(d.client.sock)
    good = tmp_path / "good.wav"
    sf.write(good, music(3, 44100, seed=1).T, 44100, subtype="PCM_16")
    fifo = tmp_path / "fifo.wav"
    os.mkfifo(fifo)

    fuzzer = PacketFuzzer(rng, [str(good), str(fifo), str(tmp_path), str(tmp_path / "missing.wav")])
    for i in range(PACKETS):
        d.client.send_raw(d.target, fuzzer.packet())
        if i % 50 == 0:
            d.client.pump(0.01)                          # keep our own receive buffer drained

    base = {}
    for name, subtype, fmt in (("a.wav", "PCM_16", "WAV"), ("a.flac", "PCM_16", "FLAC"),
                               ("a.ogg", "VORBIS", "OGG"), ("a.aiff", "PCM_16", "AIFF")):
        buf = io.BytesIO()
        sf.write(buf, music(3, 22050, seed=7).T, 22050, subtype=subtype, format=fmt)
        base[name] = buf.getvalue()
    (tmp_path / "mutated").mkdir()
    files = mutated_audio(rng, base, tmp_path / "mutated", AUDIO_FILES)
    for i, path in enumerate(files):
        d.send("/aimusic/analyze", str(path), FIRST_AUDIO_REQ + i, "cnn")
        if i % 20 == 0:
            d.client.pump(0.01)

    wanted = set(range(FIRST_AUDIO_REQ, FIRST_AUDIO_REQ + AUDIO_FILES))
    answers: dict[int, object] = {}

    def all_answered() -> bool:
        d.client.pump(0.2)
        for m in d.client.received:
            if m.address in (osc.RESULT, osc.ERROR) and m.args and m.args[0] in wanted:
                answers.setdefault(m.args[0], m)
        d.client.received = [m for m in d.client.received if m.address not in (osc.RESULT, osc.ERROR)]
        return len(answers) == AUDIO_FILES

    wait_until(all_answered, 90, "an answer to every mutated file", interval=0)
    for m in answers.values():
        if m.address == osc.RESULT:
            assert all(isinstance(v, float) and math.isfinite(v) for v in m.args[3:6]), m
            _finite_json(Path(m.args[6]))
        else:
            assert m.args[1] == osc.ANALYZE and m.args[2], m

    # Still answering, still analysing, through OSC and the watch folder; no worker died.
    d.client.received.clear()
    d.send(osc.PING)
    d.client.wait_for(osc.PONG)
    d.send(osc.ANALYZE, str(good), 1, "cnn")
    d.client.wait_for(osc.RESULT, 60, where=lambda m: m.args[0] == 1)
    # other content than `good`, which the watcher would skip as already analysed
    sf.write(d.inbox / "after-fuzz.wav", music(3, 44100, seed=2).T, 44100, subtype="PCM_16")
    wait_until(lambda: any(j["path"] == str(d.inbox / "after-fuzz.wav") and j["state"] == "done"
                           for j in d.jobs()), 60, "the watched file to be analysed")
    d.client.received.clear()
    d.send(osc.STATUS)
    fields = d.client.wait_for(osc.STATUS_REPLY).args
    assert "dead" not in (fields[6], fields[8])
    log = d.log()
    assert "worker died" not in log and "Exception in thread" not in log
    assert d.alive()
