"""Live latency and bounce-to-verdict times of a running daemon.

    python benchmarks/live.py [--minutes 5]          (or `make bench`; needs jackd2, jack-tools)

A private JACK server (dummy backend) and jack-play feed corpus music into the daemon's live
input for the whole run. First a baseline phase with nothing else to do, then a load phase in
which 4-minute bounces land in the watched folder one after another (mode full: the Demucs engine
busy all the time). Latency is measured by the daemon from the arrival of the audio block that
completes a hop to the moment the OSC score is sent (`/aimusic/live/stats`); overflows are
PortAudio input overflows; RSS is the daemon's peak (VmHWM), both models loaded.
Targets (2-core CPU): p99 <= 250 ms, zero overflows, RSS <= 2 GB, bounce -> CNN verdict <= 2 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from common import Row, corpus_music, print_table, write_wav  # noqa: E402
from support.daemon_proc import DaemonProcess  # noqa: E402
from support.jack import RATE, JackServer  # noqa: E402

BOUNCE_S = 240.0


def _stats(d: DaemonProcess) -> tuple:
    d.client.received, d.client.arrivals = [], []
    d.send("/aimusic/live/stats")
    return d.client.wait_for("/aimusic/live/stats.reply", 10).args   # active, scores, p50, p99, overflows


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=5.0, help="length of the live input")
    p.add_argument("--baseline-minutes", type=float, default=1.0)
    args = p.parse_args()
    total_s = args.minutes * 60
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print("preparing material ...", file=sys.stderr, flush=True)
        live_wav = write_wav(root / "live.wav", corpus_music(total_s + 30, RATE), RATE)
        # Written before the run, so that the harness itself adds no load; each differs in one
        # sample (a re-bounce: same music, not a duplicate file).
        staging = root / "staging"
        staging.mkdir()
        music = corpus_music(BOUNCE_S)
        bounces = []
        for n in range(int((total_s - args.baseline_minutes * 60) / 15) + 1):
            music[:, -1] = n / 1e4
            bounces.append(write_wav(staging / f"bounce{n + 1}.wav", music, 44100))
        jack = JackServer(root)
        jack.start()
        os.environ.update(jack.env)
        d = DaemonProcess(root, {
            "daemon": {"log_level": "info"},
            "watch": {"mode": "full", "settle_s": 1.0},
            "engines": {"mode": "auto", "demucs_excerpts": 3},
            "live": {"device": "system", "hop_s": 0.5, "capture": False},
        })
        try:
            d.start()
            d.send("/aimusic/subscribe")               # bounce verdicts come here too
            d.client.wait_for("/aimusic/subscribed")
            d.send("/aimusic/live/start", "system")
            d.client.wait_for("/aimusic/live/state", 30)
            jack.wait_for_port("PortAudio:in_0")
            player = jack.play(live_wav)
            started = time.monotonic()
            print(f"baseline phase ({args.baseline_minutes:g} min) ...", file=sys.stderr, flush=True)
            time.sleep(args.baseline_minutes * 60)
            base = _stats(d)
            print("load phase: bounces through the Demucs engine ...", file=sys.stderr, flush=True)
            to_cnn, to_full = [], []
            while bounces and time.monotonic() - started < total_s - BOUNCE_S / 8:
                staged = bounces.pop(0)
                target = d.inbox / staged.name
                os.rename(staged, target)              # the last byte lands with this rename
                last_byte = time.time()
                mine = lambda m: m.args[1] == str(target)      # noqa: E731
                prelim = d.client.wait_for("/aimusic/preliminary", 60, where=mine)
                to_cnn.append(d.client.arrival(prelim) - last_byte)
                result = d.client.wait_for("/aimusic/result", 300, where=mine)
                to_full.append(d.client.arrival(result) - last_byte)
                d.client.received, d.client.arrivals = [], []    # live scores pile up otherwise
            load = _stats(d)
            rss = _peak_rss_mb(d.proc.pid)
            player.terminate()
        except Exception:
            print("daemon log (tail):\n" + "\n".join(d.log().splitlines()[-30:]), file=sys.stderr)
            raise
        finally:
            d.stop()
            d.client.close()
            jack.stop()
    rows = [
        Row("live latency p50, baseline (no other work)", base[2], "ms", "1.0x"),
        Row("live latency p99, baseline", base[3], "ms", "1.0x"),
        Row("live latency p50, Demucs running (whole run)", load[2], "ms", f"{load[2] / base[2]:.2f}x"),
        Row("live latency p99, Demucs running (whole run)", load[3], "ms", f"{load[3] / base[3]:.2f}x",
            "<= 250 ms", load[3] <= 250),
        Row("live scores pushed", load[1], "scores"),
        Row("input overflows, baseline phase", base[4], "count"),
        Row("input overflows (whole run)", load[4], "count", "", "0", load[4] == 0),
        Row("daemon peak RSS (both models loaded)", rss, "MB", "", "<= 2048 MB", rss <= 2048),
        Row(f"bounce last byte -> CNN verdict (median of {len(to_cnn)})", _median(to_cnn), "s", "",
            "<= 2 s", _median(to_cnn) <= 2),
        Row("bounce last byte -> full report (median)", _median(to_full), "s"),
    ]
    print_table(f"aimusicd live benchmark: {args.minutes:g} min of JACK input, {os.cpu_count()} CPU cores", rows)
    return 0 if all(r.ok is not False for r in rows) else 1


def _median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2] if values else float("nan")


if __name__ == "__main__":
    sys.exit(main())
