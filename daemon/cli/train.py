"""`aimusicd train`: rebuild the shipped models from the allowed corpora (see MODEL_CARD.md)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..config import cache_dir, load_config
from .common import add_preset_argument


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train the CNN, the Demucs head and the fusion; write a model card")
    p.add_argument("--quick", action="store_true",
                   help="a few-minute smoke run on small corpora (writes to the work folder, "
                        "never over the shipped models)")
    p.add_argument("--out", type=Path, help="where to write the models (default: the package's "
                   "models folder; with --quick: WORK/quick-models)")
    p.add_argument("--work", type=Path, help="cache of intermediate results (default: CACHE/train)")
    p.add_argument("--corpora", type=Path, help="downloaded corpora (default: CACHE/corpora)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reuse-cnn", action="store_true",
                   help="take the CNN an earlier run with the same seed and sizes left in the work "
                        "folder instead of training it again (re-fits everything above it)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes that render examples")
    add_preset_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..engines.cnn import PACKAGED_WEIGHTS   # heavy imports only for this command
    from ..engines.demucs.weights import WeightStore
    from ..training.pipeline import run_training

    cfg = load_config(args.preset)
    cache = cache_dir(cfg)
    work = args.work or cache / "train"
    out = args.out or (work / "quick-models" if args.quick else PACKAGED_WEIGHTS.parent)
    weights = WeightStore(cache).require()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    result = run_training(out, work, args.corpora or cache / "corpora", weights, args.quick,
                          args.seed, max(1, args.workers), log, reuse_cnn=args.reuse_cnn)
    print(f"model card: {result.card}")
    return 0
