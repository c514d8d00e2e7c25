"""The dashboard's pages and endpoints (Starlette). Sync endpoints run in Starlette's thread pool,
so drawing a report page never stalls the event loop that streams live scores."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict
from pathlib import Path
from urllib.parse import urlencode

from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (HTMLResponse, JSONResponse, RedirectResponse, Response,
                                 StreamingResponse)
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from .. import __version__
from ..config.load import is_loopback
from ..errors import AimusicError
from ..reporting import page as report_page
from ..reporting.plots import verdict_timeline_svg
from ..reporting.view import read_report, view_of
from ..services.store import Job
from .access import PathGuard, TokenRequired
from .history import VERDICTS, BadQuery, HistoryQuery, HistoryReader, format_time, to_csv
from .host import DashboardHost
from .live_feed import LiveFeed

NAV = [report_page.Link("/history", "History"), report_page.Link("/queue", "Queue and models"),
       report_page.Link("/live", "Live input")]
PAGE_CACHE_SIZE = 64
EVENT_POLL_S = 0.1
HEARTBEAT_S = 10.0


class PageCache:
    """Rendered report pages by (file, mtime, size): a report is drawn once until it changes."""

    def __init__(self, size: int = PAGE_CACHE_SIZE):
        self._pages: OrderedDict[tuple, str] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, key: tuple) -> str | None:
        with self._lock:
            if key in self._pages:
                self._pages.move_to_end(key)
                return self._pages[key]
            return None

    def put(self, key: tuple, html: str) -> None:
        with self._lock:
            self._pages[key] = html
            while len(self._pages) > self.size:
                self._pages.popitem(last=False)


def create_app(host: DashboardHost, feed: LiveFeed, stopping: threading.Event) -> Starlette:
    cfg = host.cfg.web
    env = Environment(loader=ChoiceLoader([PackageLoader("daemon.web", "templates"),
                                           PackageLoader("daemon.reporting", "templates")]),
                      autoescape=select_autoescape(("html", "j2")), trim_blocks=True, lstrip_blocks=True)
    env.globals.update(nav=NAV, version=__version__, format_time=format_time, urlencode=urlencode,
                       colours=report_page.figures.COLOURS)
    templates = Jinja2Templates(env=env)
    reader = HistoryReader(host.db_path)
    guard = PathGuard(host.readable_roots())
    cache = PageCache()

    def message(request: Request, status: int, text: str) -> Response:
        return templates.TemplateResponse(request, "message.html", {"status": status, "text": text},
                                          status_code=status)

    def index(request: Request) -> Response:
        return RedirectResponse("/history", 303)

    def history(request: Request) -> Response:
        try:
            query = HistoryQuery.from_params(request.query_params)
        except BadQuery as exc:
            return message(request, 400, str(exc))
        page = reader.page(query, cfg.page_size)
        return templates.TemplateResponse(request, "history.html", {
            "query": query, "page": page, "verdicts": VERDICTS, "folders": reader.folders(),
            "chart": verdict_timeline_svg(list(reader.all(query))) if page.total else None,
            "verdict_of": _verdict_of,
        })

    def history_csv(request: Request) -> Response:
        try:
            query = HistoryQuery.from_params(request.query_params)
        except BadQuery as exc:
            return message(request, 400, str(exc))
        return StreamingResponse(to_csv(reader.all(query)), media_type="text/csv",
                                 headers={"Content-Disposition": 'attachment; filename="aimusicd-history.csv"'})

    def report_for_job(request: Request) -> Response:
        fmt = request.path_params.get("fmt", "html")
        if fmt not in ("html", "png"):
            return message(request, 404, f"no .{fmt} form of a report: .html or .png")
        job = reader.job(request.path_params["job_id"])
        if job is None:
            return message(request, 404, f"no job #{request.path_params['job_id']}")
        if not job.report_path:
            why = job.error if job.state == "failed" else f"job #{job.id} is {job.state}" \
                if job.state != "done" else f"no report was written for job #{job.id}"
            return message(request, 404, why)
        return render_report(request, Path(job.report_path), fmt)

    def report_by_path(request: Request) -> Response:
        raw = request.query_params.get("path", "")
        if not raw:
            return message(request, 400, "give the report's path: /report?path=/…/file.aimusic.json")
        return render_report(request, Path(raw), request.query_params.get("format", "html"))

    def render_report(request: Request, path: Path, fmt: str) -> Response:
        if not guard.allows(path):
            return message(request, 403, f"{path}: outside the report store and the allowed roots")
        try:
            stat = path.stat()
            key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, fmt)
            cached = cache.get(key)
            if cached is not None:
                return HTMLResponse(cached)
            doc = read_report(path)
            audio = Path(doc.get("file", ""))
            view = view_of(doc, path, with_audio=guard.allows(audio))
        except FileNotFoundError:
            return message(request, 404, f"{path}: report not found")
        except AimusicError as exc:
            return message(request, 422, str(exc))
        if fmt == "png":
            return Response(report_page.report_png(view), media_type="image/png")
        html = report_page.report_html(view, NAV)
        cache.put(key, html)
        return HTMLResponse(html)

    def queue(request: Request) -> Response:
        return templates.TemplateResponse(request, "queue.html", {
            "counts": reader.counts(), "pending": reader.pending(), "running": host.running(),
            "models": host.models(), "live": host.live()})

    def live(request: Request) -> Response:
        return templates.TemplateResponse(request, "live.html", {
            "live": host.live(), "latest": feed.latest(), "device": host.cfg.live.device})

    async def live_events(request: Request) -> Response:
        async def stream():
            sent_seq, sent_active, quiet = -1, None, 0.0
            while not stopping.is_set() and not await request.is_disconnected():
                latest, active = feed.latest(), host.live_active()
                if (latest and latest.seq != sent_seq) or active != sent_active:
                    payload = {"active": active, **(latest.to_dict() if latest else {})}
                    sent_seq, sent_active, quiet = latest.seq if latest else -1, active, 0.0
                    yield f"data: {json.dumps(payload)}\n\n"
                elif quiet >= HEARTBEAT_S:
                    quiet = 0.0
                    yield ": heartbeat\n\n"
                await asyncio.sleep(EVENT_POLL_S)
                quiet += EVENT_POLL_S
        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def live_start(request: Request) -> Response:
        if not _same_origin(request):
            return JSONResponse({"error": "cross-site request refused"}, 403)
        body = await request.body()
        try:
            device = str(json.loads(body).get("device") or "").strip() or None if body else None
        except (ValueError, AttributeError):
            return JSONResponse({"active": False, "error": 'expected JSON such as {"device": "system"}'}, 400)
        try:
            await asyncio.get_running_loop().run_in_executor(None, host.start_live, device)
        except AimusicError as exc:
            return JSONResponse({"active": False, "error": str(exc)}, 409)
        return JSONResponse({"active": host.live().active})

    async def live_stop(request: Request) -> Response:
        if not _same_origin(request):
            return JSONResponse({"error": "cross-site request refused"}, 403)
        await asyncio.get_running_loop().run_in_executor(None, host.stop_live)
        return JSONResponse({"active": host.live().active})

    def status(request: Request) -> Response:
        live_state = host.live()
        return JSONResponse({"version": __version__, "counts": reader.counts(), "running": host.running(),
                             "live": {"active": live_state.active, "scores": live_state.scores}})

    routes = [
        Route("/", index), Route("/history", history), Route("/history.csv", history_csv),
        Route("/report/{job_id:int}", report_for_job),
        Route("/report/{job_id:int}.{fmt:str}", report_for_job), Route("/report", report_by_path),
        Route("/queue", queue), Route("/live", live), Route("/live/events", live_events),
        Route("/live/start", live_start, methods=["POST"]), Route("/live/stop", live_stop, methods=["POST"]),
        Route("/api/status", status),
    ]
    middleware = []
    if cfg.token:
        middleware.append(Middleware(TokenRequired, token=cfg.token))
    if is_loopback(cfg.host):
        # A page elsewhere must not reach a loopback dashboard through a rebound DNS name.
        middleware.append(Middleware(TrustedHostMiddleware,
                                     allowed_hosts=["127.0.0.1", "localhost", "::1", "[::1]", cfg.host]))
    return Starlette(routes=routes, middleware=middleware)


def _verdict_of(job: Job) -> str:
    return job.verdict if job.state == "done" and job.verdict else "failed"


def _same_origin(request: Request) -> bool:
    """Browsers send Origin with a POST; refuse one from another site (no CSRF on live input)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True                       # not a browser form post: curl, scripts
    return origin.split("://", 1)[-1] == request.headers.get("host", "")
