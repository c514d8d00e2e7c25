"""The spectral-image score on real signals: music, the same music through a decoder stage, and
that fake through a real MP3 encoder."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.engines.images import ImageEvidence, measure_images
from daemon.evaluation.codecs import CodecSpec, apply_codec
from daemon.training.fakes import DecoderPlan, render
from support.audio import music

RATE = 44100


@pytest.fixture(scope="module")
def song() -> np.ndarray:
    return music(12.0, RATE, seed=3)


def _fake(x: np.ndarray, family: str, strides: tuple[int, ...], decoder_rate: int) -> np.ndarray:
    return render(family, x, RATE, DecoderPlan(strides, decoder_rate), np.random.default_rng(1))


def test_music_has_no_images_and_a_decoder_stage_leaves_them_at_its_latent_rate(song):
    human = measure_images(song.mean(axis=0), RATE)
    assert isinstance(human, ImageEvidence) and human.score < 1.5
    for family, strides, decoder_rate, latent in (("upsampler", (4,), RATE, RATE / 4),
                                                  ("tconv", (3,), 48000, 16000.0)):
        fake = measure_images(_fake(song, family, strides, decoder_rate).mean(axis=0), RATE)
        assert fake.score > human.score + 1.5, family
        assert fake.latent_rate_hz == pytest.approx(latent, abs=0.01), family


def test_the_images_survive_an_mp3_encode(song):
    fake = _fake(song, "upsampler", (4,), RATE)
    mp3 = apply_codec(fake, RATE, CodecSpec("mp3", 128))
    through = measure_images(mp3.mean(axis=0), RATE)
    human = measure_images(apply_codec(song, RATE, CodecSpec("mp3", 128)).mean(axis=0), RATE)
    assert through.score > human.score + 2.0 and through.latent_rate_hz == pytest.approx(RATE / 4)


def test_the_score_ignores_level_and_is_zero_without_signal(song):
    fake = _fake(song, "upsampler", (2,), RATE).mean(axis=0)
    loud = measure_images(fake, RATE).score
    assert measure_images(0.05 * fake, RATE).score == pytest.approx(loud, abs=1e-3)
    assert measure_images(np.zeros(RATE * 5, np.float32), RATE).score == 0.0
    assert measure_images(fake[:RATE // 4], RATE).score == 0.0     # too short to count frames
