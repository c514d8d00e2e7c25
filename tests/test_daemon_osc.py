"""The OSC server of a real daemon process, over loopback: python-osc packets, our own CLI client,
and a foreign client (liblo's oscsend/oscdump)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder

from conftest import require_tool
from daemon import __version__
from support.daemon_proc import OscTestClient, wait_until


def test_ping_pong_and_status(daemon):
    d = daemon()
    d.send("/aimusic/ping")
    pong = d.client.wait_for("/aimusic/pong")
    assert pong.args == ("ok", __version__)
    d.send("/aimusic/status")
    status = d.client.wait_for("/aimusic/status.reply")
    queued, running, done, live_on, failed, models = status.args[:6]
    assert (queued, running, live_on) == (0, 0, 0) and "cnn" in models


def test_analyze_replies_queued_then_result_echoing_the_request_id(daemon, wav):
    d = daemon()
    path = wav("song.wav")
    d.send("/aimusic/analyze", str(path), 77)
    queued = d.client.wait_for("/aimusic/queued")
    assert queued.args == (77, str(path))
    result = d.client.wait_for("/aimusic/result", timeout=30)
    req, rpath, verdict, prob, cnn_prob, demucs_prob, report = result.args
    assert (req, rpath) == (77, str(path))
    assert verdict in ("ai", "human", "uncertain") and 0 <= prob <= 1 and 0 <= cnn_prob <= 1
    assert demucs_prob == -1.0                       # mode cnn: Demucs did not run
    assert report == str(path) + ".aimusic.json" and os.path.exists(report)
    [job] = d.jobs()
    assert job["state"] == "done" and job["req_id"] == 77 and job["source"] == "osc"


def test_replies_echo_the_path_as_the_client_wrote_it(daemon, wav):
    d = daemon()
    path = wav("real.wav")
    link = d.root / "alias.wav"
    link.symlink_to(path)
    d.send("/aimusic/analyze", str(link), 8)
    assert d.client.wait_for("/aimusic/queued").args == (8, str(link))
    assert d.client.wait_for("/aimusic/result", 30).args[1] == str(link)
    assert d.jobs()[0]["path"] == str(path.resolve())       # the analysis used the resolved file


def test_pd_style_float_request_id_is_accepted(daemon, wav):
    d = daemon()
    path = wav("pd.wav")
    d.send("/aimusic/analyze", str(path), 5.0)
    assert d.client.wait_for("/aimusic/queued").args[0] == 5


@pytest.mark.parametrize("args, needle", [
    (("relative/song.wav", 1), "the path must be absolute"),
    (("/no/such/file.wav", 2), "file not found"),
    (("/etc/hostname", 3), "outside the allowed roots"),
    ((), "usage: /aimusic/analyze"),
    (("{wav}", 4, "turbo"), "unknown mode 'turbo'"),
    (("{wav}", "x"), "request id must be an int"),
])
def test_bad_analyze_requests_get_an_error_reply(daemon, wav, args, needle):
    d = daemon()
    path = str(wav("ok.wav"))
    d.send("/aimusic/analyze", *[path if a == "{wav}" else a for a in args])
    err = d.client.wait_for("/aimusic/error")
    assert err.args[1] == "/aimusic/analyze" and needle in err.args[2]
    if len(args) >= 2 and isinstance(args[1], int):
        assert err.args[0] == args[1]
    assert d.jobs() == []


def test_a_symlink_cannot_escape_the_allowed_roots(daemon, tmp_path):
    d = daemon()
    link = d.root / "innocent.wav"
    link.symlink_to("/etc/hostname")
    d.send("/aimusic/analyze", str(link), 9)
    err = d.client.wait_for("/aimusic/error")
    assert err.args[0] == 9 and "outside the allowed roots" in err.args[2]


def test_malformed_oversized_and_unknown_packets_get_errors_and_the_server_keeps_serving(daemon):
    d = daemon(osc={"max_packet_bytes": 512})
    d.client.send_raw(d.target, b"\x00\x01garbage that is not OSC")
    assert "malformed OSC packet" in d.client.wait_for("/aimusic/error").args[2]
    d.client.received.clear()
    big = OscMessageBuilder("/aimusic/analyze")
    big.add_arg("/" + "x" * 1000)
    d.client.send_raw(d.target, big.build().dgram)
    assert "packet too large" in d.client.wait_for("/aimusic/error").args[2]
    d.client.received.clear()
    d.send("/aimusic/frobnicate", 1)
    err = d.client.wait_for("/aimusic/error")
    assert err.args[1] == "/aimusic/frobnicate" and "unknown address" in err.args[2]
    d.client.received.clear()
    d.client.send_raw(d.target, b"/aimusic/ping\x00\x00\x00,i\x00")   # truncated arguments
    d.client.wait_for("/aimusic/error")
    d.send("/aimusic/ping")
    d.client.wait_for("/aimusic/pong")
    assert d.alive()


def test_senders_outside_allowed_senders_are_ignored(daemon):
    d = daemon(osc={"allowed_senders": ["127.0.0.1"]})
    stranger = OscTestClient(host="127.0.0.2")
    try:
        stranger.send(d.target, "/aimusic/ping")
        # The daemon would answer at the sender's IP on the reply port: nothing must arrive there.
        listener = OscTestClient(d.reply_port, host="127.0.0.2")
        listener.pump(1.0)
        assert listener.received == []
        listener.close()
        wait_until(lambda: "not in [osc] allowed_senders" in d.log(), 5, "the log line")
    finally:
        stranger.close()


def test_a_full_queue_is_refused_with_an_error_not_lost(daemon, wav):
    d = daemon(jobs={"max_queued": 1})
    paths = [wav(f"f{i}.wav", seed=i) for i in range(12)]
    for i, p in enumerate(paths):
        d.send("/aimusic/analyze", str(p), i + 1)
    def answered() -> bool:
        d.client.pump(0.2)
        return len(d.client.all("/aimusic/queued")) + len(d.client.all("/aimusic/error")) >= 12
    wait_until(answered, 20, "an answer to every request")
    errors = d.client.all("/aimusic/error")
    accepted = {m.args[0] for m in d.client.all("/aimusic/queued")}
    assert errors and all("queue full" in e.args[2] for e in errors)
    done = d.wait_jobs(lambda js: len(js) == len(accepted) and all(j["state"] == "done" for j in js),
                       30, "accepted jobs to finish")
    assert {j["req_id"] for j in done} == accepted       # every accepted job finished


def test_subscribers_get_results_of_watched_files(daemon, wav):
    d = daemon()
    sub = OscTestClient()
    try:
        d.send("/aimusic/subscribe", "127.0.0.1", sub.port)
        assert d.client.wait_for("/aimusic/subscribed").args == ("127.0.0.1", sub.port)
        src = wav("drop.wav")
        os.replace(src, d.inbox / "drop.wav")
        result = sub.wait_for("/aimusic/result", timeout=30)
        assert result.args[1] == str(d.inbox / "drop.wav")
        d.send("/aimusic/unsubscribe", "127.0.0.1", sub.port)
        d.client.wait_for("/aimusic/unsubscribed")
    finally:
        sub.close()


def test_aimusicd_send_and_status_cli(daemon, wav):
    d = daemon()        # d.client keeps the reply port: the CLI listens on a port of its own
    base = [sys.executable, "-m", "daemon"]
    ping = subprocess.run(base + ["send", "/aimusic/ping", "--preset", str(d.preset)],
                          capture_output=True, text=True, timeout=30)
    assert ping.returncode == 0 and ping.stdout.strip() == f'/aimusic/pong "ok" "{__version__}"'
    path = wav("cli.wav")
    out = subprocess.run(base + ["send", "/aimusic/analyze", str(path), "--preset", str(d.preset)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("/aimusic/queued") and lines[-1].startswith("/aimusic/result")
    assert str(path) in lines[-1]
    bad = subprocess.run(base + ["send", "/aimusic/analyze", "/etc/hostname", "--preset", str(d.preset)],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "outside the allowed roots" in bad.stdout
    t0 = time.monotonic()
    d.stop()
    gone = subprocess.run(base + ["send", "/aimusic/analyze", str(path), "--preset", str(d.preset)],
                          capture_output=True, text=True, timeout=60)
    assert gone.returncode == 3 and "is the daemon running" in gone.stderr
    assert time.monotonic() - t0 < 20            # no daemon: it gives up fast, not after 900 s
    d.start()
    status = subprocess.run(base + ["status", "--preset", str(d.preset)], capture_output=True,
                            text=True, timeout=30)
    assert status.returncode == 0 and "running (aimusicd" in status.stdout and "done      1" in status.stdout
    history = subprocess.run(base + ["history", "--preset", str(d.preset), "--json"],
                             capture_output=True, text=True, timeout=30)
    assert history.returncode == 0 and str(path) in history.stdout


def test_status_says_plainly_when_no_daemon_runs(tmp_path):
    preset = tmp_path / "p.toml"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    preset.write_text(f"[daemon]\nstate_dir = \"{tmp_path}\"\n[osc]\nport = {port}\nreply_to = \"source_port\"\n")
    out = subprocess.run([sys.executable, "-m", "daemon", "status", "--preset", str(preset), "--timeout", "0.5"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 3 and "not answering" in out.stdout


def _thread_nice_values(pid: int) -> dict[int, int]:
    values = {}
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        values[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[16])
    return values


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_the_demucs_worker_yields_the_cpu_to_live_and_cnn_work(daemon):
    d = daemon()
    nice = _thread_nice_values(d.proc.pid)
    base = nice[d.proc.pid]                                     # main thread, OSC, CNN worker, live
    if base > 9:
        pytest.skip(f"the tests themselves run at nice {base}: no room below")
    lowered = [tid for tid, value in nice.items() if value == base + 10]
    assert len(lowered) == 1                                    # the Demucs worker alone


def test_sigterm_stops_the_daemon_cleanly_and_quickly(daemon):
    d = daemon()
    t0 = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - t0 < 5
    assert "aimusicd stopped" in d.log()


@pytest.mark.liblo
def test_foreign_client_oscsend_and_oscdump(daemon, wav):
    oscsend = require_tool("oscsend", "liblo-tools")
    oscdump = require_tool("oscdump", "liblo-tools")
    d = daemon()
    d.client.close()                      # oscdump takes the reply port
    dump = subprocess.Popen([oscdump, "-L", str(d.reply_port)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        subprocess.run([oscsend, "localhost", str(d.port), "/aimusic/ping"], check=True)
        path = wav("liblo.wav")
        subprocess.run([oscsend, "localhost", str(d.port), "/aimusic/analyze", "si", str(path), "31"],
                       check=True)
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("/aimusic/result" in l for l in lines):
            lines.append(dump.stdout.readline())
        text = "".join(lines)
        assert f'/aimusic/pong ss "ok" "{__version__}"' in text
        assert f'/aimusic/queued is 31 "{path}"' in text
        assert f'/aimusic/result issfffs 31 "{path}"' in text
    finally:
        dump.terminate()
        dump.wait()
