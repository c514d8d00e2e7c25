"""`aimusicd report` on real files, `history --plot` and `eval --plot`: pages that parse, carry
everything inline, say why, and PNGs of the promised size."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from daemon.reporting import explain, figures
from daemon.reporting.page import report_html, report_png
from daemon.reporting.view import (PACKAGED_HUMAN_REFERENCE, HumanRange, ReportView, load_human_reference,
                                   view_of)

FORMATS = ("music.wav", "music.flac", "music.mp3", "music.ogg", "music.m4a", "music_24bit_48k.wav")
VOID = {"meta", "br", "input", "img", "link", "hr", "col", "area", "base", "wbr", "source", "path",
        "rect", "circle", "line", "polyline", "polygon", "use", "ellipse", "stop"}


class StrictPage(HTMLParser):
    """Every element closed in order, ids collected, and any reference to something outside the page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.ids: dict[str, str] = {}
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids[a["id"]] = tag
        for key in ("src", "href", "xlink:href"):
            value = a.get(key) or ""
            if value.startswith(("http:", "https:", "//")) or (tag in ("script", "img") and key == "src"):
                self.external.append(f"<{tag} {key}={value}>")
        if tag == "link":
            self.external.append(f"<link {a}>")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> StrictPage:
    page = StrictPage()
    page.feed(html)
    page.close()
    assert page.stack == [], f"unclosed elements: {page.stack}"
    assert page.external == [], f"the page fetches things: {page.external}"
    return page


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def aimusicd(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "daemon", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=240)


EXPECTED_PNG = (int(figures.PNG_SIZE_IN[0] * figures.PNG_DPI), int(figures.PNG_SIZE_IN[1] * figures.PNG_DPI))


@pytest.mark.slow
def test_report_on_files_in_several_formats_writes_parsed_pages_pngs_and_an_index(fixtures_dir, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in FORMATS:
        shutil.copy(fixtures_dir / "good" / name, src / name)
    shutil.copy(fixtures_dir / "bad" / sorted(p.name for p in (fixtures_dir / "bad").iterdir())[0],
                src / "broken.wav")
    proc = aimusicd("report", str(src), "--mode", "cnn", "--html", str(tmp_path / "pages"),
                    "--png", str(tmp_path / "png"), cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr          # the broken file counts
    errors = [line for line in proc.stdout.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "broken.wav" in errors[0], proc.stdout
    index = parse((tmp_path / "pages" / "index.html").read_text())
    assert "reports" in index.ids
    for name in FORMATS:
        report = json.loads((src / f"{name}.aimusic.json").read_text())   # the sidecar, as scan writes it
        page = parse((tmp_path / "pages" / f"{name}.html").read_text())
        text = " ".join(page.text)
        assert {"verdict", "timeline", "fingerprint", "demucs", "codec", "why"} <= set(page.ids)
        assert f"{report['probability_ai']:.3f}" in text and report["verdict"] in text
        assert "Verdict" in text and ("has been through a lossy codec" in text) == report["codec"]["lossy"]
        assert name in text
        assert png_size((tmp_path / "png" / f"{name}.png").read_bytes()) == EXPECTED_PNG
    assert f'href="{FORMATS[0]}.html"' in (tmp_path / "pages" / "index.html").read_text()


@pytest.mark.slow
def test_report_of_one_existing_json_goes_where_asked(fixtures_dir, tmp_path):
    audio = tmp_path / "mix.flac"
    shutil.copy(fixtures_dir / "good" / "music.flac", audio)
    assert aimusicd("scan", "--mode", "cnn", str(audio), cwd=tmp_path).returncode == 0
    sidecar = tmp_path / "mix.flac.aimusic.json"
    proc = aimusicd("report", str(sidecar), "--html", str(tmp_path / "one.html"),
                    "--png", str(tmp_path / "one.png"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = parse((tmp_path / "one.html").read_text())
    assert "timeline" in page.ids
    assert png_size((tmp_path / "one.png").read_bytes()) == EXPECTED_PNG
    proc = aimusicd("report", str(sidecar), cwd=tmp_path)            # no OUT: next to the report
    assert proc.returncode == 0 and (tmp_path / "mix.flac.aimusic.html").is_file()


def _full_report(tmp_path: Path, **changes) -> dict:
    doc = {
        "schema": "aimusicd.report/1", "file": str(tmp_path / "gone.wav"), "sha256": "0" * 64,
        "duration_s": 30.0, "sample_rate": 44100, "channels": 2,
        "codec": {"container": "WAV", "codec": "PCM_16", "lossy_container": False, "bandwidth_hz": 16000.0,
                  "cliff_db": 31.0, "lossy": True, "reason": "band-limited at 16.0 kHz with a 31 dB cliff"},
        "mode": "full", "verdict": "ai", "probability_ai": 0.97, "decided_by": "cnn+images+demucs",
        "thresholds": {"ai": 0.9, "human": 0.2}, "fusion_model": "fusion-test",
        "engines": {
            "cnn": {"model": "cnn-test", "model_sha256": "1" * 64, "probability_ai": 0.55, "logit": 0.2,
                    "windows": [{"start": s, "end": s + 4.0, "p": p}
                                for s, p in zip(range(0, 26, 2), [0.2, 0.4, 0.9, 0.95, 0.3, 0.5, 0.6,
                                                                  0.7, 0.2, 0.1, 0.8, 0.6, 0.5])]},
            "images": {"score": 1.8, "latent_rate_hz": 2756.25},
            "demucs": {"ran": True, "reason": "mode full", "model": "htdemucs", "model_sha256": "2" * 64,
                       "device": "cpu", "excerpts": [{"start": 3.0, "end": 10.8}, {"start": 15.0, "end": 22.8}],
                       "features": {"residual_db": -34.0, "residual_db_0_200": -40.0, "residual_db_200_800": -36.0,
                                    "residual_db_800_3000": -33.0, "residual_db_3000_8000": -30.0,
                                    "residual_db_8000_16000": -28.0, "residual_db_16000_nyq": -12.0},
                       "probability_ai": 0.96},
            "fingerprint": {"score": 3.2, "logit": 2.9, "band_edge_hz": 16000.0, "peaks_hz": [2756.0, 5512.0],
                            "matched": "suno-like", "matches": [{"name": "suno-like", "probability": 0.94},
                                                                {"name": "other", "probability": 0.08}],
                            "ltas_db": [0.0] * 100 + [6.0] + [0.0] * 99 + [5.0] + [0.0] * 171,
                            "ltas_hz_step": 27.5625},
        },
        "timings": {"total_s": 12.0}, "created": "2026-11-30T12:00:00+0000", "version": "0.1.0",
    }
    doc.update(changes)
    return doc


def test_page_shows_fingerprint_matches_and_human_ranges_when_the_report_has_them(tmp_path):
    reference = {"residual_db_0_200": HumanRange(-33.0, -29.0, -25.0),
                 "residual_db_200_800": HumanRange(-32.0, -28.0, -24.0)}
    view = view_of(_full_report(tmp_path), None, human_reference=reference)
    assert view.envelope is None                    # the audio is gone: the page still draws
    html = report_html(view)
    page = parse(html)
    text = " ".join(page.text)
    assert "suno-like" in text and "Demucs residual decided" in text and "lossy codec" in text
    assert "2 matched peaks" in html and "human music, 5-95 %" in html   # chart legends, as SVG text
    assert "16k-Nyquist" in html
    decisive = view.decisive_windows()
    assert [w.p for w in decisive] == [0.9, 0.95]   # the CNN leans AI: its two strongest windows
    assert png_size(report_png(view)) == EXPECTED_PNG


def test_older_reports_without_fingerprint_or_demucs_still_render(tmp_path):
    doc = _full_report(tmp_path, verdict="human", probability_ai=0.05, decided_by="cnn")
    del doc["engines"]["fingerprint"]
    doc["engines"]["demucs"] = {"ran": False, "reason": "cnn confident", "excerpts": [], "features": {}}
    view = view_of(doc, None, human_reference={})
    html = report_html(view)
    text = " ".join(parse(html).text)
    assert "Verdict human-made" in text and "Demucs did not run (cnn confident)" in text
    assert "no fingerprint evidence in this report" in html
    assert png_size(report_png(view)) == EXPECTED_PNG


def test_explanation_names_the_deciding_evidence(tmp_path):
    view = ReportView(_full_report(tmp_path), None)
    said = explain.sentences(view)
    assert said[0].startswith("Verdict AI-generated: the probability of AI is 0.97")
    assert "lossy codec" in said[1]
    assert "CNN's evidence is weak (p 0.55" in said[2] and "the Demucs residual decided" in said[2]
    ignored = ReportView(_full_report(tmp_path, decided_by="cnn+images"), None)
    assert "gives the Demucs evidence no weight" in explain.sentences(ignored)[2]
    by_fingerprint = ReportView(_full_report(tmp_path, probability_ai=0.62), None)
    assert "below the AI threshold, but a generator fingerprint matched" in explain.sentences(by_fingerprint)[0]


def test_explanation_says_which_evidence_kept_a_low_probability_from_human(tmp_path):
    odd = ReportView(_full_report(tmp_path, verdict="uncertain", probability_ai=0.1,
                                  atypical=["images_score", "fingerprint_logit"]), None)
    said = explain.sentences(odd)[0]
    assert said.startswith("Verdict uncertain: the probability of AI is 0.10, at or below the human threshold 0.2")
    assert "the decoder-image score and the closest generator fingerprint's logit lie outside" in said
    between = ReportView(_full_report(tmp_path, verdict="uncertain", probability_ai=0.5), None)
    assert "between the human (0.2) and AI (0.9) thresholds" in explain.sentences(between)[0]


def test_human_reference_file_is_read_and_a_bad_one_is_a_clear_error(tmp_path):
    good = tmp_path / "ref.json"
    good.write_text(json.dumps({"demucs_features": {
        "residual_db_0_200": {"n": 40, "p05": -33, "p50": -29, "p95": -25}, "unmeasured": {"n": 0}}}))
    assert load_human_reference(good)["residual_db_0_200"].p50 == -29.0
    assert set(load_human_reference(good)) == {"residual_db_0_200"}
    assert load_human_reference(tmp_path / "missing.json") == {}
    assert "residual_db_0_200" in load_human_reference() or not PACKAGED_HUMAN_REFERENCE.exists()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"demucs_features": {"residual_db_0_200": {"n": 3, "p50": -29}}}))
    with pytest.raises(Exception, match="bad.json: not a human reference file"):
        load_human_reference(bad)


def test_history_plot_is_a_png_of_verdicts_per_day(tmp_path):
    from daemon.services.store import Store

    state = tmp_path / "state"
    store = Store(state / "aimusicd.sqlite")
    for i, verdict in enumerate(("ai", "human", "uncertain", "human")):
        job = store.add(f"/music/{i}.wav", "cnn", "cli")
        store.claim("cnn")
        store.finish(job.id, verdict=verdict, probability_ai=0.5, cnn_prob=0.5, demucs_prob=None,
                     sha256=str(i), report_path=None)
    store.fail(store.add("/music/bad.wav", "cnn", "cli").id, "bad")
    store.close()
    preset = tmp_path / "p.toml"
    preset.write_text(f'[daemon]\nstate_dir = "{state}"\n')
    proc = aimusicd("history", "--preset", str(preset), "--plot", str(tmp_path / "h.png"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "(5 jobs)" in proc.stderr
    assert png_size((tmp_path / "h.png").read_bytes()) == (1000, 320)


@pytest.mark.slow
def test_eval_plot_is_a_png_of_roc_curves_per_condition(fixtures_dir, tmp_path):
    for label, names in (("human", ("music.wav", "music.flac")), ("ai", ("music_24bit_48k.wav", "music.ogg"))):
        (tmp_path / label).mkdir()
        for name in names:
            shutil.copy(fixtures_dir / "good" / name, tmp_path / label / name)
    t0 = time.monotonic()
    proc = aimusicd("eval", "--human", str(tmp_path / "human"), "--ai", str(tmp_path / "ai"), "--engines", "cnn",
                    "--conditions", "as-given", "mp3-128", "--plot", str(tmp_path / "roc.png"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "plot:" in proc.stderr, f"after {time.monotonic() - t0:.0f} s: {proc.stderr[-500:]}"
    assert png_size((tmp_path / "roc.png").read_bytes()) == (640, 560)
