"""`aimusicd eval --human DIR --ai DIR`: measure the shipped models on labelled folders of your own.

Each file is analysed as given and after each codec condition (applied here, as real files),
and a table of condition x engine is printed. The command never trains or tunes anything, so
public sets such as SONICS or FakeMusicCaps (downloaded by you) give honest figures: put their
real songs in one folder and their generated ones in the other.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from ..config import load_config
from .common import add_preset_argument, apply_threads


def add_parser(sub) -> None:
    from ..evaluation.codecs import CONDITIONS

    p = sub.add_parser("eval", help="measure accuracy on labelled folders of human and AI music")
    p.add_argument("--human", type=Path, required=True, help="folder of human-made music")
    p.add_argument("--ai", type=Path, required=True, help="folder of AI-generated music")
    p.add_argument("--conditions", nargs="+", choices=list(CONDITIONS), default=list(CONDITIONS),
                   help="codec conditions to apply (default: all)")
    p.add_argument("--engines", choices=("both", "cnn"), default="both",
                   help="cnn: skip the Demucs engine (minutes instead of hours for large sets)")
    p.add_argument("--demucs-excerpts", type=int, help="excerpts per file (default: [engines])")
    p.add_argument("--limit", type=int, help="at most this many files per folder")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.add_argument("--plot", type=Path, metavar="OUT",
                   help="also write a PNG of the ROC curves (the reported P(AI)) per codec condition")
    add_preset_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..analysis import Analyzer
    from ..evaluation.codecs import CONDITIONS
    from ..evaluation.table import evaluate_folders, folder_items, format_table

    overrides = {"engines": {"demucs_excerpts": args.demucs_excerpts}} if args.demucs_excerpts else None
    cfg = load_config(args.preset, overrides)
    apply_threads(cfg)
    items = folder_items(args.human, args.ai, cfg.watch.patterns, cfg.watch.ignore, args.limit)
    chosen = [spec for name, spec in CONDITIONS.items() if name in args.conditions]

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    log(f"{sum(i.label == 0 for i in items)} human and {sum(i.label == 1 for i in items)} AI files, "
        f"{len(chosen)} conditions")
    scores: dict[str, list[tuple[int, float]]] = {}

    def keep(condition: str, item, report) -> None:
        scores.setdefault(condition, []).append((item.label, report.probability_ai))

    with tempfile.TemporaryDirectory(prefix="aimusicd-eval-") as work:
        rows = evaluate_folders(Analyzer(cfg), items, chosen, args.engines == "both", Path(work), log,
                                on_report=keep if args.plot else None)
    if args.plot:
        import numpy as np

        from ..reporting.plots import roc_figure, save_png

        curves = {c: (np.array([y for y, _ in v]), np.array([p for _, p in v])) for c, v in scores.items()}
        engine = "fused (full)" if args.engines == "both" else "cnn+img"
        log(f"plot: {save_png(roc_figure(curves, engine), args.plot)}")
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        print(format_table(rows))
    return 0
