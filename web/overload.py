"""Load shedding: under a burst, answer 503 + Retry-After at once instead of queueing without end.

A pure ASGI middleware (outside the sessions and the page cache). At most `max_active` requests
are inside the app at once; up to `max_waiting` more wait at most `wait_seconds` for a place, on
the event loop (no thread, no connection held); any other request is answered 503 at once, and so
is one whose wait ran out. Every request thus gets an answer in bounded time, and the requests
inside are served at full speed instead of all of them slowly.

/healthz and /static are never held back. A live stream (the SSE feed) needs a place only until its
answer starts (that is when it has done its database work), then it counts among `max_streams`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import anyio
from anyio.lowlevel import RunVar
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALWAYS = ("/healthz",)
ALWAYS_PREFIXES = ("/static/",)
STREAMS = ("/feed/events",)


@dataclass
class _Gate:
    """The counts of one event loop (one per process in production; TestClient runs its own loops)."""

    places: anyio.Semaphore
    waiting: int = 0
    streams: int = 0


class Overload:
    def __init__(self, app: ASGIApp, *, max_active: int = 16, max_waiting: int = 512, wait_seconds: float = 2.0,
                 max_streams: int = 1000, retry_after: int = 2) -> None:
        self.app = app
        self.max_active = max_active
        self.max_waiting = max_waiting
        self.wait_seconds = wait_seconds
        self.max_streams = max_streams
        self.retry_after = retry_after
        self._gate: RunVar[_Gate] = RunVar(f"overload_gate_{id(self)}")
        self.shed = 0  # answered 503 so far (for tests and logs)

    def gate(self) -> _Gate:
        gate = self._gate.get(None)
        if gate is None:
            gate = _Gate(anyio.Semaphore(self.max_active))
            self._gate.set(gate)
        return gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in ALWAYS or path.startswith(ALWAYS_PREFIXES):
            await self.app(scope, receive, send)
            return
        gate = self.gate()
        stream = path in STREAMS
        if (stream and gate.streams >= self.max_streams) or not await self._enter(gate):
            await self._refuse(scope, send)
            return
        held = True

        def leave() -> None:
            nonlocal held
            if held:
                held = False
                gate.places.release()

        async def send_and_leave(message: Message) -> None:
            if message["type"] == "http.response.start":
                leave()  # a stream's long body holds no place (nor a database connection)
            await send(message)

        if stream:
            gate.streams += 1
        try:
            await self.app(scope, receive, send_and_leave if stream else send)
        finally:
            leave()
            if stream:
                gate.streams -= 1

    async def _enter(self, gate: _Gate) -> bool:
        """A place inside, at once or after a bounded wait; False when there is none."""
        try:
            gate.places.acquire_nowait()
            return True
        except anyio.WouldBlock:
            pass
        if gate.waiting >= self.max_waiting:
            return False
        gate.waiting += 1
        try:
            with anyio.move_on_after(self.wait_seconds):
                await gate.places.acquire()
                return True
            return False
        finally:
            gate.waiting -= 1

    async def _refuse(self, scope: Scope, send: Send) -> None:
        self.shed += 1
        accept = dict(scope.get("headers") or ()).get(b"accept", b"")
        if b"text/html" in accept and not scope["path"].startswith("/api/"):
            body, kind = (b"<!doctype html><title>Busy</title><h1>The site is busy</h1>"
                          b"<p>Please try again in a moment.</p>"), b"text/html; charset=utf-8"
        else:
            body, kind = json.dumps({"detail": "Server busy, retry later"}).encode(), b"application/json"
        await send({"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", kind), (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(self.retry_after).encode()), (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": body})
