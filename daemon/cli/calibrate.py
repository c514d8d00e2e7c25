"""`aimusicd calibrate --human DIR... [--fpr 0.005]`: thresholds that hold the false-positive rate
on your own human catalogue, written where `load_config` merges them."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from ..config import cache_dir, load_config
from ..errors import UsageError
from .common import add_preset_argument
from .learn import LEARN_CONDITIONS


def add_parser(sub) -> None:
    from ..evaluation.codecs import CONDITIONS

    p = sub.add_parser("calibrate", help="set the thresholds on your own human music")
    p.add_argument("--human", type=Path, action="append", required=True, metavar="DIR",
                   help="folder of human music from your catalogue (repeatable)")
    p.add_argument("--fpr", type=float, default=0.005,
                   help="highest share of your excerpts called AI, in every condition (default 0.005)")
    p.add_argument("--conditions", nargs="+", choices=list(CONDITIONS), default=list(LEARN_CONDITIONS),
                   help="codec conditions applied to every excerpt (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_preset_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config.load import thresholds_path
    from ..engines.cnn import PACKAGED_WEIGHTS
    from ..engines.fingerprint import FingerprintEngine
    from ..engines.fusion import Fusion
    from ..engines.packs import load_packs, packs_root
    from ..hashing import sha256_file
    from ..learning import calibrate, features

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if not 0.0 < args.fpr < 0.5:
        raise UsageError(f"--fpr {args.fpr}: give a rate between 0 and 0.5, e.g. 0.005")
    cfg = load_config(args.preset)
    files = features.find_files(args.human, cfg.watch.patterns, cfg.watch.ignore)
    sources = features.sources_of([], files)
    planned, minutes = features.planned_excerpts(sources)
    calibrate.check_enough(planned, minutes, len(sources), args.fpr, args.human)   # before the long part
    fusion = Fusion.load()          # the shipped thresholds: "before" is what ships
    packs = [p.model for p in load_packs(packs_root(), cfg.models.packs)]
    generators = FingerprintEngine.load().generators
    measured, failed = features.measure(sources, args.conditions, cache_dir(cfg) / "features",
                                        cnn_weights=PACKAGED_WEIGHTS, cnn_sha256=sha256_file(PACKAGED_WEIGHTS),
                                        log=log)
    for path, reason in failed:
        log(f"skipped (unreadable): {reason}")
    calibrate.check_enough(*calibrate.measured_excerpts(measured), args.fpr, args.human)
    result = calibrate.calibrate(measured, fusion, generators, args.fpr, packs)
    path = thresholds_path()
    calibrate.write_thresholds(path, result, args.fpr, args.human, args.conditions)
    if args.json:
        print(json.dumps({**asdict(result), "path": str(path), "skipped": [str(p) for p, _ in failed]}, indent=2))
    else:
        print(calibrate.format_checks(result))
        print(f"thresholds written to {path}" + (f" ({len(failed)} unreadable files skipped)" if failed else ""))
    return 0
