"""Web test fixtures: the app on the `settings` database (SQLite and PostgreSQL), a TestClient,
and helpers to make users, sign in, and put a received email through the real processing."""

from __future__ import annotations

import re
import warnings
from contextlib import contextmanager

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's TestClient deprecation notice about httpx
    from fastapi.testclient import TestClient

from sqlalchemy import event

from purchaseshare.db import get_engine, session_scope
from purchaseshare.mailstore import store_raw
from purchaseshare.models import User
from purchaseshare.processing import Outcome, process_raw_email
from purchaseshare.users import create_user
from web.app import create_app
from web.security import hash_password


@contextmanager
def counted(settings):
    """Counts the SQL statements SQLAlchemy runs while the block runs (`calls["n"]`)."""
    engine = get_engine(settings)
    calls = {"n": 0}

    def count(*_args) -> None:
        calls["n"] += 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield calls
    finally:
        event.remove(engine, "before_cursor_execute", count)


PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def app(settings):
    return create_app(settings, run_worker=False)


@pytest.fixture
def client(app):
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def other_client(app):
    """A second browser (another user, or anonymous)."""
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


def csrf(client: TestClient, path: str = "/") -> str:
    """The session's CSRF token, read from a rendered form like a browser would."""
    page = client.get(path, headers={"accept": "text/html"})
    found = _CSRF.search(page.text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def post(client: TestClient, path: str, data: dict | None = None, files=None, page: str = "/"):
    """POST a form with the session's CSRF token."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf(client, page)}, files=files,
                       headers={"accept": "text/html"})


def make_user(settings, handle: str, password: str = PASSWORD, email: str | None = None) -> User:
    with session_scope(settings) as session:
        user = create_user(session, handle, email=email or f"{handle}@example.org",
                           password_hash=hash_password(password))
        session.commit()
        return user


def log_in(client: TestClient, handle: str, password: str = PASSWORD) -> None:
    response = post(client, "/login", {"handle": handle, "password": password}, page="/login")
    assert response.status_code == 303, response.text


def receive(settings, user: User, raw: bytes) -> Outcome:
    """An email for `user` through the same store + processing as IMAP mail (synchronously)."""
    with session_scope(settings) as session:
        stored = store_raw(session, raw, source="test", user_id=user.id, attributed_by="cli")
    return process_raw_email(stored.raw_email.id, settings)
