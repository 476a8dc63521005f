"""Fixtures of the worker tests."""

from __future__ import annotations

import pytest

from tests.ingest.workers_harness import flush_redis


@pytest.fixture
def redis_url(redis_service) -> str:
    """The shared redis-server, running (a failed test may have left it stopped) and empty."""
    if redis_service.process.poll() is not None:
        redis_service.restart()
    flush_redis(redis_service.url)
    return redis_service.url
