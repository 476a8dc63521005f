"""Session-wide real services (started once, shared by the tests that ask for them) and the
database fixtures every storage test runs on: SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import settings as hypothesis_settings

from tests.helpers import IN_CI
from tests.services.servers import dovecot_server, postgres_server, redis_server, smtp_sink

# Under CI the property tests draw the same examples every run: a red build is reproducible
# (locally they keep exploring, and keep what they found in .hypothesis/).
hypothesis_settings.register_profile("ci", derandomize=True)
if IN_CI:
    hypothesis_settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _no_jobs_left_for_the_next_test():
    """A job a test queued on the in-process broker and never ran (a catch-up reparse, an image
    to store, a mail) must not run in the next test's database: drop whatever is left."""
    yield
    import sys

    broker_module = sys.modules.get("workers.broker")
    if broker_module is not None and broker_module.IN_PROCESS and broker_module._worker is None:
        broker_module.broker.flush_all()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright drives Debian's Chromium (Playwright's own download needs the internet)."""
    from tests.services.servers import CHROMIUM, CHROMIUM_ARGS, require

    require(CHROMIUM, "chromium")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def redis_service():
    with redis_server() as server:
        yield server


@pytest.fixture(scope="session")
def dovecot_service():
    with dovecot_server() as server:
        yield server


@pytest.fixture(scope="session")
def smtp_service():
    with smtp_sink() as server:
        yield server


@pytest.fixture
def smtp(smtp_service, settings, monkeypatch):
    """The real SMTP server, emptied, with SMTP_URL pointing at it (settings and environment)."""
    from purchaseshare.config import get_settings

    smtp_service.clear()
    settings.smtp_url = smtp_service.url
    monkeypatch.setenv("SMTP_URL", smtp_service.url)
    get_settings.cache_clear()
    yield smtp_service
    smtp_service.clear()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def postgres_service():
    with postgres_server() as server:
        yield server


DATABASES = ["sqlite", "postgresql"]


@pytest.fixture(params=DATABASES)
def settings(request, tmp_path, monkeypatch):
    """Fresh, migrated database for one test, on SQLite and on PostgreSQL. The environment is
    set too, so code that calls get_settings() (actors, CLI, subprocesses) sees the same one."""
    from purchaseshare.config import Settings, get_settings
    from purchaseshare.db import dispose_engines, migrate

    monkeypatch.setenv("PURCHASESHARE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SECRET_KEY", "test-secret-key")
    monkeypatch.setenv("PURCHASESHARE_INBOX", "receipts@purchaseshare.test")
    monkeypatch.setenv("PURCHASESHARE_AUTHSERV_ID", "mx.purchaseshare.test")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("SMTP_URL", raising=False)
    monkeypatch.delenv("IMAP_URL", raising=False)
    if request.param == "postgresql":
        postgres = request.getfixturevalue("postgres_service")
        monkeypatch.setenv("DATABASE_URL", postgres.create_database(f"t{uuid.uuid4().hex[:12]}"))
    else:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    # argon2 at its production cost is most of a web test's time; hashes made here are only
    # ever checked here, so a cheap (still argon2id) setting keeps the suite fast.
    from argon2 import PasswordHasher

    monkeypatch.setattr("web.security._hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    get_settings.cache_clear()
    current = Settings()
    migrate(current)
    yield current
    dispose_engines()
    get_settings.cache_clear()


@pytest.fixture
def session(settings):
    from purchaseshare.db import session_scope

    with session_scope(settings) as db:
        yield db
