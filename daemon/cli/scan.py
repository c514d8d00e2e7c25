"""`aimusicd scan PATH...`: analyse files now, one line each, a JSON report per file."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..config import MODES, load_config, reports_path_for
from ..errors import AimusicError
from ..files import audio_files_in
from .common import add_preset_argument, apply_threads


def add_parser(sub) -> None:
    p = sub.add_parser("scan", help="analyse audio files or folders now")
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    p.add_argument("--mode", choices=MODES, help="engines to run (default: [engines] mode, auto)")
    p.add_argument("--json", action="store_true", help="print the reports as a JSON array")
    p.add_argument("--report-dir", type=Path, metavar="DIR", help="write reports here")
    p.add_argument("--no-report", action="store_true", help="write no report files")
    p.add_argument("--recursive", "-r", action="store_true", help="descend into sub-folders")
    add_preset_argument(p)
    p.set_defaults(func=run)


def result_line(verdict: str, prob: str, engines: str, seconds: str, path: str) -> str:
    return f"{verdict:<9} {prob:>6}  {engines:<11} {seconds:>7}  {path}"


def run(args) -> int:
    from ..analysis import Analyzer
    from ..report import write_report

    cfg = load_config(args.preset)
    apply_threads(cfg)
    mode = args.mode or cfg.engines.mode
    files, missing = [], []
    for raw in args.paths:
        path = Path(raw)
        if path.is_dir():
            files += audio_files_in(path, cfg.watch.patterns, cfg.watch.ignore, args.recursive)
        else:
            (files if path.exists() else missing).append(path)
    analyzer = Analyzer(cfg)
    out = sys.stdout
    reports, failed = [], []
    for path in missing:
        failed.append((path, f"{path}: file not found"))
    if not args.json:
        print(result_line("verdict", "p(ai)", "engines", "seconds", "file"), file=out)
        for path, msg in failed:
            print(result_line("error", "-", "-", "-", msg), file=out)
    started = time.perf_counter()
    progress = progress_bar(len(files))
    for decoded in analyzer.read_ahead(files):
        path = decoded.path
        t0 = time.perf_counter()
        try:
            report = analyzer.analyze(path, mode, decoded)
        except AimusicError as exc:
            failed.append((path, str(exc)))
            if not args.json:
                progress.write(result_line("error", "-", "-", f"{time.perf_counter() - t0:.1f}s", str(exc)))
            progress.update()
            continue
        if args.report_dir or (cfg.reports.enabled and not args.no_report):
            write_report(report, reports_path_for(cfg, path.resolve(), args.report_dir))
        reports.append(report)
        if not args.json:
            match = report.fingerprint.matched if report.fingerprint else None
            matched = f"  (matched: {match.name} p={match.probability:.3f})" if match else ""
            progress.write(result_line(report.verdict, f"{report.probability_ai:.3f}", report.engines_ran,
                                       f"{report.timings['total_s']:.1f}s", f"{path}{matched}"))
        progress.update()
    progress.close()
    summary = summary_line([r.verdict for r in reports], len(failed), time.perf_counter() - started)
    if args.json:
        doc = {"reports": [r.to_dict() for r in reports],
               "errors": [{"file": str(p), "error": e} for p, e in failed]}
        json.dump(doc, out, indent=2)
        out.write("\n")
        print(summary, file=sys.stderr)
    else:
        print(summary, file=out)
    return 1 if failed else 0


def summary_line(verdicts: list[str], failed: int, seconds: float) -> str:
    counts = {v: verdicts.count(v) for v in ("ai", "human", "uncertain")}
    return (f"{len(verdicts) + failed} files: {counts['ai']} ai, {counts['human']} human, "
            f"{counts['uncertain']} uncertain, {failed} failed in {seconds:.1f} s")


def progress_bar(total: int):
    """A progress bar on stderr when it is a terminal and there is more than one file."""
    from tqdm import tqdm

    return tqdm(total=total, unit="file", file=sys.stderr, leave=False,
                disable=total < 2 or not sys.stderr.isatty())
