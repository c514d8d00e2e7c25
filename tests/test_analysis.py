"""The analysis path end to end on real files with tiny random models: modes, tiers, reports."""

from __future__ import annotations

import json

import pytest

from daemon.config import load_config
from daemon.errors import AudioError
from daemon.report import SCHEMA, write_report


@pytest.fixture(scope="module")
def analyzer(tiny_models):
    return tiny_models.analyzer(load_config())


@pytest.mark.parametrize("mode, ran, decided_by", [("cnn", "cnn", "cnn+images"),
                                                   ("full", "cnn+demucs", "cnn+images+demucs"),
                                                   ("demucs", "demucs", "demucs")])
def test_modes_run_the_engines_they_name(analyzer, fixtures_dir, mode, ran, decided_by):
    report = analyzer.analyze(fixtures_dir / "good" / "music.flac", mode)
    assert report.engines_ran == ran
    assert report.verdict in ("ai", "human", "uncertain")
    assert 0.0 <= report.probability_ai <= 1.0
    assert report.decided_by == decided_by
    assert (report.images is not None) == ("cnn" in ran)   # the image score comes with the CNN
    if "demucs" in ran:
        assert report.demucs.ran and len(report.demucs.excerpts) == 1
        assert report.demucs.features and report.demucs.probability_ai is not None
    else:
        assert not report.demucs.ran and report.demucs.reason == "mode cnn"


def test_auto_runs_demucs_only_when_the_cnn_is_unsure(tiny_models, fixtures_dir):
    path = fixtures_dir / "good" / "music.wav"
    sure = tiny_models.analyzer(load_config(overrides={"engines": {"ai_threshold": 0.01,
                                                                   "human_threshold": 0.001}}))
    report = sure.analyze(path, "auto")
    assert report.verdict == "ai" and not report.demucs.ran and report.demucs.reason == "cnn confident"
    unsure = tiny_models.analyzer(load_config(overrides={"engines": {"ai_threshold": 0.999,
                                                                     "human_threshold": 0.001}}))
    report = unsure.analyze(path, "auto")
    assert report.demucs.ran and report.demucs.reason == "cnn uncertain"
    assert report.decided_by == "cnn+images+demucs"


def test_report_follows_the_schema(analyzer, fixtures_dir, tmp_path):
    report = analyzer.analyze(fixtures_dir / "good" / "music.mp3", "full")
    dest = write_report(report, tmp_path / "r.aimusic.json")
    doc = json.loads(dest.read_text())
    assert doc["schema"] == SCHEMA
    for key in ("file", "sha256", "duration_s", "sample_rate", "channels", "verdict", "probability_ai",
                "decided_by", "engines", "timings", "created", "version", "codec", "thresholds"):
        assert key in doc, key
    assert doc["sample_rate"] == 44100 and doc["channels"] == 2 and len(doc["sha256"]) == 64
    assert doc["codec"]["lossy_container"] is True and doc["codec"]["container"] == "MP3"
    cnn = doc["engines"]["cnn"]
    assert {"model", "model_sha256", "probability_ai", "windows"} <= set(cnn)
    assert all({"start", "end", "p"} == set(w) for w in cnn["windows"])
    images = doc["engines"]["images"]
    assert images["score"] >= 0 and images["latent_rate_hz"] >= 0
    demucs = doc["engines"]["demucs"]
    assert demucs["ran"] and demucs["excerpts"][0]["end"] > demucs["excerpts"][0]["start"]
    assert "residual_db" in demucs["features"]
    t = doc["timings"]   # the fast pass's wall time: decode, then the CNN, then the fingerprints (images beside the CNN)
    assert t["decode_s"] + t["cnn_s"] + t["fingerprint_s"] - 0.002 <= t["fast_s"] <= t["total_s"], t
    assert not list(tmp_path.glob(".*tmp"))   # written atomically, no temp file left


def test_bad_file_raises_the_loader_error(analyzer, fixtures_dir):
    with pytest.raises(AudioError, match="empty file"):
        analyzer.analyze(fixtures_dir / "bad" / "empty.wav", "full")


@pytest.mark.parametrize("change", ["-40 dB", "+80 dB", "dc offset", "polarity", "channel swap"])
def test_a_verdict_does_not_depend_on_level_polarity_dc_or_channel_order(analyzer, tmp_path, change):
    import numpy as np
    import soundfile as sf

    from daemon.training.fakes import make_fake
    from support.audio import music

    x = make_fake("upsampler", music(12.0, 44100, seed=5), 44100, np.random.default_rng(1)).astype(np.float64)
    y = {"-40 dB": x * 10 ** (-40 / 20), "+80 dB": x * 10 ** (80 / 20), "dc offset": x + 0.2,
         "polarity": -x, "channel swap": x[::-1]}[change]
    paths = []
    for name, audio in (("as-made", x), ("changed", y)):
        paths.append(tmp_path / f"{name}.wav")
        sf.write(paths[-1], audio.T.astype(np.float32), 44100, subtype="FLOAT")
    a, b = (analyzer.analyze(p, "cnn") for p in paths)
    assert b.verdict == a.verdict and abs(b.probability_ai - a.probability_ai) < 1e-3
    assert abs(b.cnn.logit - a.cnn.logit) < 1e-2 and abs(b.images.score - a.images.score) < 1e-2
    assert np.isfinite(b.probability_ai) and json.loads(json.dumps(b.to_dict(), allow_nan=False))
