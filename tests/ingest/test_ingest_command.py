"""`purchaseshare ingest` (CONTRACT) and the actors run in-process (no REDIS_URL)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlmodel import select

from purchaseshare.config import get_settings
from purchaseshare.mailstore import store_raw
from purchaseshare.models import Purchase, RawEmail
from purchaseshare.users import create_user
from tests.helpers import FIXTURES, ROOT

EMAILS = [FIXTURES / "amazon" / "amazon_1.eml", FIXTURES / "_generic" / "generic_6_newsletter.eml"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "purchaseshare.cli", *args], cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=120)


def test_ingest_prints_one_status_line_per_file_and_is_idempotent(settings, tmp_path):
    assert _cli("user", "add", "bob").returncode == 0
    missing = tmp_path / "missing.eml"
    first = _cli("ingest", *map(str, EMAILS), str(missing), "--user", "bob")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"{EMAILS[0]}: parsed purchase #")
    assert lines[1].startswith(f"{EMAILS[1]}: not_purchase") and "newsletter" in lines[1]
    assert lines[2].startswith(f"{missing}: error: cannot read file")
    again = _cli("ingest", str(EMAILS[0]), "--user", "bob")
    assert again.returncode == 0 and "duplicate of an email already stored" in again.stdout
    from purchaseshare.db import session_scope

    with session_scope(settings) as session:
        assert len(session.exec(select(RawEmail)).all()) == 2
        assert len(session.exec(select(Purchase)).all()) == 1


def test_ingest_for_an_unknown_user_is_a_usage_error(settings):
    result = _cli("ingest", str(EMAILS[0]), "--user", "nobody")
    assert result.returncode == 2 and "no user with the handle 'nobody'" in result.stderr


def test_a_failing_parse_is_retried_then_marked_failed_with_the_reason(settings, session, monkeypatch):
    from purchaseshare import processing
    from workers import broker
    from workers.actors import enqueue_parse

    if not broker.IN_PROCESS:
        pytest.fail("the unit tests expect the in-process broker (REDIS_URL unset)")
    monkeypatch.setenv("PURCHASESHARE_MAX_ATTEMPTS", "2")
    get_settings.cache_clear()
    calls = []

    def broken(raw: bytes, source: str | None = None, **_options):
        calls.append(source)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(processing.pipeline, "run", broken)
    user = create_user(session, "carol")
    session.commit()
    stored = store_raw(session, EMAILS[0].read_bytes(), source="t", user_id=user.id, attributed_by="cli")
    broker.start_in_process_worker()
    try:
        enqueue_parse(session, [stored.raw_email.id])
        broker.wait_in_process(timeout_ms=30_000)
    finally:
        broker.stop_in_process_worker()
    session.expire_all()
    row = session.get(RawEmail, stored.raw_email.id)
    assert len(calls) == 2  # the first failure was retried once, the second was final
    assert row.status == "failed" and "after 2 attempts" in row.reason and "disk on fire" in row.reason
    assert row.attempts == 2
