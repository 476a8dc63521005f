"""Engine, sessions and migrations. SQLite (WAL, waits on locks) by default; PostgreSQL by URL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event
from sqlmodel import Session, create_engine

from purchaseshare.config import Settings, get_settings

MIGRATIONS = Path(__file__).with_name("migrations")
# A web process lets at most WEB_SESSIONS requests hold a database session at once (web.deps.get_db
# queues the rest without a thread). The pool has room for all of them plus the live-feed polls,
# the in-process worker's threads and a margin, so a thread that has a session never waits for a
# connection: that wait, with the connection holders waiting for a thread, froze the server.
# Eight per process: its Python code runs on one core at a time, and more threads would only
# fight the event loop for the GIL (run more `serve --workers` to use more cores).
WEB_SESSIONS = 8
POOL_SIZE = WEB_SESSIONS
POOL_OVERFLOW = 8  # live-feed polls (web.routes.social.STREAM_THREADS), worker threads, a margin
POOL_TIMEOUT = 10  # seconds; with the sizing above only a leak or a stalled database waits at all
_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        pool = {}  # an in-memory database has one connection per thread, no queue
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            pool = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW, "pool_timeout": POOL_TIMEOUT}
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW,
                         pool_timeout=POOL_TIMEOUT)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer (web + workers)
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
    cursor.close()


def get_engine(settings: Settings | None = None) -> Engine:
    """One engine per database URL per process."""
    url = (settings or get_settings()).sqlalchemy_url
    with _lock:
        if url not in _engines:
            _engines[url] = make_engine(url)
        return _engines[url]


def dispose_engines() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def session_scope(settings: Settings | None = None) -> Iterator[Session]:
    with Session(get_engine(settings), expire_on_commit=False) as session:
        yield session


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    config.attributes["engine"] = engine
    return config


def migrate(settings: Settings | None = None) -> Engine:
    """Bring the schema to the newest migration (idempotent; safe at every start)."""
    engine = get_engine(settings)
    with _lock:
        command.upgrade(alembic_config(engine), "head")
    return engine
