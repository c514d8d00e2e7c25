"""`aimusicd batch SOURCE... --out DIR [--ray [ADDRESS]]`: a catalogue or a day's uploads."""

from __future__ import annotations

import sys
from pathlib import Path

from ..config import MODES, load_config
from .common import add_preset_argument, apply_threads


def add_parser(sub) -> None:
    p = sub.add_parser("batch", help="analyse folders, list files or object-store URIs into a results table")
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="folder (walked recursively), list file (one path or URI a line) or URI (s3://, gs://, ...)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="reports, results.parquet and the journal a rerun resumes from")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run on Ray: a local instance, or ADDRESS (auto, host:port, ray://host:port)")
    p.add_argument("--mode", choices=MODES, help="engines to run (default: [engines] mode, auto)")
    p.add_argument("--csv", action="store_true", help="also write results.csv")
    add_preset_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..batch import BatchOptions, run_batch
    from .scan import result_line, summary_line

    cfg = load_config(args.preset)
    if args.ray is None:
        apply_threads(cfg)      # on Ray each actor sets its own threads
    opts = BatchOptions(sources=args.sources, out=args.out, mode=args.mode or cfg.engines.mode,
                        ray=args.ray, csv=args.csv)

    def echo(row) -> None:
        if row.error:
            print(result_line("error", "-", "-", f"{row.total_s or 0:.1f}s", row.error), flush=True)

    result = run_batch(cfg, opts, echo=echo)
    summary = summary_line([r.verdict for r in result.rows if not r.error], len(result.failed), result.seconds)
    print(f"{summary} ({result.analysed} analysed, {result.already_done} already in {args.out}, "
          f"{result.duplicates} duplicates; table {result.tables[0]})", file=sys.stdout)
    return 1 if result.failed else 0
