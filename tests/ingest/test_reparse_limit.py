"""A reparse has the worker's per-email time limit (issue 17): PURCHASESHARE_PARSE_TIME_LIMIT_MS,
as parse_email has through dramatiq. Past it an email that had made no purchase ends failed with
the reason its first parse would give; one that made a purchase keeps it; the thread goes on."""

from __future__ import annotations

import random
import threading
import time

import pytest

from bench.adversarial import item_table
from purchaseshare import limits, pipeline
from purchaseshare.mailstore import store_raw
from purchaseshare.models import Purchase, RawEmail
from purchaseshare.processing import process_raw_email
from purchaseshare.reparse import reparse_raw_email
from purchaseshare.users import create_user

LIMIT_MS = 300


def _busy(seconds: float) -> None:
    """Busy in Python (short sleeps), as a parse is busy in bytecode: where a TimeUp lands."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        time.sleep(0.01)


@pytest.fixture
def slow_parse(monkeypatch):
    """pipeline.run takes 30 s (then reads the email) while `slow` holds True."""
    real = pipeline.run
    slow = {"on": False}

    def run(raw: bytes, *args: object, **kwargs: object):
        if slow["on"]:
            _busy(30)
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(pipeline, "run", run)  # processing and reparse call it through the module
    monkeypatch.setenv(limits.PARSE_TIME_LIMIT_ENV, str(LIMIT_MS))
    return slow


def _stored(session, settings, raw: bytes) -> int:
    user = create_user(session, f"limit{random.randrange(10**6)}")
    session.commit()
    stored = store_raw(session, raw, source="test", user_id=user.id, attributed_by="cli").raw_email
    process_raw_email(stored.id, settings)
    return stored.id


def _timed_reparse(raw_id: int, settings):
    started = time.monotonic()
    outcome = reparse_raw_email(raw_id, settings)
    return outcome, time.monotonic() - started


def test_a_reparse_over_the_limit_fails_the_email_like_its_first_parse(session, settings, slow_parse):
    raw_id = _stored(session, settings, b"From: friend@example.org\r\nTo: sam@example.org\r\nSubject: hello\r\n\r\n"
                                        b"See you on Sunday.\r\n")
    session.expire_all()
    assert session.get(RawEmail, raw_id).status == "not_purchase"
    slow_parse["on"] = True
    outcome, elapsed = _timed_reparse(raw_id, settings)
    assert elapsed < 10, f"the reparse held the thread {elapsed:.1f} s"
    session.expire_all()
    row = session.get(RawEmail, raw_id)
    assert row.status == outcome.status == "failed"
    assert row.reason == f"could not read this email: {pipeline.TOO_COSTLY} (stopped after 0.3 s)"
    slow_parse["on"] = False  # the same thread goes on: the next reparse reads the email
    again, _ = _timed_reparse(raw_id, settings)
    assert again.status == "not_purchase"


def test_a_reparse_over_the_limit_keeps_the_purchase_it_made(session, settings, slow_parse):
    raw_id = _stored(session, settings, item_table(5, seed=random.randrange(1000)))
    session.expire_all()
    before = session.get(RawEmail, raw_id)
    assert before.status == "parsed" and before.purchase_id is not None
    total = session.get(Purchase, before.purchase_id).total
    slow_parse["on"] = True
    outcome, elapsed = _timed_reparse(raw_id, settings)
    assert elapsed < 10
    session.expire_all()
    row = session.get(RawEmail, raw_id)
    assert row.status == outcome.status == "parsed" and row.purchase_id == before.purchase_id
    assert row.reason == f"parsed again: {pipeline.TOO_COSTLY} (stopped after 0.3 s); the stored purchase was kept"
    assert session.get(Purchase, row.purchase_id).total == total


def test_a_time_limit_stops_only_its_own_overdue_block():
    caught: dict[str, str] = {}

    def work(name: str, limit_ms: int, seconds: float) -> None:
        try:
            with limits.time_limit(limit_ms):
                try:
                    _busy(seconds)
                except Exception:  # a parser's catch-all does not swallow it
                    caught[name] = "swallowed"
                    return
            _busy(limit_ms / 1000 * 2)  # after a block that ended in time, nothing lands later
            caught[name] = "finished"
        except limits.TimeUp:
            caught[name] = "stopped"

    threads = [threading.Thread(target=work, args=("slow", 200, 5)),
               threading.Thread(target=work, args=("quick", 400, 0.05)),
               threading.Thread(target=work, args=("close", 1000, 0.5))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert caught == {"slow": "stopped", "quick": "finished", "close": "finished"}
