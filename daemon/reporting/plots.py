"""Plots over many analyses: verdicts per day (`aimusicd history --plot`, the dashboard's history
page) and ROC curves per codec condition (`aimusicd eval --plot`)."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure

from ..services.store import Job
from .figures import COLOURS, DRAW_LOCK, svg_element

FAILED_COLOUR = "#6b7785"
ORDER = ("ai", "uncertain", "human", "failed")


def _day(job: Job) -> date:
    return datetime.fromtimestamp(job.finished or job.created).date()


def _verdict(job: Job) -> str:
    return job.verdict if job.state == "done" and job.verdict else "failed"


def verdict_timeline(jobs: Iterable[Job], size_in: tuple[float, float] = (10.0, 3.2)) -> Figure:
    """Stacked bars: how many files got each verdict, per day."""
    counts = Counter((_day(j), _verdict(j)) for j in jobs)
    days = sorted({d for d, _ in counts})
    fig = Figure(figsize=size_in, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title("Verdicts per day", loc="left", fontsize=10)
    if not days:
        ax.text(0.5, 0.5, "no analyses in this period", transform=ax.transAxes, ha="center", color="#555")
        ax.set_xticks([])
        ax.set_yticks([])
        return fig
    x = date2num(days)
    bottom = np.zeros(len(days))
    for verdict in ORDER:
        heights = np.array([counts.get((d, verdict), 0) for d in days], float)
        if heights.any():
            ax.bar(x, heights, bottom=bottom, width=0.8, label=verdict,
                   color=COLOURS.get(verdict, FAILED_COLOUR))
            bottom += heights
    locator = AutoDateLocator(maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_xlim(x.min() - 0.7, x.max() + 0.7)
    ax.set_ylabel("files")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8, ncols=4, loc="upper left")
    return fig


def verdict_timeline_svg(jobs: Sequence[Job]) -> str:
    with DRAW_LOCK:
        return svg_element(verdict_timeline(jobs))


def roc_points(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every threshold (ties taken together)."""
    order = np.argsort(-p, kind="mergesort")
    y, p = np.asarray(y)[order].astype(bool), np.asarray(p)[order]
    distinct = np.r_[np.nonzero(np.diff(p))[0], len(p) - 1]
    tp, fp = np.cumsum(y)[distinct], np.cumsum(~y)[distinct]
    return (np.r_[0, fp / max(1, (~y).sum())], np.r_[0, tp / max(1, y.sum())])


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], engine: str) -> Figure:
    """curves: condition -> (labels, P(AI)). One curve per condition, its AUC in the legend."""
    from ..evaluation.metrics import roc_auc

    fig = Figure(figsize=(6.4, 5.6), layout="constrained")
    ax = fig.add_subplot()
    for condition, (y, p) in curves.items():
        fpr, tpr = roc_points(y, p)
        ax.plot(fpr, tpr, linewidth=1.5, label=f"{condition} (AUC {roc_auc(y, p):.3f})")
    ax.plot([0, 1], [0, 1], color="#aaa", linestyle=":", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("human music called AI (false-positive rate)")
    ax.set_ylabel("AI music found (true-positive rate)")
    ax.set_title(f"ROC per codec condition, engine {engine}", loc="left", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def save_png(fig: Figure, path: Path, dpi: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi, metadata={"Software": None})
    return path
