"""Scan speed and memory on 4-minute tracks made from the allowed corpora, at 44.1 and 48 kHz.

    python benchmarks/scan.py          (or `make bench`)

Measured in one run, each in a fresh process so that its peak RSS is its own:
  baseline   whole-track HTDemucs separation (apply_model, split, overlap 0.25, shifts 0), 44.1 kHz
  fast pass  Analyzer.analyze(mode="cnn") of one track (median of 5): decode, level, codec check,
             CNN, image score and fingerprints, at 44.1 kHz and at 48 kHz, with each stage's time
  scan       `aimusicd scan --mode cnn` over ten 4-minute 48 kHz files (40 minutes) as one whole
             process, its start (torch import, model load) included (median of 3)
  auto, full Analyzer.analyze of the 48 kHz track (full: the CNN + Demucs on the
             default number of 7.8-s excerpts, `[engines] demucs_excerpts`)
  daemon     peak RSS of a real `aimusicd run` with both models loaded that analysed the 48 kHz track
             dropped in its watch folder in `full` mode
Targets (2-core CPU): fast pass <= 0.5 s for the 48 kHz track (>= 480x real time); scan >= 1000x
real time; full >= 16x faster than whole-track separation; daemon peak RSS <= 1.5 GB; level
normalisation and fingerprints (the stages added for real generator output) <= 10 % of the other
stages' own times (the stages overlap: the numpy engines run beside the CNN).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TRACK_S = 240.0
SCAN_FILES = 10
RATES = (44100, 48000)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, path: Path) -> dict:
    """One measurement in this (fresh) process."""
    import torch

    from daemon.analysis import Analyzer
    from daemon.config import cache_dir, load_config

    if mode == "baseline":
        from demucs.apply import apply_model

        from daemon.audio import load_audio
        from daemon.engines.demucs.separation import load_htdemucs
        from daemon.engines.demucs.weights import WeightStore

        model = load_htdemucs(WeightStore(cache_dir()).require())
        audio = load_audio(path)
        started = time.perf_counter()
        with torch.inference_mode():
            apply_model(model, torch.from_numpy(audio.normalised())[None], shifts=0, split=True,
                        overlap=0.25, progress=False)
        return {"seconds": time.perf_counter() - started, "rss_mb": _rss_mb()}
    analyzer = Analyzer(load_config())
    analyzer.preload(demucs=mode != "cnn")
    runs, stages = [], []
    for _ in range(5 if mode == "cnn" else 1):
        started = time.perf_counter()
        report = analyzer.analyze(path, mode)
        runs.append(time.perf_counter() - started)
        stages.append(report.timings)
    out = {"seconds": statistics.median(runs), "rss_mb": _rss_mb(), "engines": report.engines_ran,
           "excerpts": len(report.demucs.excerpts)}
    if mode == "cnn":
        out["stages"] = {**{k: statistics.median(t[k] for t in stages) for k in STAGES},
                         "level_s": _level_seconds(analyzer, path)}
    return out


def _level_seconds(analyzer, path: Path) -> float:
    """The level normalisation alone (part of decode_s): measured and applied to the mid."""
    from daemon.audio import load_audio
    from daemon.audio.level import Level

    audio = load_audio(path, analyzer.limits)
    runs = []
    for _ in range(5):
        mid = audio.decoded.mean(axis=0)
        started = time.perf_counter()
        Level.of(audio.decoded).apply_mid(mid)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


STAGES = ("decode_s", "cnn_s", "images_s", "fingerprint_s")


def scan_process(folder: Path, runs: int = 3) -> float:
    """Median wall seconds of `aimusicd scan --mode cnn` processes over `folder` (one run alone
    has been seen to take half as long again as the next)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "daemon", "scan", "--mode", "cnn", "--no-report", str(folder)],
                              capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise RuntimeError(f"aimusicd scan failed:\n{proc.stderr[-3000:]}")
    return statistics.median(times)


def daemon_rss(track: Path, root: Path) -> float:
    """Peak RSS (MB) of a real daemon with both models that analysed `track` in full mode."""
    inbox, state = root / "inbox", root / "state"
    inbox.mkdir(parents=True)
    preset = root / "bench.toml"
    preset.write_text(
        f'[daemon]\nstate_dir = "{state}"\n[watch]\nfolders = ["{inbox}"]\nmode = "full"\n'
        f'[osc]\nenabled = false\n[web]\nenabled = false\n[reports]\nenabled = false\n')
    proc = subprocess.Popen([sys.executable, "-m", "daemon", "run", "--preset", str(preset)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True).start()
    try:
        _wait(lambda: any("aimusicd ready" in line for line in log), proc, 120, "start", log)
        shutil.copy(track, inbox / track.name)
        _wait(lambda: _done(state / "aimusicd.sqlite") >= 1, proc, 600, "finish the job", log)
        hwm = next(line for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                   if line.startswith("VmHWM:"))
        return int(hwm.split()[1]) / 1024
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def _wait(predicate, proc: subprocess.Popen, timeout: float, what: str, log: list[str]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the daemon did not {what}:\n{''.join(log)[-3000:]}")
        time.sleep(0.2)


def _done(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT COUNT(*) FROM jobs WHERE state IN ('done', 'failed')").fetchone()[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]))))
        return 0

    from common import Row, corpus_music, print_table, run_child, write_wav

    script = Path(__file__).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tracks = {rate: write_wav(tmp / f"bounce_{rate}.wav", corpus_music(TRACK_S, rate), rate) for rate in RATES}
        ten = tmp / "ten"
        ten.mkdir()
        for i in range(SCAN_FILES):
            shutil.copy(tracks[48000], ten / f"bounce_{i}.wav")
        results = {}
        for name, mode, rate in (("baseline", "baseline", 44100), ("fast44", "cnn", 44100), ("fast48", "cnn", 48000),
                                 ("auto", "auto", 48000), ("full", "full", 48000)):
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            results[name] = run_child(script, "--child", mode, str(tracks[rate]))
        print("measuring scan ...", file=sys.stderr, flush=True)
        scan_s = scan_process(ten)
        print("measuring daemon ...", file=sys.stderr, flush=True)
        (tmp / "daemon").mkdir()
        daemon_mb = daemon_rss(tracks[48000], tmp / "daemon")
    base = results["baseline"]["seconds"]
    excerpts = results["full"]["excerpts"]
    rows = [Row("baseline: whole-track HTDemucs separation", base, "s", "1.0x")]
    for name, rate in (("fast44", 44100), ("fast48", 48000)):
        fast = results[name]["seconds"]
        target, ok = ("<= 0.5 s", fast <= 0.5) if rate == 48000 else ("", None)
        rows.append(Row(f"fast pass, {rate / 1000:g} kHz: seconds per track", fast, "s",
                        f"{TRACK_S / fast:.0f}x RT", target, ok))
        stages = results[name]["stages"]
        for stage, seconds in stages.items():
            part = " (within decode)" if stage == "level_s" else ""
            rows.append(Row(f"  stage: {stage[:-2]}{part}", seconds, "s", f"{100 * seconds / fast:.0f} %"))
        if rate == 48000:   # stages overlap (the numpy engines run beside the CNN): compare their own times
            added = stages["level_s"] + stages["fingerprint_s"]
            rest = stages["decode_s"] - stages["level_s"] + stages["cnn_s"] + stages["images_s"]
            rows.append(Row("  level + fingerprints against the other stages", added / rest, "",
                            "", "<= 0.10", added / rest <= 0.10))
    scan_rt = SCAN_FILES * TRACK_S / scan_s
    rows += [
        Row(f"scan --mode cnn, {SCAN_FILES} x 4 min at 48 kHz, whole process", scan_s, "s",
            f"{scan_rt:.0f}x RT", ">= 1000x RT", scan_rt >= 1000),
        Row(f"auto ({results['auto']['engines']}): seconds per track", results["auto"]["seconds"], "s",
            f"{base / results['auto']['seconds']:.1f}x faster"),
        Row(f"full (cnn + {excerpts} Demucs excerpt{'s' if excerpts != 1 else ''}): seconds per track",
            results["full"]["seconds"], "s", f"{base / results['full']['seconds']:.1f}x faster", ">= 16x",
            base / results["full"]["seconds"] >= 16),
        Row("peak RSS: baseline", results["baseline"]["rss_mb"], "MB"),
        Row("peak RSS: fast pass (CNN only)", results["fast48"]["rss_mb"], "MB"),
        Row("peak RSS: full analysis", results["full"]["rss_mb"], "MB"),
        Row("peak RSS: daemon, both models, one full job", daemon_mb, "MB", "", "<= 1536 MB", daemon_mb <= 1536),
    ]
    print_table(f"aimusicd scan benchmark: {TRACK_S / 60:.0f}-minute tracks, {_cpu()}", rows)
    return 0 if all(r.ok is not False for r in rows) else 1


def _cpu() -> str:
    import os

    return f"{os.cpu_count()} CPU cores"


if __name__ == "__main__":
    sys.exit(main())
