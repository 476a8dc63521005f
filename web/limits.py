"""Bounds on what one request may make the web process hold: the request body (every POST; the
upload a larger, configurable amount), files per form, and account exports built at once.

A body over its limit is refused with 413 before it is read when Content-Length says so, and
otherwise as soon as the bytes read pass the limit (a chunked body without Content-Length), so a
request never gets a 1 GB body spooled before the route sees it."""

from __future__ import annotations

import threading

from fastapi import HTTPException, Request
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UPLOAD_PATH = "/upload"
MAX_FORM_FILES = 10  # files in one form (only /upload takes files)
MAX_BODY = 2 * 1024 * 1024  # any other form: the longest one (manual entry, 200 item lines) is a few kB
_SLACK = 256 * 1024  # multipart boundaries, headers and the other fields of an upload


def too_large(limit: int) -> HTTPException:
    return HTTPException(status_code=413, detail=f"Request too large: at most {limit // 2**20} MB in one request.")


class BodyLimit:
    """Pure ASGI middleware: counts the body as the app reads it and stops it at the limit."""

    def __init__(self, app: ASGIApp, *, upload_bytes: int, other_bytes: int = MAX_BODY) -> None:
        self.app, self.upload_bytes, self.other_bytes = app, upload_bytes, other_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        upload = scope["path"] == UPLOAD_PATH
        limit = self.upload_bytes + _SLACK if upload else self.other_bytes
        shown = self.upload_bytes if upload else self.other_bytes
        declared = dict(scope["headers"]).get(b"content-length", b"")
        early = declared.isdigit() and int(declared) > limit
        read = 0

        async def limited_receive() -> Message:
            nonlocal read
            if early:  # raised inside the app: its error page (HTML or JSON) says why
                raise too_large(shown)
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:
                    raise too_large(shown)
            return message

        await self.app(scope, limited_receive, send)


async def read_form(request: Request) -> FormData:
    """The request's form with at most MAX_FORM_FILES files (Starlette caches it for the route).
    Starlette stops at the file past the limit; its 400 becomes a clear 413."""
    try:
        return await request.form(max_files=MAX_FORM_FILES)
    except StarletteHTTPException as exc:  # what Starlette raises for a bad form
        if exc.status_code == 400 and "Too many files" in str(exc.detail):
            raise HTTPException(status_code=413, detail=f"Too many files: at most {MAX_FORM_FILES} in one upload.") \
                from exc
        raise


class ExportSlot:
    """One taken place in ExportSlots; `release` is idempotent (finished AND disconnected)."""

    def __init__(self, slots: ExportSlots, user_id: int) -> None:
        self._slots, self._user_id, self._held = slots, user_id, True

    def release(self) -> None:
        with self._slots.lock:
            if self._held:
                self._held = False
                self._slots.users.discard(self._user_id)
                self._slots.free.release()


class ExportSlots:
    """At most `size` exports built at once in this process, one per user: each holds a slice of a raw
    email and a zip's buffers, and a thread while it runs, so the total stays bounded however many
    are asked for."""

    def __init__(self, size: int) -> None:
        self.free = threading.BoundedSemaphore(size)
        self.users: set[int] = set()
        self.lock = threading.Lock()

    def take(self, user_id: int) -> ExportSlot | None:
        with self.lock:
            if user_id in self.users or not self.free.acquire(blocking=False):
                return None
            self.users.add(user_id)
            return ExportSlot(self, user_id)
