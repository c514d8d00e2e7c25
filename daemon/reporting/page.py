"""The report page: one self-contained HTML file (styles and charts inlined, nothing fetched), the
same for `aimusicd report` and the dashboard."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from . import explain, figures
from .view import ReportView

_env = Environment(loader=PackageLoader("daemon.reporting", "templates"),
                   autoescape=select_autoescape(("html", "j2")), trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True)
class Link:
    href: str
    label: str


@dataclass(frozen=True)
class IndexEntry:
    href: str
    name: str
    verdict: str
    probability: float
    decided_by: str
    lossy: bool


def report_html(view: ReportView, nav: list[Link] | None = None) -> str:
    with figures.DRAW_LOCK:
        charts = {name: Markup(figures.panel_svg(view, name)) for name in figures.PANELS}
    return _env.get_template("report.html.j2").render(
        v=view, charts=charts, sentences=explain.sentences(view),
        thresholds_text=explain.thresholds_in_words(view), codec_rows=figures.codec_rows(view),
        colour=figures.verdict_colour(view.verdict), nav=nav or [], fmt=_fmt,
        timings=view.doc.get("timings") or {},
    )


def report_png(view: ReportView) -> bytes:
    with figures.DRAW_LOCK:
        return figures.report_png(view)


def index_html(entries: list[IndexEntry], title: str) -> str:
    return _env.get_template("index.html.j2").render(
        entries=entries, title=title, colours=figures.COLOURS)


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"
