"""Scan speed and memory on a 4-minute track made from the allowed corpora.

    python benchmarks/scan.py          (or `make bench`)

Measured in one run, each in a fresh process so that its peak RSS is its own:
  baseline  whole-track HTDemucs separation (apply_model, split, overlap 0.25, shifts 0)
  cnn       `aimusicd scan --mode cnn` path, the fast pass: decode + level + codec check + CNN + image
            score + fingerprints (5 repeats, median), with each stage's share
  auto      CNN, then Demucs only if the CNN is unsure or the input lossy
  full      CNN + Demucs on 3 excerpts of 7.8 s
Targets (2-core CPU): CNN-only >= 300x real time; full <= 30 s per 4-minute track (>= 8x faster
than whole-track separation); peak RSS <= 2 GB; the stages added with the real-output models
(level normalisation, fingerprints) <= 10 % of the fast pass without them, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TRACK_S = 240.0


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
            apply_model(model, torch.from_numpy(audio.samples)[None], shifts=0, split=True,
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
    return {"seconds": statistics.median(runs), "rss_mb": _rss_mb(), "engines": report.engines_ran,
            "verdict": report.verdict,
            "stages": {**{k: statistics.median(t[k] for t in stages) for k in STAGES if k in stages[0]},
                       "level_s": _level_seconds(analyzer, path) if mode == "cnn" else 0.0}}


def _level_seconds(analyzer, path: Path) -> float:
    """The level normalisation alone (part of decode_s), median of 5 on the decoded track."""
    from daemon.audio import load_audio, normalise_level

    audio = load_audio(path, analyzer.limits)
    runs = []
    for _ in range(5):
        x = audio.samples.copy()
        started = time.perf_counter()
        normalise_level(x)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


STAGES = ("decode_s", "cnn_s", "images_s", "fingerprint_s")


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
        track = write_wav(Path(tmp) / "bounce.wav", corpus_music(TRACK_S), 44100)
        print(f"track: {TRACK_S:.0f} s of corpus music, {track.stat().st_size / 2**20:.0f} MB WAV", file=sys.stderr)
        results = {}
        for mode in ("baseline", "cnn", "auto", "full"):
            print(f"measuring {mode} ...", file=sys.stderr, flush=True)
            results[mode] = run_child(script, "--child", mode, str(track))
    base = results["baseline"]["seconds"]
    cnn = results["cnn"]["seconds"]
    rows = [
        Row("baseline: whole-track HTDemucs separation", base, "s", "1.0x", "", None),
        Row("cnn only: seconds per track", cnn, "s", f"{base / cnn:.0f}x faster"),
        Row("cnn only: throughput", TRACK_S / cnn, "x RT", "", ">= 300x RT", TRACK_S / cnn >= 300),
    ]
    stages = results["cnn"]["stages"]
    added = stages["level_s"] + stages["fingerprint_s"]
    for name, seconds in stages.items():
        part = " (within decode)" if name == "level_s" else ""
        rows.append(Row(f"  fast pass stage: {name[:-2]}{part}", seconds, "s", f"{100 * seconds / cnn:.0f} %"))
    rows += [
        Row("  level + fingerprints against the rest of the fast pass", added / (cnn - added), "",
            "", "<= 0.10", added / (cnn - added) <= 0.10),
        Row(f"auto ({results['auto']['engines']}): seconds per track", results["auto"]["seconds"], "s",
            f"{base / results['auto']['seconds']:.1f}x faster"),
        Row("full (cnn + 3 Demucs excerpts): seconds per track", results["full"]["seconds"], "s",
            f"{base / results['full']['seconds']:.1f}x faster", "<= 30 s, >= 8x",
            results["full"]["seconds"] <= 30 and base / results["full"]["seconds"] >= 8),
    ]
    for mode in ("baseline", "cnn", "auto", "full"):
        rss = results[mode]["rss_mb"]
        target = "" if mode == "baseline" else "<= 2048 MB"
        rows.append(Row(f"peak RSS: {mode}", rss, "MB", "", target, None if mode == "baseline" else rss <= 2048))
    print_table(f"aimusicd scan benchmark: {TRACK_S / 60:.0f}-minute track, {_cpu()}", rows)
    return 0 if all(r.ok is not False for r in rows) else 1


def _cpu() -> str:
    import os

    return f"{os.cpu_count()} CPU cores"


if __name__ == "__main__":
    sys.exit(main())
