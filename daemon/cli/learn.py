"""`aimusicd learn --ai DIR --name NAME [--human DIR]`: fit a model pack for a new generator."""

from __future__ import annotations

import sys
from pathlib import Path

from ..config import cache_dir, load_config
from ..config.load import thresholds_path
from ..errors import UsageError
from .common import add_preset_argument

LEARN_CONDITIONS = ("as-given", "pcm16", "mp3-128", "mp3-64", "aac-128", "opus-64")


def add_parser(sub) -> None:
    from ..evaluation.codecs import CONDITIONS

    p = sub.add_parser("learn", help="fit a model pack for a new generator from examples of its output")
    p.add_argument("--ai", type=Path, action="append", required=True, metavar="DIR",
                   help="folder of the generator's output (repeatable)")
    p.add_argument("--name", required=True, help="the pack's name, e.g. the generator's")
    p.add_argument("--human", type=Path, action="append", default=[], metavar="DIR",
                   help="folder of human music (repeatable; default: the packaged human reference)")
    p.add_argument("--human-reference", type=Path, metavar="FILE",
                   help="human reference statistics used without --human (default: the packaged one)")
    p.add_argument("--description", default="", help="one line for the model card")
    p.add_argument("--fpr", type=float, default=0.01,
                   help="highest false-positive rate on held-out human excerpts (default 0.01)")
    p.add_argument("--conditions", nargs="+", choices=list(CONDITIONS), default=list(LEARN_CONDITIONS),
                   help="codec conditions applied to every example (default: %(default)s)")
    p.add_argument("--demucs", action="store_true",
                   help="add the Demucs engine's stem features (needs --human and the HTDemucs weights; slow on "
                        "a CPU); such a pack scores only files the Demucs engine runs on")
    p.add_argument("--force", action="store_true", help="replace a pack of the same name")
    p.add_argument("--json", action="store_true", help="print the pack's metadata as JSON")
    add_preset_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..engines.cnn import PACKAGED_WEIGHTS
    from ..engines.demucs.weights import WeightStore
    from ..engines.fingerprint import GENERATORS_DIR
    from ..engines.packs import check_name, packs_root, write_pack
    from ..hashing import sha256_file
    from ..learning import features, learn
    from ..learning.calibrate import forget_threshold

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    cfg = load_config(args.preset)
    check_name(args.name)
    if (GENERATORS_DIR / f"{args.name}.json").is_file():
        raise UsageError(f"{args.name} is the name of a shipped generator model: give the pack another")
    if (packs_root() / args.name).exists() and not args.force:
        raise UsageError(f"pack {args.name} exists at {packs_root() / args.name}; pass --force to replace it")
    if not 0.0 < args.fpr < 0.5:
        raise UsageError(f"--fpr {args.fpr}: give a rate between 0 and 0.5, e.g. 0.01")
    if args.demucs and not args.human:
        raise UsageError("--demucs needs --human DIR: the human reference holds no Demucs features")
    reference = None if args.human else learn.load_reference(args.human_reference or learn.REFERENCE_PATH)
    demucs_weights = WeightStore(cache_dir(cfg)).require() if args.demucs else None   # before the long part
    ai = features.find_files(args.ai, cfg.watch.patterns, cfg.watch.ignore)
    human = features.find_files(args.human, cfg.watch.patterns, cfg.watch.ignore) if args.human else []
    sources = features.sources_of(ai, human)
    learn.check_enough(sources, 0, bool(args.human))      # before the long part
    # With human music of the user's own, every piece of the fast pass; against the reference
    # (statistics of spectra only), the spectrum.
    cnn = {"cnn_weights": PACKAGED_WEIGHTS, "cnn_sha256": sha256_file(PACKAGED_WEIGHTS)} if args.human else {}
    cache = cache_dir(cfg) / "features"
    measured, failed = features.measure(sources, args.conditions, cache, log=log, **cnn)
    if args.demucs:
        failed += features.measure_demucs(sources, measured, args.conditions, cache, demucs_weights,
                                          sha256_file(demucs_weights), cfg.engines.demucs_excerpts,
                                          cfg.engines.demucs_device, log=log)
    for path, reason in failed:
        log(f"skipped (unreadable): {reason}")
    bad = {str(p) for p, _ in failed}
    readable = [s for s in sources if str(s.path) not in bad]
    learn.check_enough(readable, len(failed), bool(args.human))
    pieces = ("spectrum", "embedding", "images") + (("demucs",) if args.demucs else ()) if args.human else ("spectrum",)
    table = learn.table_of([m for m in measured if str(sources[m.source].path) not in bad], sources, pieces)
    if reference is not None:
        table = learn.with_reference(table, reference)
    log(f"fitting on {len(table.y)} excerpt rows ({'+'.join(pieces)}): each way of combining them, "
        f"cross-validated by track in {learn.FOLDS} folds")
    fit = learn.fit_pack(args.name, args.description, table, args.fpr,
                         "folders" if args.human else "reference")
    files = learn.pack_files(fit, sources, measured, args.fpr, failed)
    # the replaced pack's threshold first: if its file cannot be written, the old pack is still there
    if (packs_root() / args.name).exists() and forget_threshold(thresholds_path(), args.name):
        log(f"the calibrated threshold of the replaced pack {args.name} was dropped from {thresholds_path()}: "
            "rerun `aimusicd calibrate` to set the new one's")
    target = write_pack(packs_root(), args.name, files, args.force)
    if args.json:
        print(files["pack.json"].decode(), end="")
    else:
        print(learn.format_metrics(fit))
        print(f"pack {args.name} written to {target}" + (f" ({len(failed)} unreadable files skipped)" if failed else ""))
    return 0
