"""Batch throughput: `scan`, `batch` in process and `batch --ray` over the same music, and a scale
model for a cluster built from the measured per-stage costs.

    python benchmarks/batch.py [--tracks 10] [--seconds 240] [--mode auto]

Measured in one run, each a fresh CLI process (so each pays its own start-up, Ray's included):
  scan        aimusicd scan --mode MODE over the tracks (baseline)
  batch       aimusicd batch --mode MODE in this process
  batch-ray   aimusicd batch --mode MODE --ray (a local Ray instance on this machine's cores)
  stages      aimusicd batch --mode full --ray over 3 of the tracks: decode, fast pass and Demucs
              seconds per track on actors of one CPU thread each, i.e. seconds of one core
The scale model turns the stage costs into tracks per hour per CPU core and per GPU (Demucs per
excerpt on a GPU from benchmarks/demucs_device.py's H100 figure in README) and the nodes that
100,000 tracks a day need in `auto` and `full` mode.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GPU_EXCERPT_S = 0.069       # README: HTDemucs, one 7.8 s excerpt on one H100 (benchmarks/demucs_device.py)
EXCERPTS = 3
NODE_CORES = 16
TRACKS_PER_DAY = 100_000
ASSUMED_SHARE = 0.25        # of a day's uploads that `auto` sends to Demucs (unsure or lossy ones)


def _cli(*args: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "daemon", *args], capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"aimusicd {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - started


def _table(out: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(out / "results.parquet").to_pylist()


def _mean(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if r[key] is not None]
    return sum(values) / len(values) if values else 0.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tracks", type=int, default=10)
    p.add_argument("--seconds", type=float, default=240.0)
    p.add_argument("--mode", default="auto")
    args = p.parse_args()

    from common import Row, corpus_music, print_table, write_wav

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        music = corpus_music(args.tracks * args.seconds)
        n = int(args.seconds * 44100)
        folder = tmp / "music"
        folder.mkdir()
        for i in range(args.tracks):
            write_wav(folder / f"track{i:02d}.wav", music[:, i * n:(i + 1) * n], 44100)
        total_min = args.tracks * args.seconds / 60
        print(f"{args.tracks} tracks, {total_min:.0f} min of corpus music, mode {args.mode}", file=sys.stderr)
        seconds = {}
        for name, cli in (("scan", ["scan", "--mode", args.mode, "--no-report", str(folder)]),
                          ("batch", ["batch", "--mode", args.mode, "--out", str(tmp / "local"), str(folder)]),
                          ("batch-ray", ["batch", "--mode", args.mode, "--ray", "--out", str(tmp / "ray"),
                                         str(folder)])):
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            seconds[name] = _cli(*cli)
            print(f"  {seconds[name]:.1f} s", file=sys.stderr, flush=True)
        sent = sum(bool(r["demucs_probability"] is not None) for r in _table(tmp / "local")) / args.tracks
        print("measuring stages (full, on Ray) ...", file=sys.stderr, flush=True)
        stage_dir = tmp / "stages-in"
        stage_dir.mkdir()
        for path in sorted(folder.iterdir())[:3]:
            os.link(path, stage_dir / path.name)
        _cli("batch", "--mode", "full", "--ray", "--out", str(tmp / "stages"), str(stage_dir))
        stages = _table(tmp / "stages")
        print(f"  share sent to Demucs {sent:.2f}; stages {[(r['decode_s'], r['fast_s'], r['demucs_s']) for r in stages]}",
              file=sys.stderr, flush=True)

    decode, fast = _mean(stages, "decode_s"), _mean(stages, "fast_s")
    # the Demucs actor decodes the file again, so its seconds include one decode
    demucs_cpu = _mean(stages, "demucs_s")
    excerpt_cpu = (demucs_cpu - decode) / EXCERPTS
    fast_core = decode + fast
    demucs_gpu = EXCERPTS * GPU_EXCERPT_S

    def per_hour(seconds_per_track: float) -> float:
        return 3600 / seconds_per_track

    def nodes(share: float, gpu: bool) -> float:
        """Nodes of NODE_CORES cores (and one GPU) for TRACKS_PER_DAY, the slower resource deciding."""
        core_s = fast_core + share * (decode if gpu else demucs_cpu)
        per_day = NODE_CORES * 86400 / core_s
        if gpu and share:
            per_day = min(per_day, 86400 / (share * demucs_gpu))
        return TRACKS_PER_DAY / per_day

    base = args.tracks / seconds["scan"] * 3600
    rows = [Row(f"scan --mode {args.mode}: files per hour (baseline)", base, "files/h", "1.00x")]
    for name in ("batch", "batch-ray"):
        rate = args.tracks / seconds[name] * 3600
        rows.append(Row(f"{name} --mode {args.mode}: files per hour", rate, "files/h", f"{rate / base:.2f}x"))
    rows += [
        Row("share of tracks auto sends to Demucs (measured here)", sent, "", ""),
        Row("decode, per track, one core", decode, "s"),
        Row("fast pass (CNN, image score), per track, one core", fast, "s"),
        Row("Demucs per excerpt, one core", excerpt_cpu, "s"),
        Row("Demucs per excerpt, one H100 (README)", GPU_EXCERPT_S, "s"),
        Row("cnn/fast path: tracks per hour per core", per_hour(fast_core), "tracks/h"),
        Row("full on CPU: tracks per hour per core", per_hour(fast_core + demucs_cpu), "tracks/h"),
        Row("Demucs on a GPU: tracks per hour per GPU", per_hour(demucs_gpu), "tracks/h"),
        Row(f"100k tracks/day, auto ({sent:.0%} to Demucs), {NODE_CORES}-core CPU nodes", nodes(sent, False), "nodes"),
        Row(f"100k tracks/day, auto ({ASSUMED_SHARE:.0%} to Demucs), {NODE_CORES}-core CPU nodes",
            nodes(ASSUMED_SHARE, False), "nodes"),
        Row(f"100k tracks/day, full, {NODE_CORES}-core CPU nodes", nodes(1.0, False), "nodes"),
        Row(f"100k tracks/day, auto ({ASSUMED_SHARE:.0%} to Demucs), {NODE_CORES} cores + 1 GPU",
            nodes(ASSUMED_SHARE, True), "nodes"),
        Row(f"100k tracks/day, full, {NODE_CORES} cores + 1 GPU nodes", nodes(1.0, True), "nodes"),
    ]
    print_table(f"aimusicd batch benchmark: {args.tracks} x {args.seconds / 60:.0f} min, "
                f"{os.cpu_count()} CPU cores", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
