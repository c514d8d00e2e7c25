"""The report's charts, drawn with matplotlib (no pyplot: figures are plain objects, safe to draw
in the dashboard's worker threads). Each panel draws into an Axes, so the page's separate SVGs and
the PNG's single picture are the same drawing."""

from __future__ import annotations

import io
import textwrap
import threading

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .explain import sentences
from .view import ReportView

COLOURS = {"ai": "#c0392b", "human": "#2e7d32", "uncertain": "#d99a00"}
WAVE = "#9aa5b1"
PNG_SIZE_IN = (12.0, 10.0)
PNG_DPI = 100                    # so a PNG is 1200 x 1000 pixels
# matplotlib's text layout and font caches are shared between figures: one drawing at a time.
DRAW_LOCK = threading.Lock()
PANEL_SIZE_IN = {"timeline": (11.0, 3.2), "fingerprint": (5.4, 3.0), "demucs": (5.4, 3.0),
                 "evidence": (5.4, 2.6)}


def verdict_colour(verdict: str) -> str:
    return COLOURS.get(verdict, COLOURS["uncertain"])


# -- panels ---------------------------------------------------------------------------------------
def draw_timeline(ax: Axes, view: ReportView) -> None:
    """The CNN's probability per window over the waveform; the windows that decided its score
    shaded, the Demucs excerpts hatched."""
    duration = max(view.duration_s, max((w.end for w in view.windows), default=0.0), 1e-3)
    wave = ax.twinx()
    wave.set_zorder(ax.get_zorder() - 1)
    ax.patch.set_visible(False)
    env = view.envelope
    if env is not None:
        wave.fill_between(env.times, env.lows, env.highs, color=WAVE, alpha=0.55, linewidth=0)
        peak = float(max(np.abs(env.lows).max(initial=0), np.abs(env.highs).max(initial=0), 1e-6))
        wave.set_ylim(-peak * 1.05, peak * 1.05)
    wave.set_yticks([])
    handles = []
    for w in view.decisive_windows():
        ax.axvspan(w.start, w.end, color=verdict_colour("ai" if w.p >= 0.5 else "human"), alpha=0.18,
                   linewidth=0)
    if view.decisive_windows():
        handles.append(Patch(color="#777", alpha=0.3, label="windows that decided the CNN's score"))
    for ex in view.demucs.get("excerpts") or []:
        ax.axvspan(ex["start"], ex["end"], ymin=0, ymax=0.06, facecolor="none", edgecolor="#5b4b8a",
                   hatch="////", linewidth=0.8)
    if view.demucs.get("excerpts"):
        handles.append(Patch(facecolor="none", edgecolor="#5b4b8a", hatch="////",
                             label="excerpts Demucs separated"))
    windows = view.windows
    if windows:
        mids = [(w.start + w.end) / 2 for w in windows]
        (line,) = ax.plot(mids, [w.p for w in windows], color="#1f4e79", linewidth=1.6, marker="o",
                          markersize=2.5, label="CNN P(AI) per 4 s window")
        handles.insert(0, line)
    else:
        ax.text(0.5, 0.5, "no CNN windows in this report (Demucs-only mode)", transform=ax.transAxes,
                ha="center", va="center", color="#555")
    for name, value in (("ai", view.ai_threshold), ("human", view.human_threshold)):
        if np.isfinite(value):
            ax.axhline(value, color=COLOURS[name], linestyle="--", linewidth=1)
            ax.text(duration, value, f" {name} {value:.3g}", color=COLOURS[name], va="center",
                    fontsize=8, clip_on=False)
    ax.set_xlim(0, duration)
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("P(AI)")
    ax.set_title("Timeline: where the CNN fired", loc="left", fontsize=10)
    if handles:
        ax.legend(handles=handles, loc="upper left", fontsize=7, framealpha=0.85)


def draw_fingerprint(ax: Axes, view: ReportView) -> None:
    fp = view.fingerprint
    ax.set_title("Fingerprint: long-term spectrum", loc="left", fontsize=10)
    if fp is None:
        _empty(ax, "no fingerprint evidence in this report\n(written before the fingerprint engine)"
               + (f"\n\nimage score {view.images_score:.2f} at r = {view.images_rate_hz:.0f} Hz"
                  if view.images_score is not None else ""))
        return
    if fp.ltas_db and fp.ltas_hz_step:
        freqs = np.arange(len(fp.ltas_db)) * fp.ltas_hz_step
        ax.plot(freqs / 1000, fp.ltas_db, color="#1f4e79", linewidth=0.8, label="spectrum, envelope removed")
        for f in fp.peaks_hz:
            level = float(np.interp(f, freqs, fp.ltas_db))
            ax.plot(f / 1000, level, "v", color=COLOURS["ai"], markersize=6)
        ax.set_ylabel("dB over the lower envelope")
    else:
        ax.vlines(np.array(fp.peaks_hz) / 1000, 0, 1, color=COLOURS["ai"], linewidth=1.2)
        ax.set_yticks([])
        if not fp.peaks_hz:
            ax.text(0.5, 0.5, "no spectral peaks recorded", transform=ax.transAxes, ha="center", color="#555")
    if fp.band_edge_hz:
        ax.axvline(fp.band_edge_hz / 1000, color="#555", linestyle=":", linewidth=1)
    if fp.peaks_hz:
        ax.plot([], [], "v", color=COLOURS["ai"], label=f"{len(fp.peaks_hz)} matched peaks")
    ax.set_xlabel("frequency (kHz)")
    lines = [f"fingerprint score {fp.score:.2f}" if fp.score is not None else "fingerprint score -",
             f"matched: {fp.matched or 'none'}"]
    if view.images_score is not None:
        lines.append(f"image score {view.images_score:.2f}")
    ax.text(0.99, 0.97, "\n".join(lines), transform=ax.transAxes, ha="right", va="top", fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "#ccc"})
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", fontsize=7, framealpha=0.85)


def draw_demucs(ax: Axes, view: ReportView) -> None:
    ax.set_title("Demucs residual per band vs human music", loc="left", fontsize=10)
    bands = view.residual_bands
    if not bands:
        _empty(ax, f"Demucs did not run\n({view.demucs.get('reason') or 'no reason recorded'})")
        return
    y = np.arange(len(bands))
    ref = view.human_reference
    drawn_range = False
    for i, (key, _, _) in enumerate(bands):
        r = ref.get(key)
        if r is not None:
            ax.plot([r.p05, r.p95], [i, i], color=COLOURS["human"], linewidth=7, alpha=0.3,
                    solid_capstyle="butt")
            ax.plot([r.p50], [i], "|", color=COLOURS["human"], markersize=12)
            drawn_range = True
    ax.plot([b[2] for b in bands], y, "o", color="#1f4e79", markersize=7, label="this file")
    if drawn_range:
        ax.plot([], [], color=COLOURS["human"], linewidth=7, alpha=0.3, label="human music, 5-95 %")
    ax.set_yticks(y, [b[1] for b in bands], fontsize=8)
    ax.set_ylim(len(bands) - 0.4, -0.6)
    ax.margins(x=0.08)
    ax.set_xlabel("residual / mix (dB)" + ("" if drawn_range else "; no human reference shipped with these models"))
    ax.legend(loc="best", fontsize=7, framealpha=0.85)


def draw_evidence(ax: Axes, view: ReportView) -> None:
    """Each source of evidence's P(AI) beside the fused one, against the thresholds."""
    ax.set_title("Evidence", loc="left", fontsize=10)
    rows = [("fused", view.probability)]
    if view.cnn_probability is not None:
        rows.append(("CNN", view.cnn_probability))
    if view.demucs_probability is not None:
        rows.append(("Demucs", view.demucs_probability))
    fp = view.fingerprint
    for name, p in (fp.matches if fp else [])[:3]:
        rows.append((f"fp {name}", p))
    names, values = zip(*rows)
    y = np.arange(len(rows))
    colours = [verdict_colour(_label(p, view)) for p in values]
    ax.barh(y, values, color=colours, height=0.6)
    for i, p in enumerate(values):
        ax.text(min(p + 0.01, 0.9), i, f"{p:.2f}", va="center", fontsize=8)
    for name, value in (("ai", view.ai_threshold), ("human", view.human_threshold)):
        if np.isfinite(value):
            ax.axvline(value, color=COLOURS[name], linestyle="--", linewidth=1)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("P(AI)")


def _label(p: float, view: ReportView) -> str:
    return "ai" if p >= view.ai_threshold else "human" if p <= view.human_threshold else "uncertain"


def _empty(ax: Axes, message: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="#555", fontsize=9)


PANELS = {"timeline": draw_timeline, "fingerprint": draw_fingerprint, "demucs": draw_demucs,
          "evidence": draw_evidence}


# -- output -----------------------------------------------------------------------------------------
def panel_svg(view: ReportView, panel: str) -> str:
    """One panel as an SVG element to inline in a page (text drawn as paths: no fonts needed)."""
    fig = Figure(figsize=PANEL_SIZE_IN[panel], layout="constrained")
    PANELS[panel](fig.add_subplot(), view)
    return svg_element(fig)


def svg_element(fig: Figure) -> str:
    """The figure as an inline <svg> element. Text stays text (the page's sans-serif draws it), so
    it can be selected, searched and read by screen readers."""
    buf = io.StringIO()
    with rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]


def report_png(view: ReportView) -> bytes:
    """The whole picture in one PNG: the verdict and the sentences that explain it, then every panel."""
    fig = Figure(figsize=PNG_SIZE_IN, dpi=PNG_DPI)
    grid = fig.add_gridspec(4, 2, height_ratios=[0.9, 1.4, 1.2, 1.1], left=0.07, right=0.94,
                            top=0.97, bottom=0.05, hspace=0.55, wspace=0.25)
    head = fig.add_subplot(grid[0, :])
    head.axis("off")
    head.text(0, 1, f"{view.name}:  {view.verdict.upper()}  P(AI) {view.probability:.2f}",
              fontsize=15, weight="bold", color=verdict_colour(view.verdict), va="top")
    body = "\n".join(textwrap.fill(s, 150) for s in sentences(view))
    head.text(0, 0.68, body, fontsize=8.5, va="top", linespacing=1.35)
    draw_timeline(fig.add_subplot(grid[1, :]), view)
    draw_fingerprint(fig.add_subplot(grid[2, 0]), view)
    draw_demucs(fig.add_subplot(grid[2, 1]), view)
    draw_evidence(fig.add_subplot(grid[3, 0]), view)
    codec = fig.add_subplot(grid[3, 1])
    codec.axis("off")
    codec.set_title("Codec history", loc="left", fontsize=10)
    codec.text(0, 0.9, "\n".join(f"{k}: {v}" for k, v in codec_rows(view)), fontsize=8.5, va="top",
               linespacing=1.4)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PNG_DPI, metadata={"Software": None})
    return buf.getvalue()


def codec_rows(view: ReportView) -> list[tuple[str, str]]:
    c = view.codec
    bandwidth = c.get("bandwidth_hz")
    return [
        ("container / codec", f"{c.get('container', '?')} / {c.get('codec', '?')}"),
        ("lossy", "yes" if view.lossy else "no"),
        ("why", c.get("reason", "")),
        ("bandwidth", f"{bandwidth / 1000:.1f} kHz" if bandwidth else "-"),
        ("cliff at the band edge", f"{c.get('cliff_db', 0):.0f} dB"),
    ]
