"""The OSC layer and the dashboard host on their own: served from the services they are given (no
daemon), routes registered through the server, and live input that starts once however many
threads ask."""

from __future__ import annotations

import ast
import subprocess
import sys
import threading
import time
from pathlib import Path

from daemon.analysis import Analyzer
from daemon.config import load_config
from daemon.services import live_control
from daemon.services.jobs import JobRunner
from daemon.services.live_control import LiveController
from daemon.services.osc import handlers, protocol, pushes
from daemon.services.osc.handlers import Handlers
from daemon.services.osc.server import OscServer
from daemon.services.store import Store
from daemon.web import host
from support.daemon_proc import OscTestClient, free_udp_ports


def test_the_osc_layer_and_the_dashboard_host_do_not_import_the_daemon():
    code = ("import sys, daemon.services.osc.handlers, daemon.services.osc.pushes, daemon.web.host; "
            "sys.exit('daemon.services.daemon' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
    for module in (handlers, pushes, host):     # not even for type checking
        tree = ast.parse(Path(module.__file__).read_text())
        imported = {(node.level, node.module) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not imported & {(2, "daemon"), (1, "daemon"), (2, "services.daemon"),
                               (0, "daemon.services.daemon")}, module.__name__


def test_handlers_serve_requests_from_the_services_they_are_given(tmp_path):
    port, reply_port = free_udp_ports(2)
    cfg = load_config(overrides={"osc": {"port": port, "reply_port": reply_port},
                                 "engines": {"mode": "cnn"}})
    store = Store(tmp_path / "q.sqlite")
    analyzer = Analyzer(cfg)              # nothing loaded: models load on first use
    runner = JobRunner(cfg, store, analyzer, lambda event: None)   # not started: jobs stay queued
    live = LiveController(cfg.live, analyzer, tmp_path / "captures", runner)
    server = OscServer(cfg.osc)
    Handlers(server, runner, store, live, analyzer.loaded_models, [tmp_path], default_mode="cnn")
    song = tmp_path / "song.wav"
    song.write_bytes(b"not audio yet")
    client = OscTestClient(reply_port)
    server.start()
    try:
        client.send(("127.0.0.1", port), protocol.ANALYZE, str(song), 7)
        queued = client.wait_for(protocol.QUEUED)
        assert queued.args == (7, str(song))
        client.send(("127.0.0.1", port), protocol.STATUS)
        status = client.wait_for(protocol.STATUS_REPLY)
        assert status.args[:6] == (1, 0, 0, 0, 0, "none")
        client.send(("127.0.0.1", port), protocol.LIVE_STATS)
        assert client.wait_for(protocol.LIVE_STATS_REPLY).args == (0, 0, -1.0, -1.0, 0)
        client.send(("127.0.0.1", port), protocol.ANALYZE, "/etc/hostname", 8)
        error = client.wait_for(protocol.ERROR)
        assert error.args[:2] == (8, protocol.ANALYZE) and "outside the allowed roots" in error.args[2]
    finally:
        server.stop()
        client.close()
    assert [j.req_id for j in store.history(states=("queued",))] == [7]
    store.close()


def test_live_input_started_from_two_threads_at_once_opens_one_monitor(tmp_path, tiny_models, monkeypatch):
    opened = []

    class SlowMonitor:
        """Opening a device takes a while (the capture process starts)."""

        def __init__(self, *args, on_score, **kwargs):
            self.on_score = on_score
            self.active = False

        def start(self, device):
            opened.append(self)
            time.sleep(0.3)
            self.active = True

    monkeypatch.setattr(live_control, "LiveMonitor", SlowMonitor)
    cfg = load_config()
    store = Store(tmp_path / "q.sqlite")
    analyzer = tiny_models.analyzer(cfg)
    live = LiveController(cfg.live, analyzer, tmp_path, JobRunner(cfg, store, analyzer, lambda e: None))
    starts = [threading.Thread(target=live.start, args=(None, ("127.0.0.1", 9000 + i))) for i in range(2)]
    for t in starts:
        t.start()
    for t in starts:
        t.join(5)
    assert len(opened) == 1 and live.active
    events = []
    live.on_score.append(events.append)
    opened[0].on_score(0.9, 0.8, "ai")
    assert set(events[0].requesters) == {("127.0.0.1", 9000), ("127.0.0.1", 9001)}
    store.close()


def test_the_dashboard_host_reads_the_services_it_is_given(tmp_path, tiny_models):
    cfg = load_config(overrides={"reports": {"dir": str(tmp_path / "reports")}})
    store = Store(tmp_path / "state" / "aimusicd.sqlite")
    analyzer = tiny_models.analyzer(cfg)
    runner = JobRunner(cfg, store, analyzer, lambda e: None)
    live = LiveController(cfg.live, analyzer, tmp_path, runner)
    dashboard = host.DashboardHost(cfg, store.path, [tmp_path / "music"], runner, analyzer, live)
    assert dashboard.readable_roots() == [tmp_path / "music", tmp_path / "state", tmp_path / "reports"]
    assert dashboard.running() == {"cnn": None, "demucs": None}
    assert [(m.name, m.loaded) for m in dashboard.models()] == [("CNN", True), ("fusion", True),
                                                                ("Demucs", True)]
    assert not dashboard.live_active() and dashboard.live() == host.LiveState(False, "", 0, 0, -1.0, -1.0)
    store.close()
