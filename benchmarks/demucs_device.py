"""HTDemucs on a GPU against the CPU: seconds per excerpt, and how far the GPU's evidence strays.

    python benchmarks/demucs_device.py [--device cuda] [--excerpts 8]

Baseline: the same excerpts (one HTDemucs segment, 7.8 s each, of the tests' synthetic music, so
no corpora are needed) separated on the CPU in the same run, one at a time as the engine does.
GPU rows: `engines.demucs_device = "cuda"` as the daemon runs it (FP32). The real weights are used
when `aimusicd models fetch` has cached them; otherwise a randomly initialised HTDemucs of the same
architecture: the same speed, but the deviations then measure the rounding of that network rather
than of the trained one. Target: the Demucs head's logit within 0.01 of the CPU's, so that a
verdict does not depend on where Demucs ran.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from daemon.config import cache_dir  # noqa: E402
from daemon.engines.demucs.engine import DemucsHead  # noqa: E402
from daemon.engines.demucs.features import FEATURE_NAMES, aggregate, excerpt_features  # noqa: E402
from daemon.engines.demucs.separation import (  # noqa: E402
    Separator, build_htdemucs, load_htdemucs, torch_device)
from daemon.engines.demucs.weights import WeightStore  # noqa: E402
from daemon.errors import AimusicError  # noqa: E402
from support.audio import music  # noqa: E402

RATE = 44100


def model_and_name() -> tuple[torch.nn.Module, str]:
    store = WeightStore(cache_dir())
    if store.status().verified:
        return load_htdemucs(store.weights), "real htdemucs weights"
    torch.manual_seed(0)
    return build_htdemucs().eval(), "random weights, htdemucs architecture (no cached weights)"


def measure(sep: Separator, excerpts: list[np.ndarray]) -> dict:
    sep.separate(excerpts[0][None])   # warm-up: allocator, cuDNN algorithm choice
    seconds, stems = [], []
    for x in excerpts:
        started = time.perf_counter()
        stems.append(sep.separate(x[None])[0])   # returns host memory: the GPU has finished
        seconds.append(time.perf_counter() - started)
    features = [excerpt_features(x, s, RATE) for x, s in zip(excerpts, stems)]
    return {"seconds": statistics.median(seconds), "stems": stems, "features": features}


def deviation(run: dict, base: dict, excerpts: list[np.ndarray], head: DemucsHead) -> tuple[float, float, float]:
    """(max |stem difference| relative to the mix's peak, max |feature difference|, |head logit
    difference| on the aggregated features)."""
    stems = max(float(np.abs(a - b).max() / np.abs(x).max())
                for a, b, x in zip(run["stems"], base["stems"], excerpts))
    feats = max(abs(a[k] - b[k]) for a, b in zip(run["features"], base["features"]) for k in FEATURE_NAMES)
    logit = abs(head.model.logit_of(aggregate(run["features"])) - head.model.logit_of(aggregate(base["features"])))
    return stems, feats, logit


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", choices=("cuda", "mps"))
    p.add_argument("--excerpts", type=int, default=8)
    args = p.parse_args()
    from common import Row, print_table

    model, weights = model_and_name()
    head = DemucsHead.load()
    try:
        gpu_device = torch_device(args.device)
    except AimusicError as exc:
        print(exc, file=sys.stderr)
        return 2
    cpu = Separator(model, "cpu")
    excerpts = [music(cpu.segment_samples / RATE, RATE, seed=i) for i in range(args.excerpts)]
    print(f"{args.excerpts} excerpts of {cpu.segment_samples / RATE:.1f} s; {weights}", file=sys.stderr)
    base = measure(cpu, excerpts)
    gpu = Separator(model, gpu_device.type)   # moves the model: the CPU baseline is done
    run = measure(gpu, excerpts)
    peak_mb = torch.cuda.max_memory_allocated() / 2**20 if gpu_device.type == "cuda" else float("nan")
    stems, feats, logit = deviation(run, base, excerpts, head)
    segment_s = cpu.segment_samples / RATE
    rows = [
        Row(f"cpu ({torch.get_num_threads()} threads): s per excerpt", base["seconds"], "s", "1.0x"),
        Row("cpu: real-time factor", segment_s / base["seconds"], "x RT"),
        Row(f"{args.device}: s per excerpt", run["seconds"], "s", f"{base['seconds'] / run['seconds']:.1f}x faster"),
        Row(f"{args.device}: real-time factor", segment_s / run["seconds"], "x RT"),
        Row(f"{args.device}: peak memory allocated", peak_mb, "MB"),
        Row(f"{args.device}: max |stem diff| / mix peak (x1e6)", stems * 1e6, "ppm"),
        Row(f"{args.device}: max |residual feature diff| (x1e3)", feats * 1e3, "1e-3"),
        Row(f"{args.device}: |Demucs head logit diff| (x1e3)", logit * 1e3, "1e-3", "", "<= 10", logit <= 0.01),
    ]
    print_table(f"HTDemucs on {_device_name(args.device)} vs the CPU, {args.excerpts} excerpts", rows)
    return 0 if all(r.ok is not False for r in rows) else 1


def _device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device == "cuda" else device


if __name__ == "__main__":
    sys.exit(main())
