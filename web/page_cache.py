"""Repeat views of public pages and feeds, served from memory while what they show is unchanged.

Every write that can change what such a page shows bumps a counter in the database, inside the
writing transaction (triggers of migration 0012: users, published purchases, approved items,
follows, likes, comments, reviews, collections, notifications — whoever writes: web, workers, CLI).
The counters are scoped to whom the write concerns: a like bumps the purchase owner's, a follow
both people's, a rename the whole site's (scope 0). A page is stored with the counters of the
scopes it shows, read BEFORE it was rendered — the site, the page's owner (/u/<handle>...), the
signed-in viewer (their name and notifications are in the page), and for the home feed everyone
the viewer follows — and served again only while every one of them is unchanged: invalidation is
exact, works across processes, and a like on one purchase leaves every other owner's pages
stored. A hit costs one small query instead of the page's own queries, templates and framework work.

Keys: method, path, query, host, scheme, Accept, the locale read from Accept-Language (pages
write money and dates in the viewer's locale: web/money.py), and the session's content — which Starlette's
SessionMiddleware (outside this one) has already verified from the signed cookie, so a signed-in
page is only ever served back to the same session, and only while that session is live on the
server (one indexed lookup, which also says whose it is: a logged-out cookie replayed never gets a
stored page). Only 200 HTML answers that left the session
untouched are stored: a page that read a flash message or made a CSRF token is rendered each time,
and so is one whose route set Cache-Control itself (the way a route opts out).
"""

from __future__ import annotations

import json
import logging
import re
import threading
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
CACHED_PATH = re.compile(r"/(?:feed|u/([^/]+)(?:/p/[^/]+)?)?")
# What migration 0012 installs; without every one of them the cache could serve stale pages.
WATCHED_TABLES = ("user", "follow", "like", "comment", "notification", "review", "collection",
                  "collection_item", "purchase", "purchase_item")


def required_triggers(dialect: str) -> frozenset[str]:
    """Per watched table and event: the trigger that bumps (SQLite) or notes (PostgreSQL) the
    scopes it touches, and on PostgreSQL the deferred one that bumps them at commit."""
    kinds = ("cache_scope", "cache_flush") if dialect == "postgresql" else ("cache_scope",)
    return frozenset(f"{kind}_{table}_{event}" for kind in kinds for table in WATCHED_TABLES
                     for event in ("insert", "update", "delete"))


SITE = 0  # the scope of writes every page may show (a rename: names are printed beside comments)
# The counters of the scopes a page shows, as (scope, value) rows in scope order. A scope never
# bumped has no row: its first bump adds one, which changes the answer all the same.
_SCOPES_SQL = {
    "site": "SELECT id, value FROM cache_scope WHERE id IN ({p}, {p})",
    "owner": 'SELECT c.id, c.value FROM cache_scope c JOIN "user" u ON u.id = c.id WHERE u.handle = {p}',
    "followed": "SELECT c.id, c.value FROM cache_scope c JOIN follow f ON f.followee_id = c.id WHERE f.follower_id = {p}",
}
_HEADERS_IN_KEY = (b"host", b"accept")
_LANGUAGE = b"accept-language"
Versions = tuple[tuple[int, int], ...]


# Reads over the network wait for this one thread, not for the shared pool's (which a burst may
# fill): the reads are one at a time anyway (one connection, under a lock).
def _read_limiter() -> anyio.CapacityLimiter:
    return reserved_threads("page_cache_read_thread", 1)


@dataclass(frozen=True, slots=True)
class Shown:
    """Whose writes a page shows, from its path alone (as the routes read it)."""

    owner_handle: str | None  # /u/<handle> and its purchase pages (handles are stored lowercase)
    feed: bool  # the home feed: the viewer's follows too

    @classmethod
    def of(cls, path: str) -> Shown | None:
        match = CACHED_PATH.fullmatch(path)
        if match is None:
            return None
        handle = match.group(1)
        return cls(handle.lower() if handle else None, path == "/feed")


HOME_FEED = Shown(None, True)


@dataclass(frozen=True, slots=True)
class _Page:
    versions: Versions
    start: Message  # http.response.start: status and headers (+ x-page-cache: hit)
    body: bytes


def installed_triggers(engine: Engine) -> set[str]:
    if engine.dialect.name == "postgresql":
        query = "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'cache_scope_%' OR tgname LIKE 'cache_flush_%'"
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'cache_scope_%'"
    with engine.connect() as conn:
        return set(conn.execute(text(query)).scalars())


class GenerationReader:
    """Reads the counters on a connection of its own, kept open in autocommit mode (each read sees
    the newest commit, and no transaction stays open): a pooled SQLAlchemy round trip would cost
    more than all the rest of a cache hit. A broken connection is dropped and opened again."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.local = engine.dialect.name == "sqlite"
        self.placeholder = "?" if self.local else "%s"
        self.connection = None
        self.lock = threading.Lock()  # the event loop's thread, mostly; TestClient uses others
        self.queries = 0  # run so far (outside SQLAlchemy's events, so counted here)
        self._complete: bool | None = None

    def complete(self) -> bool:
        """Whether every trigger is installed, i.e. whether unchanged counters mean unchanged data."""
        if self._complete is None:
            self._complete = installed_triggers(self.engine) >= required_triggers(self.engine.dialect.name)
        return self._complete

    async def versions(self, shown: Shown, viewer: int | None) -> Versions | None:
        """The counters of what a page shows, read now (None: the database did not answer)."""
        if self.local:
            return self.read(shown, viewer)  # a local file: microseconds, cheaper than a thread hop
        # Over the network: a stalled server must block a worker thread, not the event loop.
        return await anyio.to_thread.run_sync(self.read, shown, viewer, limiter=_read_limiter())

    def read(self, shown: Shown, viewer: int | None) -> Versions | None:
        parts, params = [_SCOPES_SQL["site"]], [SITE, SITE if viewer is None else viewer]
        if shown.owner_handle is not None:
            parts.append(_SCOPES_SQL["owner"])
            params.append(shown.owner_handle)
        if shown.feed and viewer is not None:
            parts.append(_SCOPES_SQL["followed"])
            params.append(viewer)
        sql = " UNION ALL ".join(parts).format(p=self.placeholder) + " ORDER BY 1"
        rows = self._fetch(sql, tuple(params))
        return None if rows is None else tuple((int(scope), int(value)) for scope, value in rows)

    def session_user(self, token: str) -> int | None:
        """Whose server-side session this is, if it is still live (web/sessions.py): one indexed
        lookup. None for an unknown, revoked or expired one (and when the database did not answer)."""
        rows = self._fetch(*live_query(self.engine.dialect.name, token))
        return int(rows[0][0]) if rows else None

    def _fetch(self, sql: str, params: tuple) -> list[tuple] | None:
        with self.lock:
            for _attempt in range(2):
                try:
                    if self.connection is None:
                        self.connection = self._connect()
                    cursor = self.connection.cursor()
                    self.queries += 1
                    cursor.execute(sql, params)
                    rows = cursor.fetchall()
                    cursor.close()
                    return rows
                except (SQLAlchemyError, self.engine.dialect.loaded_dbapi.Error) as exc:
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
        self.enabled: bool | None = None  # decided at the first request (after migrations ran)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        shown = Shown.of(scope["path"]) if scope["type"] == "http" and scope["method"] == "GET" else None
        if shown is None or not self._usable():
            await self.app(scope, receive, send)
            return
        live, viewer = await self._viewer(scope)
        versions = await self.reader.versions(shown, viewer) if live else None
        if versions is None:  # a dead session, or the database is unreachable: the app answers as usual
            await self.app(scope, receive, send)
            return
        session_before = _session_key(scope)
        key = (scope["path"], scope["query_string"], scope.get("scheme"), session_before, _locale_tag(scope),
               *(value for name, value in scope["headers"] if name in _HEADERS_IN_KEY))
        page = self.pages.get(key)
        if page is not None and page.versions == versions:
            if key in self.pages:  # another request may have dropped it while the counters were read
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
            # Stored with the counters read BEFORE rendering: a write during the render makes
            # them differ from the next read, so the page is rendered again rather than served stale.
            self._store(key, _Page(versions, hit_start, b"".join(chunks)))

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
                            ", ".join(sorted(required_triggers(self.engine.dialect.name) - installed_triggers(self.engine))))
        return self.enabled

    async def _viewer(self, scope: Scope) -> tuple[bool, int | None]:
        """(whether the session is live, the signed-in viewer's user id or None for nobody). A
        session not live on the server (revoked, expired, unknown) is not: a logged-out cookie
        replayed with the same content gets the app's answer, never a stored page."""
        token = (scope.get("session") or {}).get(SESSION_KEY)
        if token is None:
            return True, None
        if not isinstance(token, str):
            return False, None
        if self.reader.local:
            user_id = self.reader.session_user(token)
        else:
            user_id = await anyio.to_thread.run_sync(self.reader.session_user, token, limiter=_read_limiter())
        return user_id is not None, user_id

    def _store(self, key: tuple, page: _Page) -> None:
        if len(page.body) > self.max_bytes // 8:
            return  # too big to be worth a slot
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
