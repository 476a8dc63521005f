"""The Host header is the client's to choose: nothing the site sends may be built from it.
Starlette builds absolute redirects from it (the trailing-slash redirect: GET /feed/ -> Location:
http://<Host>/feed); RelativeRedirects turns such a Location back into a path. `serve` also
refuses unknown Host headers outright (Starlette's TrustedHostMiddleware, hosts from settings)."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RelativeRedirects:
    """Pure ASGI: a Location pointing at the request's own Host becomes relative (path + query)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host", "").lower()

        async def send_relative(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                location = headers.get("location")
                if location:
                    parts = urlsplit(location)
                    if parts.scheme in ("http", "https") and parts.netloc.lower() == host:
                        path = "/" + parts.path.lstrip("/")  # never "//evil" (a protocol-relative URL)
                        headers["location"] = path + (f"?{parts.query}" if parts.query else "")
            await send(message)

        await self.app(scope, receive, send_relative)
