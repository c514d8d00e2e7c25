"""uvicorn serving the dashboard on a thread of its own, started and stopped with the daemon."""

from __future__ import annotations

import logging
import threading
import time

import uvicorn

from ..config.schema import WebConfig
from ..errors import AimusicError
from .app import create_app
from .host import DashboardHost
from .live_feed import LiveFeed

log = logging.getLogger("aimusicd.web")

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


class WebServer:
    def __init__(self, cfg: WebConfig, host: DashboardHost):
        self.cfg = cfg
        self.live = LiveFeed()
        self._stopping = threading.Event()
        app = create_app(host, self.live, self._stopping)
        # Open event streams are closed by the app when _stopping is set; a second is enough.
        self._server = uvicorn.Server(uvicorn.Config(
            app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False, lifespan="off",
            timeout_graceful_shutdown=1))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.cfg.host}]" if ":" in self.cfg.host else self.cfg.host
        return f"http://{host}:{self.cfg.port}/"

    def start(self) -> None:
        """Serve, or raise AimusicError (e.g. the port is taken) once uvicorn has given up."""
        self._thread = threading.Thread(target=self._server.run, name="web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise AimusicError(f"dashboard: cannot listen on {self.cfg.host}:{self.cfg.port} "
                                   "(in use, or not an address of this machine)")
            time.sleep(0.02)
        log.info("dashboard at %s%s", self.url, " (token required)" if self.cfg.token else "")

    def stop(self) -> None:
        self._stopping.set()
        self._server.should_exit = True
        if self._thread:
            self._thread.join(STOP_TIMEOUT_S)
