"""Who may see the dashboard, and which files it may read.

Off loopback a token from the config is required on every request: as `Authorization: Bearer`,
or once as `?token=` (the browser then keeps it in a cookie, and the address bar loses it). The
dashboard reads only files inside the allowed roots and the report store."""

from __future__ import annotations

import hmac
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import URL
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "aimusicd_token"


class TokenRequired:
    """ASGI middleware: refuse (401) any request that does not carry the token."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        offered = headers.get("authorization", "").removeprefix("Bearer ").strip()
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except CookieError:
            pass                       # a malformed cookie header offers no token
        if not offered and COOKIE in cookie:
            offered = cookie[COOKIE].value
        if not offered and "token" in query and self._ok(query["token"]):
            url = URL(scope=scope)
            rest = urlencode([(k, v) for k, v in parse_qsl(url.query) if k != "token"])
            response = RedirectResponse(url.replace(query=rest).path + (f"?{rest}" if rest else ""), 303)
            response.set_cookie(COOKIE, query["token"], httponly=True, samesite="strict")
            await response(scope, receive, send)
            return
        if not self._ok(offered):
            await PlainTextResponse("aimusicd dashboard: a valid token is required "
                                    "(Authorization: Bearer <token>, or ?token=<token> once)",
                                    401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _ok(self, offered: str) -> bool:
        return bool(offered) and hmac.compare_digest(offered.encode(), self.token.encode())


class PathGuard:
    """Files the dashboard may read: inside one of `roots`, after symlinks are resolved."""

    def __init__(self, roots: list[Path]):
        self.roots = [r.resolve() for r in roots]

    def allows(self, path: Path) -> bool:
        try:
            real = path.resolve(strict=False)
        except (OSError, RuntimeError):
            return False
        return path.is_absolute() and any(real.is_relative_to(root) for root in self.roots)
