"""The Host header is the client's to choose: nothing the site sends may be built from it.
Starlette builds absolute redirects from it (the trailing-slash redirect: GET /feed/ -> Location:
http://<Host>/feed); RelativeRedirects turns such a Location back into a path. `serve` also
refuses unknown Host headers outright (Starlette's TrustedHostMiddleware, hosts from settings)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from web.deps import HandleMoved


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


def moved_path(request: Request, moved: HandleMoved) -> str:
    """The same path (relative) with the renamed handle's segment (/u/OLD, /users/OLD) replaced."""
    segments = request.url.path.split("/")
    for index in range(1, len(segments)):
        if segments[index - 1] in ("u", "users") and segments[index].lower() == moved.old:
            segments[index] = quote(moved.new)
            break
    return "/".join(segments) + (f"?{request.url.query}" if request.url.query else "")
