"""web/overload.py at the ASGI level: bounded places, a bounded and timed queue, 503 + Retry-After
for the rest, /healthz and /static always through, streams holding a place only until they answer."""

from __future__ import annotations

import json

import anyio

from tests.helpers import run_async
from web.overload import Overload


class Held:
    """An app whose requests stay inside until `release` is set; streams answer, then stay."""

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.inside = 0

    async def __call__(self, scope, receive, send) -> None:
        self.inside += 1
        if scope["path"] == "/feed/events":
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await self.release.wait()
        if scope["path"] != "/feed/events":
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(app, path: str, accept: bytes = b"application/json") -> dict:
    """Runs one request; returns its status, headers and body."""
    answer: dict = {"body": b""}

    async def receive() -> dict:
        await anyio.sleep_forever()
        return {}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = dict(message["headers"])
        else:
            answer["body"] += message.get("body", b"")

    scope = {"type": "http", "method": "GET", "path": path, "headers": [(b"accept", accept)]}
    await app(scope, receive, send)
    return answer


def test_full_places_and_queue_answer_503_with_retry_after_in_bounded_time() -> None:
    run_async(full_places_and_queue)


async def full_places_and_queue() -> None:
    inner = Held()
    app = Overload(inner, max_active=1, max_waiting=1, wait_seconds=0.3, retry_after=7)
    answers: dict[str, dict] = {}

    async def run(name: str, path: str, accept: bytes = b"application/json") -> None:
        answers[name] = await call(app, path, accept)

    async with anyio.create_task_group() as group:
        group.start_soon(run, "first", "/api/v1/users/a/purchases")
        await anyio.sleep(0.05)
        group.start_soon(run, "queued", "/u/a")  # waits for the one place...
        await anyio.sleep(0.05)
        group.start_soon(run, "refused", "/u/a", b"text/html")  # ... and the queue is full
        await anyio.sleep(0.05)
        assert answers["refused"]["status"] == 503 and answers["refused"]["headers"][b"retry-after"] == b"7"
        assert b"busy" in answers["refused"]["body"] and b"text/html" in answers["refused"]["headers"][b"content-type"]
        # Health checks and static files never wait, even now.
        group.start_soon(run, "health", "/healthz")
        group.start_soon(run, "static", "/static/style.css")
        with anyio.fail_after(1):
            while "queued" not in answers:  # its wait ran out: 503, not a hang
                await anyio.sleep(0.02)
        assert answers["queued"]["status"] == 503
        assert json.loads(answers["queued"]["body"]) == {"detail": "Server busy, retry later"}
        assert inner.inside == 3  # the first, /healthz and /static: the refused ones never got in
        inner.release.set()
    assert answers["first"]["status"] == answers["health"]["status"] == answers["static"]["status"] == 200
    assert app.shed == 2
    assert (await call(app, "/u/a"))["status"] == 200  # the place is free again


def test_a_stream_gives_its_place_back_when_it_answers_and_streams_are_capped() -> None:
    run_async(stream_places)


async def stream_places() -> None:
    inner = Held()
    app = Overload(inner, max_active=1, max_waiting=0, wait_seconds=0.1, max_streams=1)
    answers: dict[str, dict] = {}

    async def run(name: str, path: str) -> None:
        answers[name] = await call(app, path)

    async with anyio.create_task_group() as group:
        group.start_soon(run, "stream", "/feed/events")
        await anyio.sleep(0.05)  # it has answered and is streaming: its place is free
        assert (await call(app, "/feed/events"))["status"] == 503  # one stream at most
        group.start_soon(run, "page", "/u/a")
        await anyio.sleep(0.05)
        assert inner.inside == 2  # the page got the place the open stream gave back
        inner.release.set()
    assert answers["stream"]["status"] == answers["page"]["status"] == 200
