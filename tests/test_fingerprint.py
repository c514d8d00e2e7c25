"""The spectral-fingerprint engine on real audio: a decoder's stationary peak at a fixed
frequency is found whatever the music, the band above a codec's edge never counts, and a taught
generator's model matches its own peaks and not human music."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from daemon.config import load_config
from daemon.engines.fingerprint import (FingerprintEngine, GeneratorFingerprint, feature_names,
                                        long_term_spectrum)
from daemon.engines.logistic import LogisticModel
from support.audio import music

RATE = 44100


def with_tone(x: np.ndarray, hz: float, db_below: float) -> np.ndarray:
    """x plus a stationary sine `db_below` the music's RMS, as a decoder's bias leaves it."""
    t = np.arange(x.shape[-1]) / RATE
    rms = np.sqrt(np.mean(x ** 2))
    return (x + rms * 10 ** (-db_below / 20) * np.sqrt(2) * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_a_stationary_peak_is_found_at_its_frequency_and_the_envelope_is_removed():
    x = music(20.0, RATE, seed=3).mean(axis=0)
    plain = long_term_spectrum(x, RATE, 20000.0)
    peaked = long_term_spectrum(with_tone(x, 12600.0, 30.0), RATE, 20000.0)
    assert any(abs(f - 12600.0) < 25 for f in peaked.peaks()) and not any(abs(f - 12600.0) < 25 for f in plain.peaks())
    i = int(12600.0 / peaked.hz_step)
    assert peaked.residual_db[i] > plain.residual_db[i] + 10
    assert np.median(peaked.residual_db[100:800]) < 3     # the broad spectrum itself is gone


def test_bins_above_the_band_edge_never_count():
    x = with_tone(music(20.0, RATE, seed=4).mean(axis=0), 17000.0, 20.0)
    cut = long_term_spectrum(x, RATE, 16000.0)        # an MP3's low-pass at 16 kHz
    assert not any(f > 16000.0 - 200 for f in cut.peaks())
    assert np.all(cut.residual_db[int(15800 / cut.hz_step):] == 0)


def _taught(hz: float) -> GeneratorFingerprint:
    """A generator model taught on spectra with and without its peak (the real ones come from
    `aimusicd train`)."""
    spectra, labels = [], []
    for seed in range(24):
        x = music(12.0, RATE, seed=seed).mean(axis=0)
        for label in (0, 1):
            y = with_tone(x, hz, 28.0) if label else x
            spectra.append(long_term_spectrum(y, RATE, 20000.0).residual_db)
            labels.append(label)
    x = np.stack(spectra).astype(np.float64)
    model = LogisticModel.fit(feature_names(x.shape[1]), x, np.array(labels), l2=1.0)
    return GeneratorFingerprint("tone-gen", model, 0.9, "a test generator")


def test_a_taught_generator_matches_its_peaks_in_a_real_file_and_not_human_music(tmp_path, tiny_models):
    generator = _taught(12600.0)
    folder = tmp_path / "generators"
    folder.mkdir()
    (folder / "tone-gen.json").write_text(json.dumps(generator.to_dict()))
    engine = FingerprintEngine.load(folder)
    assert [g.name for g in engine.generators] == ["tone-gen"] and len(engine.sha256["tone-gen"]) == 64
    fake, human = tmp_path / "fake.flac", tmp_path / "human.flac"
    x = music(15.0, RATE, seed=99)
    sf.write(fake, np.stack([with_tone(c, 12600.0, 28.0) for c in x]).T, RATE)
    sf.write(human, x.T, RATE)
    analyzer = tiny_models.analyzer(load_config())
    analyzer._fingerprints = engine
    caught, passed = analyzer.analyze(fake, "cnn"), analyzer.analyze(human, "cnn")
    assert caught.verdict == "ai" and caught.matched == "tone-gen"
    assert caught.decided_by.endswith("+fingerprint") and caught.fingerprint.matched.probability >= 0.9
    assert passed.matched is None and passed.fingerprint.matches[0].probability < 0.5
    doc = caught.to_dict()
    assert doc["matched"] == "tone-gen" and doc["engines"]["fingerprint"]["matches"][0]["fired"] is True
    assert any(abs(f - 12600.0) < 25 for f in doc["engines"]["fingerprint"]["peaks_hz"])


def test_a_damaged_generator_file_is_a_clear_model_error(tmp_path):
    from daemon.errors import ModelError

    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(ModelError, match="broken.json: cannot load the generator fingerprint"):
        GeneratorFingerprint.load(bad)
