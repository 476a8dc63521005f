"""The IMAP poller's batch path, on SQLite and PostgreSQL with the real redis-server:

- `store_raws` (one lookup and one commit per FETCH batch) ends exactly where `store_raw` one by
  one would: duplicates of stored mail, and inside the batch, are no-ops returning the stored row;
  losing a race with another process falls back to one by one;
- `send_parse` (one Redis round trip for the batch) queues exactly one `parse_email` per id, and
  when Redis is down the rows stamped queued in the storing commit come back through the sweeper.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import redis
from dramatiq import Message
from sqlalchemy import event
from sqlmodel import select

from purchaseshare.clock import utcnow
from purchaseshare.config import get_settings
from purchaseshare.db import session_scope
from purchaseshare.mailstore import Incoming, store_raw, store_raws
from purchaseshare.models import RawEmail, RawStatus
from tests.ingest.workers_harness import flush_redis, purchase_fixtures, sending_to, with_message_id
from workers.actors import requeue_stale, send_parse

pytestmark = pytest.mark.services


def _emails(count: int, tag: str) -> list[bytes]:
    fixtures = purchase_fixtures()
    return [with_message_id(fixtures[n % len(fixtures)].raw, f"{tag}-{n}@test.purchaseshare") for n in range(count)]


def _rows(session) -> list[RawEmail]:
    session.expire_all()
    return list(session.exec(select(RawEmail).order_by(RawEmail.id)).all())


def test_a_batch_stores_what_one_by_one_would(settings, session):
    a, b, c = _emails(3, "batch")
    before = store_raw(session, a, source="earlier").raw_email
    resent_b = b.replace(b"\nSubject:", b"\nX-Resent: yes\nSubject:", 1)  # other bytes, same Message-ID
    assert resent_b != b
    stamp = utcnow()
    results = store_raws(session, [
        Incoming(a, "imap://x;uid=1"),  # stored before: a no-op
        Incoming(b, "imap://x;uid=2", envelope_to="receipts+tok@purchaseshare.test"),
        Incoming(b, "imap://x;uid=3"),  # the same bytes twice in one batch
        Incoming(resent_b, "imap://x;uid=4"),  # the same Message-ID in one batch
        Incoming(c, "imap://x;uid=5"),
        Incoming(b"  \r\n", "imap://x;uid=6"),  # refused: kept, failed at once, with the reason
    ], queued_at=stamp)

    assert [stored.created for stored in results] == [False, True, False, False, True, True]
    assert results[0].raw_email.id == before.id
    assert results[1].raw_email.id == results[2].raw_email.id == results[3].raw_email.id
    rows = _rows(session)
    assert len(rows) == 4  # a, b, c and the empty one: nothing twice
    by_id = {row.id: row for row in rows}
    stored_b, stored_c, empty = (by_id[results[n].raw_email.id] for n in (1, 4, 5))
    assert (stored_b.raw, stored_b.source, stored_b.envelope_to) == (b, "imap://x;uid=2", "receipts+tok@purchaseshare.test")
    assert stored_c.raw == c and stored_c.status == RawStatus.RECEIVED.value
    assert empty.status == RawStatus.FAILED.value and "empty message" in (empty.reason or "")
    # Stamped queued in the storing commit (no second write of the rows); the earlier row untouched.
    for row in (stored_b, stored_c, empty):
        assert row.queued_at is not None and abs(row.queued_at.replace(tzinfo=None) - stamp.replace(tzinfo=None)) < timedelta(seconds=1)
    assert by_id[before.id].queued_at is None and by_id[before.id].source == "earlier"

    again = store_raws(session, [Incoming(c, "imap://x;uid=7"), Incoming(a, "imap://x;uid=8")])
    assert [(stored.created, stored.raw_email.id) for stored in again] == [(False, stored_c.id), (False, before.id)]
    assert len(_rows(session)) == 4


def test_a_batch_that_loses_a_race_falls_back_to_one_by_one(settings, session):
    mine, theirs = _emails(2, "race")

    raced: list[bool] = []

    def another_process_stores_it_first(_session) -> None:  # between our lookup and our commit
        if not raced:
            raced.append(True)
            with session_scope(settings) as other:
                store_raw(other, theirs, source="the other poller")

    event.listen(session, "before_commit", another_process_stores_it_first)
    try:
        results = store_raws(session, [Incoming(mine, "mine"), Incoming(theirs, "mine too")], queued_at=utcnow())
    finally:
        event.remove(session, "before_commit", another_process_stores_it_first)
    assert raced

    assert [stored.created for stored in results] == [True, False]
    assert results[1].raw_email.source == "the other poller"
    rows = _rows(session)
    assert sorted(row.source for row in rows) == ["mine", "the other poller"]
    assert all(row.status == RawStatus.RECEIVED.value for row in rows)


def _queued(url: str) -> list[tuple[str, tuple]]:
    """(actor, args) of every message waiting in dramatiq's default queue on Redis."""
    client = redis.Redis.from_url(url)
    ids = client.lrange("dramatiq:default", 0, -1)
    bodies = client.hmget("dramatiq:default.msgs", ids) if ids else []
    assert None not in bodies  # every queued id has its message
    return [(message.actor_name, tuple(message.args)) for message in map(Message.decode, bodies)]


def test_one_round_trip_queues_each_email_once_and_a_failed_send_is_swept_up(settings, session, redis_service,
                                                                            monkeypatch):
    if redis_service.process.poll() is not None:
        redis_service.restart()
    flush_redis(redis_service.url)
    first = [stored.raw_email.id for stored in store_raws(
        session, [Incoming(raw, f"imap://x;uid={n}") for n, raw in enumerate(_emails(30, "send"))], queued_at=utcnow())]
    with sending_to(redis_service.url):
        send_parse(first)
    assert sorted(_queued(redis_service.url)) == sorted(("parse_email", (raw_id,)) for raw_id in first)

    redis_service.stop()  # a cold restart: the queue is lost, and so is the next batch's send
    late = [stored.raw_email.id for stored in store_raws(
        session, [Incoming(raw, f"imap://x;uid={n}") for n, raw in enumerate(_emails(7, "late"))], queued_at=utcnow())]
    with sending_to(redis_service.url), pytest.raises(redis.ConnectionError):
        send_parse(late)
    stamped_at = time.monotonic()
    redis_service.restart()
    assert _queued(redis_service.url) == []

    monkeypatch.setenv("PURCHASESHARE_REQUEUE_AFTER_SECONDS", "3")
    get_settings.cache_clear()
    with sending_to(redis_service.url):
        if time.monotonic() - stamped_at < 2.5:  # stamped queued just now: not overdue yet
            assert requeue_stale() == 0
        time.sleep(max(0.0, 3.2 - (time.monotonic() - stamped_at)))
        assert requeue_stale() == len(first) + len(late)  # every `received` row, once
    assert sorted(_queued(redis_service.url)) == sorted(("parse_email", (raw_id,)) for raw_id in first + late)
