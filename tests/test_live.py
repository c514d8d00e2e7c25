"""Live input end to end: a JACK server (dummy backend) and jack-play feed real audio through
PortAudio into the daemon, whose CNN scores arrive over OSC."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from support.audio import music
from support.daemon_proc import wait_until
from support.jack import RATE

pytestmark = pytest.mark.jack


def _live_daemon(daemon, jack, monkeypatch, **live):
    for key, value in jack.env.items():
        monkeypatch.setenv(key, value)
    settings = {"device": "system", "hop_s": 0.5, "smoothing_s": 1.0, "alert_threshold": 0.0,
                "alert_after_s": 2.0, "capture_s": 4.0, "demucs_check": False}
    settings.update(live)
    return daemon(watch={"enabled": False}, live=settings)


def test_live_scores_from_jack_input_arrive_over_osc(daemon, jack, monkeypatch, tmp_path):
    d = _live_daemon(daemon, jack, monkeypatch)
    song = music(10, RATE, seed=7)
    wav = tmp_path / "play.wav"
    sf.write(wav, np.concatenate([song, np.zeros((2, RATE), np.float32)], axis=1).T, RATE,
             subtype="FLOAT")
    d.send("/aimusic/live/start", "system")
    assert d.client.wait_for("/aimusic/live/state").args == (1,)
    jack.wait_for_port("PortAudio:in_0")
    silent = d.client.wait_for("/aimusic/live/score", 15, where=lambda m: m.args[2] == "silence")
    assert silent.args[0] == -1.0                 # the dummy backend's own capture is silent
    player = jack.play(wav)
    scored = d.client.wait_for("/aimusic/live/score", 20, where=lambda m: m.args[2] != "silence")
    prob, smoothed, verdict = scored.args
    assert 0.0 <= prob <= 1.0 and 0.0 <= smoothed <= 1.0 and verdict in ("ai", "human", "uncertain")
    alert = d.client.wait_for("/aimusic/live/alert", 20)
    assert alert.args[1] >= 2.0
    player.wait(30)
    captures = wait_until(lambda: sorted((d.state / "captures").glob("live-*.wav")), 10, "a capture")
    captured, rate = sf.read(captures[0], dtype="float32")
    assert rate == RATE and captured.shape[1] == 2
    # The capture holds the music that was played (its last 0.1 s matches the file exactly,
    # wherever it lies; short, so that a scheduling hiccup of the dummy backend cannot straddle it).
    ref = song[0]
    seg = captured[-RATE // 10:, 0]
    assert np.abs(seg).max() > 0.01
    corr = np.correlate(ref, seg, mode="valid")
    energy = np.convolve(ref ** 2, np.ones(len(seg)), mode="valid")
    best = int(np.argmin(energy - 2 * corr))              # least squared error, not the loudest
    match = ref[best:best + len(seg)]
    assert np.corrcoef(match, seg)[0, 1] > 0.999 and np.abs(match - seg).max() < 1e-3
    d.send("/aimusic/live/stats")
    active, scores, p50, p99, overflows = d.client.wait_for("/aimusic/live/stats.reply").args
    assert active == 1 and scores >= 5 and 0 < p50 <= p99 and overflows == 0
    d.send("/aimusic/live/stop")
    assert d.client.wait_for("/aimusic/live/state", where=lambda m: m.args == (0,)).args == (0,)


def test_unknown_input_device_is_a_clear_error(daemon, jack, monkeypatch):
    d = _live_daemon(daemon, jack, monkeypatch)
    d.send("/aimusic/live/start", "no-such-interface")
    err = d.client.wait_for("/aimusic/error")
    assert err.args[1] == "/aimusic/live/start" and "no input device matches 'no-such-interface'" in err.args[2]
    assert d.alive()


def test_losing_the_jack_server_is_survived_and_input_reconnects(daemon, jack, monkeypatch, tmp_path):
    d = _live_daemon(daemon, jack, monkeypatch)
    d.send("/aimusic/live/start", "system")
    d.client.wait_for("/aimusic/live/state")
    d.client.wait_for("/aimusic/live/score", 15)
    jack.stop()                                    # the interface disappears
    wait_until(lambda: "stopped delivering audio; reconnecting" in d.log(), 15, "the loss to be noticed")
    jack.start()                                   # and comes back
    wait_until(lambda: "live input reconnected" in d.log(), 40, "the reconnection")
    d.client.received.clear()
    d.client.wait_for("/aimusic/live/score", 15)
    assert d.alive()
