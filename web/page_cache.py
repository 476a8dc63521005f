"""Repeat views of public pages and feeds, served from memory while the database is unchanged.

Every write that can change what such a page shows bumps ONE counter in the database, inside the
writing transaction (triggers of migration 0003: users, published purchases, approved items,
follows, likes, comments, reviews, collections, notifications — whoever writes: web, workers, CLI).
A page is stored with the counter's value read BEFORE it was rendered, and served again only while
the counter still has that value: invalidation is exact and works across processes, for one tiny
query per request instead of the page's own queries, templates and framework work.

Keys: method, path, query, host, scheme, Accept, the locale read from Accept-Language (pages
write money and dates in the viewer's locale: web/money.py), and the session's content — which Starlette's
SessionMiddleware (outside this one) has already verified from the signed cookie, so a signed-in
page is only ever served back to the same session, and only while that session is live on the
server (one indexed lookup: a logged-out cookie replayed never gets a stored page). Only 200 HTML answers that left the session
untouched are stored: a page that read a flash message or made a CSRF token is rendered each time,
and so is one whose route set Cache-Control itself (the way a route opts out).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import anyio
import anyio.to_thread
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.money import header_locale
from web.sessions import SESSION_KEY, live_query
from web.threads import reserved_threads

log = logging.getLogger(__name__)

# The pages read often and changed rarely: the home page, the home feed, profiles, purchase pages.
CACHED_PATH = re.compile(r"/(?:feed|u/[^/]+(?:/p/[^/]+)?)?")
# What migration 0003 installs; without every one of them the cache could serve stale pages.
WATCHED_TABLES = ("user", "follow", "like", "comment", "notification", "review", "collection",
                  "collection_item", "purchase", "purchase_item")
REQUIRED_TRIGGERS = frozenset(f"cache_gen_{table}_{event}" for table in WATCHED_TABLES
                              for event in ("insert", "update", "delete"))
_GENERATION_SQL = "SELECT value FROM cache_generation WHERE id = 1"
_HEADERS_IN_KEY = (b"host", b"accept")
_LANGUAGE = b"accept-language"


# Reads over the network wait for this one thread, not for the shared pool's (which a burst may
# fill): the reads are one at a time anyway (one connection, under a lock).
def _read_limiter() -> anyio.CapacityLimiter:
    return reserved_threads("page_cache_read_thread", 1)


@dataclass(frozen=True, slots=True)
class _Page:
    generation: int
    start: Message  # http.response.start: status and headers (+ x-page-cache: hit)
    body: bytes


def installed_triggers(engine: Engine) -> set[str]:
    if engine.dialect.name == "postgresql":
        query = "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'cache_gen_%'"
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'cache_gen_%'"
    with engine.connect() as conn:
        return set(conn.execute(text(query)).scalars())


class GenerationReader:
    """Reads the counter on a connection of its own, kept open in autocommit mode (each read sees
    the newest commit, and no transaction stays open): a pooled SQLAlchemy round trip would cost
    more than all the rest of a cache hit. A broken connection is dropped and opened again."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.local = engine.dialect.name == "sqlite"
        self.connection = None
        self.lock = threading.Lock()  # the event loop's thread, mostly; TestClient uses others
        self.queries = 0  # run so far (outside SQLAlchemy's events, so counted here)
        self.last: tuple[float, int] | None = None  # (monotonic time the newest read began, value)
        self._complete: bool | None = None

    def complete(self) -> bool:
        """Whether every trigger is installed, i.e. whether an unchanged counter means unchanged data."""
        if self._complete is None:
            self._complete = installed_triggers(self.engine) >= REQUIRED_TRIGGERS
        return self._complete

    async def current(self, max_age: float = 0.0) -> int | None:
        """The counter, read now; or, with max_age, a value read at most that many seconds ago
        (readers that can wait a moment share one read)."""
        if self.local:
            return self.read(max_age)  # a local file: microseconds, cheaper than a thread hop
        # Over the network: a stalled server must block a worker thread, not the event loop.
        return await anyio.to_thread.run_sync(self.read, max_age, limiter=_read_limiter())

    def read(self, max_age: float = 0.0) -> int | None:
        with self.lock:
            began = time.monotonic()
            if max_age and self.last is not None and began - self.last[0] <= max_age:
                return self.last[1]
        row = self._fetch(_GENERATION_SQL, ())
        if row is None:
            return None
        value = int(row[0])
        with self.lock:
            self.last = (began, value)
        return value

    def session_live(self, token: str) -> bool:
        """Whether a server-side session is still live (web/sessions.py): one indexed lookup."""
        return self._fetch(*live_query(self.engine.dialect.name, token), missing_ok=True) is not None

    def _fetch(self, sql: str, params: tuple, *, missing_ok: bool = False) -> tuple | None:
        with self.lock:
            for _attempt in range(2):
                try:
                    if self.connection is None:
                        self.connection = self._connect()
                    cursor = self.connection.cursor()
                    self.queries += 1
                    cursor.execute(sql, params)
                    row = cursor.fetchone()
                    cursor.close()
                    if row is None and not missing_ok:
                        raise LookupError(sql)
                    return row
                except (SQLAlchemyError, LookupError, self.engine.dialect.loaded_dbapi.Error) as exc:
                    log.debug("page cache: a read failed: %s", exc)
                    self._close()
            return None

    def _connect(self):
        pooled = self.engine.raw_connection()
        connection = pooled.driver_connection
        pooled.detach()  # ours for good: the pool neither resets nor recycles it
        if self.engine.dialect.name == "postgresql":
            connection.autocommit = True
        else:
            connection.isolation_level = None  # sqlite3: autocommit
            # Read on the event loop: a locked file answers "unknown" (the page is rendered)
            # after a moment, instead of stopping every request for the usual 30 s.
            connection.execute("PRAGMA busy_timeout=100")
        return connection

    def _close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.close()
            except Exception:  # already broken; dropping it is all we want
                pass
            self.connection = None

    def close(self) -> None:
        with self.lock:
            self._close()


class PageCache:
    """Pure ASGI middleware; must sit inside SessionMiddleware (it reads scope["session"])."""

    def __init__(self, app: ASGIApp, reader: GenerationReader, max_bytes: int) -> None:
        self.app = app
        self.reader = reader
        self.engine = reader.engine
        self.max_bytes = max_bytes
        self.pages: OrderedDict[tuple, _Page] = OrderedDict()  # least recently used first
        self.size = 0
        self.generation = -1  # the newest value seen; older pages are dropped when it moves
        self.enabled: bool | None = None  # decided at the first request (after migrations ran)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "GET" or not CACHED_PATH.fullmatch(scope["path"])
                or not self._usable()):
            await self.app(scope, receive, send)
            return
        generation = await self._read_generation()
        if generation is None:  # the database is unreachable: let the app answer (or fail) as usual
            await self.app(scope, receive, send)
            return
        session_before = _session_key(scope)
        key = (scope["path"], scope["query_string"], scope.get("scheme"), session_before, _locale_tag(scope),
               *(value for name, value in scope["headers"] if name in _HEADERS_IN_KEY))
        page = self.pages.get(key)
        if page is not None and page.generation == generation and await self._session_live(scope):
            if key in self.pages:  # another request may have dropped it while the session was checked
                self.pages.move_to_end(key)
            await send({**page.start, "headers": list(page.start["headers"])})  # outer middlewares add to it
            await send({"type": "http.response.body", "body": page.body})
            return

        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":  # a copy: outer middlewares edit headers in place
                start = {**message, "headers": list(message.get("headers", ()))}
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        if start is not None and _storable(start) and _session_key(scope) == session_before:
            hit_start = {**start, "headers": [*start["headers"], (b"x-page-cache", b"hit")]}
            self._store(key, _Page(generation, hit_start, b"".join(chunks)))

    def _usable(self) -> bool:
        if self.max_bytes <= 0:
            return False
        if self.enabled is None:
            try:
                self.enabled = self.reader.complete()
            except SQLAlchemyError as exc:
                log.warning("page cache: cannot read the triggers (%s); not caching for now", exc)
                return False
            if not self.enabled:
                log.warning("page cache OFF: triggers missing (%s) — run `purchaseshare migrate`",
                            ", ".join(sorted(REQUIRED_TRIGGERS - installed_triggers(self.engine))))
        return self.enabled

    async def _session_live(self, scope: Scope) -> bool:
        """A stored signed-in page goes only to a session that is still live on the server: a
        logged-out (revoked) cookie replayed with the same content gets the app's answer instead."""
        token = (scope.get("session") or {}).get(SESSION_KEY)
        if token is None:
            return True
        if not isinstance(token, str):
            return False
        if self.reader.local:
            return self.reader.session_live(token)
        return await anyio.to_thread.run_sync(self.reader.session_live, token, limiter=_read_limiter())

    async def _read_generation(self) -> int | None:
        value = await self.reader.current()
        if value is None:
            return None
        if value != self.generation:
            if value > self.generation:  # every stored page is older: free them at once
                self.pages.clear()
                self.size = 0
            self.generation = max(value, self.generation)
        return value

    def _store(self, key: tuple, page: _Page) -> None:
        if page.generation != self.generation or len(page.body) > self.max_bytes // 8:
            return  # rendered before a newer write was seen, or too big to be worth a slot
        old = self.pages.pop(key, None)
        if old is not None:
            self.size -= len(old.body)
        self.pages[key] = page
        self.size += len(page.body)
        while self.size > self.max_bytes:
            _, evicted = self.pages.popitem(last=False)
            self.size -= len(evicted.body)


def _locale_tag(scope: Scope) -> str:
    """The locale the page is written in (as web.money.request_locale reads it): visitors whose
    headers differ but name the same locale share one stored page."""
    header = next((value for name, value in scope["headers"] if name == _LANGUAGE), b"")
    return str(header_locale(header.decode("latin-1")))


def _session_key(scope: Scope) -> str:
    return json.dumps(scope.get("session") or {}, sort_keys=True, separators=(",", ":"))


def _storable(start: Message) -> bool:
    if start["status"] != 200:
        return False
    headers = dict(start.get("headers") or ())
    return (headers.get(b"content-type", b"").startswith(b"text/html") and b"set-cookie" not in headers
            and b"cache-control" not in headers)
