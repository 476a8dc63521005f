"""Session-wide real services (started once, shared by the tests that ask for them)."""

from __future__ import annotations

import pytest

from tests.services.servers import dovecot_server, postgres_server, redis_server


@pytest.fixture(scope="session")
def redis_service():
    with redis_server() as server:
        yield server


@pytest.fixture(scope="session")
def dovecot_service():
    with dovecot_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_service():
    with postgres_server() as server:
        yield server
