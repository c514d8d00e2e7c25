"""`aimusicd report PATH... [--html OUT] [--png OUT]`: a picture of each analysis.

A PATH is an audio file (analysed first, its JSON report written as `scan` writes it), an existing
`.aimusic.json`, or a folder of either. Without --html or --png the page goes next to the JSON
report (`<file>.aimusic.html`). With several files or a folder, OUT is a folder: one page (or PNG)
per file, and for pages an index.html.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import MODES, load_config, reports_path_for
from ..config.paths import REPORT_SUFFIX
from ..errors import AimusicError
from ..files import audio_files_in
from .common import add_preset_argument, apply_threads


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="an HTML page (and PNG) showing why each file got its verdict")
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files, .aimusic.json reports or folders")
    p.add_argument("--html", type=Path, metavar="OUT", help="page to write (a folder for several files)")
    p.add_argument("--png", type=Path, metavar="OUT", help="PNG to write (a folder for several files)")
    p.add_argument("--mode", choices=MODES, help="engines for audio files (default: [engines] mode)")
    p.add_argument("--recursive", "-r", action="store_true", help="descend into sub-folders")
    add_preset_argument(p)
    p.set_defaults(func=run)


@dataclass
class Item:
    path: Path        # what the user named (or found in a folder)
    is_report: bool


def collect(paths: list[str], patterns: list[str], ignore: list[str], recursive: bool) -> tuple[list[Item], bool]:
    """The files to draw and whether they came as a set (several, or a folder)."""
    items: list[Item] = []
    as_set = len(paths) > 1
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            as_set = True
            items += [Item(p, False) for p in audio_files_in(path, patterns, ignore, recursive)]
            found = path.rglob(f"*{REPORT_SUFFIX}") if recursive else path.glob(f"*{REPORT_SUFFIX}")
            items += [Item(p, True) for p in sorted(found)
                      if not p.with_name(p.name.removesuffix(REPORT_SUFFIX)).exists()]
        else:
            items.append(Item(path, path.name.endswith(REPORT_SUFFIX) or path.suffix == ".json"))
    return items, as_set


def _output(out: Path | None, as_set: bool, stem: str, suffix: str, used: set[Path]) -> Path | None:
    if out is None:
        return None
    if not as_set and out.suffix.lower() == suffix:
        return out
    target = out / f"{stem}{suffix}"
    n = 1
    while target in used:                     # two files of one name from different folders
        n += 1
        target = out / f"{stem}-{n}{suffix}"
    used.add(target)
    return target


def run(args) -> int:
    from ..reporting.page import IndexEntry, Link, index_html, report_html, report_png, write_text
    from ..reporting.view import read_report, view_of
    from ..report import write_report

    cfg = load_config(args.preset)
    items, as_set = collect(args.paths, cfg.watch.patterns, cfg.watch.ignore, args.recursive)
    analyzer = None
    used: set[Path] = set()
    entries: list[IndexEntry] = []
    failed = 0
    for item in items:
        try:
            if item.is_report:
                doc, source = read_report(item.path), item.path
            else:
                if not item.path.exists():
                    raise AimusicError(f"{item.path}: file not found")
                if analyzer is None:
                    from ..analysis import Analyzer

                    apply_threads(cfg)
                    analyzer = Analyzer(cfg)
                report = analyzer.analyze(item.path, args.mode or cfg.engines.mode)
                source = write_report(report, reports_path_for(cfg, item.path.resolve())) \
                    if cfg.reports.enabled else None
                doc = report.to_dict()
            view = view_of(doc, source)
            stem = Path(view.file).name or item.path.name.removesuffix(REPORT_SUFFIX)
            html_out = _output(args.html, as_set, stem, ".html", used)
            png_out = _output(args.png, as_set, stem, ".png", used)
            if html_out is None and png_out is None:
                base = source if source is not None else item.path
                html_out = base.with_name(base.name.removesuffix(".json") + ".html")
            written = []
            if html_out is not None:
                nav = [Link("index.html", "all reports")] if as_set and args.html else None
                written.append(write_text(html_out, report_html(view, nav)))
                entries.append(IndexEntry(html_out.name, view.name, view.verdict, view.probability,
                                          view.doc.get("decided_by", ""), view.lossy))
            if png_out is not None:
                png_out.parent.mkdir(parents=True, exist_ok=True)
                png_out.write_bytes(report_png(view))
                written.append(png_out)
            print(f"{view.verdict:<9} {view.probability:6.3f}  {item.path} -> "
                  + ", ".join(str(w) for w in written))
        except AimusicError as exc:
            failed += 1
            print(f"{'error':<9} {'-':>6}  {exc}")
    if as_set and args.html and entries:
        index = write_text(args.html / "index.html",
                           index_html(entries, f"aimusicd reports, {time.strftime('%Y-%m-%d %H:%M')}"))
        print(f"index: {index}")
    if not items:
        print("no audio files or reports found", file=sys.stderr)
        return 1
    return 1 if failed else 0
