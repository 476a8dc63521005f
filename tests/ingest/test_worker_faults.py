"""The queue and the workers lose nothing and duplicate nothing (issue 4), with real services:
redis-server, real `python -m dramatiq workers.actors` processes, SQLite and PostgreSQL (the
`settings` fixture). Every test counts: N emails in, N raw emails all in a final status, exactly
one purchase per distinct order, no duplicate, none left `received`, none `failed` (but the one
that is meant to fail for good).

The real `enqueue_parse` / `requeue_stale` send from this process on the real Redis
(`sending_to`, see tests/ingest/workers_harness.py). The workers are started first: they boot
(~2 s) while the emails are stored.
"""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
import redis
from sqlmodel import select

from purchaseshare.config import get_settings
from purchaseshare.mailstore import store_raw
from purchaseshare.models import Purchase, RawEmail
from purchaseshare.users import create_user
from tests import wrapping
from tests.ingest.workers_harness import (
    Workers,
    counts,
    purchase_fixtures,
    read_trace,
    received_left,
    redis_keys,
    sending_to,
    wait_until_final,
    with_header,
    with_message_id,
    worker_env,
)
from workers.actors import enqueue_parse, requeue_stale

pytestmark = pytest.mark.services


def _user(session, handle: str):
    user = create_user(session, handle)
    session.commit()
    return user


def _store(session, user, raw: bytes, name: str) -> int:
    stored = store_raw(session, raw, source=f"test:{name}", user_id=user.id, attributed_by="cli")
    assert stored.raw_email.id is not None
    return stored.raw_email.id


def _store_distinct(session, users, tag: str, per_user: int | None = None) -> tuple[list[int], set[tuple]]:
    """Every purchase fixture once per user, each under its own Message-ID: distinct emails, one
    distinct order per (user, fixture). Returns the raw ids and the expected (user, domain, order)."""
    ids, expected = [], set()
    for user in users:
        for n, fixture in enumerate(purchase_fixtures()[:per_user]):
            raw = with_message_id(fixture.raw, f"{tag}-{user.id}-{n}@test.purchaseshare")
            ids.append(_store(session, user, raw, f"{tag}-{fixture.path.name}"))
            expected.add((user.id, fixture.domain, fixture.order_number))
    assert len(set(ids)) == len(ids) == len(expected)
    return ids, expected


def _assert_exactly_once(settings, raw_total: int, expected_orders: set[tuple], failed: int = 0) -> None:
    from purchaseshare.db import session_scope

    found = counts(settings)
    assert found.raw == raw_total
    assert found.statuses == Counter({"parsed": raw_total - failed, **({"failed": failed} if failed else {})})
    assert found.purchases == len(expected_orders)
    assert set(found.orders) == expected_orders
    assert found.duplicate_orders == [] and found.duplicate_message_ids == []
    with session_scope(settings) as session:  # every parsed email points at its own order's purchase
        rows = session.exec(select(RawEmail, Purchase).join(Purchase, RawEmail.purchase_id == Purchase.id)).all()
        assert len(rows) == raw_total - failed
        assert all(raw.user_id == purchase.user_id for raw, purchase in rows)


KILLS = 3  # then the workers are left to finish (the file's runtime stays small)


def test_sigkilled_workers_lose_nothing_and_duplicate_nothing(settings, session, redis_url, tmp_path):
    trace = tmp_path / "trace"
    # Real parsing takes ~15 ms an email: stretched to ~0.1 s, most kills land inside a job.
    env = worker_env(redis_url, PURCHASESHARE_TEST_TRACE=str(trace), PURCHASESHARE_TEST_JOB_SECONDS="0.1")
    next_kill = time.monotonic()

    with Workers(env, tmp_path) as workers:
        def kill_now_and_then() -> None:  # a busy worker process SIGKILLed every 0.5-1 s while jobs run
            nonlocal next_kill
            if workers.kills < KILLS and time.monotonic() >= next_kill and workers.kill_one_busy_worker(trace):
                next_kill = time.monotonic() + random.uniform(0.5, 1.0)

        ids, expected = _store_distinct(session, [_user(session, f"kill{i}") for i in range(2)], "kill")
        with sending_to(redis_url):
            enqueue_parse(session, ids)
        wait_until_final(settings, workers, timeout=90, during=kill_now_and_then)
        kills, restarts = workers.kills, workers.restarts

    runs = read_trace(trace)
    started_again = {raw_id for raw_id, attempt, _, _ in runs if attempt >= 2}
    print(f"{len(ids)} emails, {kills} SIGKILLs, {restarts} supervisor restarts, {len(runs)} pipeline runs, "
          f"{len(started_again)} emails started again after a kill")
    assert kills == KILLS and restarts == kills  # each kill took its group down; the supervisor restarted it
    assert started_again, "no kill landed in the middle of a job"
    assert {raw_id for raw_id, _, _, _ in runs} == set(ids)
    _assert_exactly_once(settings, len(ids), expected)


def test_a_cold_redis_restart_loses_the_queue_and_the_sweeper_recovers_it(settings, session, redis_service,
                                                                          redis_url, tmp_path, monkeypatch):
    monkeypatch.setenv("PURCHASESHARE_REQUEUE_AFTER_SECONDS", "1")  # for requeue_stale() in this process
    get_settings.cache_clear()
    # dramatiq_restart_delay: the workers retry their Redis connection every 0.5 s, not 3 s (test speed).
    env = worker_env(redis_url, dramatiq_restart_delay="500")

    with Workers(env, tmp_path) as workers:
        ids, expected = _store_distinct(session, [_user(session, f"redis{i}") for i in range(2)], "redis")
        with sending_to(redis_url):
            enqueue_parse(session, ids)
        deadline = time.monotonic() + 30
        while received_left(settings) == len(ids):  # under load: the first emails are done
            assert time.monotonic() < deadline, workers.logs()
            time.sleep(0.05)
        redis_service.stop()  # no persistence: the queued messages are gone

        # Mail keeps arriving while the queue is down: stored and marked queued, but the send fails.
        late_ids, late_expected = _store_distinct(session, [_user(session, "late")], "late", per_user=6)
        with sending_to(redis_url), pytest.raises(redis.ConnectionError):
            enqueue_parse(session, late_ids)
        refused_at = time.monotonic()

        redis_service.restart()
        queued = [key for key in redis_keys(redis_url) if key.startswith(b"dramatiq:default")]
        assert queued == []  # a cold restart: the queue is gone
        lost = received_left(settings)
        # The late ones never reached any queue; up to 8 others sit in the workers' prefetch buffers
        # (4 per process) and get done anyway; the rest only the sweeper can bring back.
        assert lost > len(late_ids) + 8, "the restart came too late: nothing was lost with the queue"
        time.sleep(max(0.0, 1.1 - (time.monotonic() - refused_at)))  # older than REQUEUE_AFTER_SECONDS
        with sending_to(redis_url):
            requeued = requeue_stale()
        assert len(late_ids) + 8 < requeued <= lost
        wait_until_final(settings, workers, timeout=60)  # the reconnected workers do them
        restarts = workers.restarts

    print(f"{lost} emails `received` after the restart, {requeued} re-queued by the sweeper; "
          f"worker restarts: {restarts}")
    assert restarts == 0  # the dramatiq workers reconnected on their own
    _assert_exactly_once(settings, len(ids) + len(late_ids), expected | late_expected)


def test_the_same_order_delivered_again_and_forwarded_three_ways_makes_one_purchase(settings, session,
                                                                                   redis_url, tmp_path):
    with Workers(worker_env(redis_url), tmp_path) as workers:
        user = _user(session, "alice")
        ids, expected, raw_total = [], set(), 0
        for fixture in purchase_fixtures()[::6]:  # a handful of merchants
            again = [_store(session, user, fixture.raw, f"same-{i}") for i in range(3)]
            assert len(set(again)) == 1  # same bytes three times: one raw email...
            ids += again  # ...but three deliveries, three queue messages
            for style in ("gmail", "outlook", "attachment"):
                ids.append(_store(session, user, wrapping.wrap(fixture.raw, style, "alice@example.org"), style))
            raw_total += 4
            expected.add((user.id, fixture.domain, fixture.order_number))
        random.shuffle(ids)
        with sending_to(redis_url):
            enqueue_parse(session, ids)
        wait_until_final(settings, workers)

    _assert_exactly_once(settings, raw_total, expected)
    from purchaseshare.db import session_scope

    with session_scope(settings) as db:  # per order: one email made it, three were linked to it
        reasons = Counter((row.purchase_id, (row.reason or "").startswith("same order as purchase #"))
                          for row in db.exec(select(RawEmail)).all())
    assert reasons == Counter({key: n for purchase_id in {p for p, _ in reasons}
                               for key, n in (((purchase_id, False), 1), ((purchase_id, True), 3))})


def test_workers_racing_on_the_same_raw_email_make_one_purchase(settings, session, redis_url, tmp_path):
    trace = tmp_path / "trace"

    with Workers(worker_env(redis_url, PURCHASESHARE_TEST_TRACE=str(trace)), tmp_path, threads=3) as workers:
        ids, expected = _store_distinct(session, [_user(session, "racer")], "race", per_user=24)
        with sending_to(redis_url):
            enqueue_parse(session, [raw_id for raw_id in ids for _ in range(6)])  # each id 6 times in a row
        wait_until_final(settings, workers)

    runs = Counter(raw_id for raw_id, _, _, _ in read_trace(trace))
    raced = [raw_id for raw_id, n in runs.items() if n > 1]  # a repeat after the first finished is a no-op
    print(f"{len(raced)} of {len(ids)} emails were parsed by two workers at once")
    assert raced, "no two workers ever processed the same email at the same time"
    _assert_exactly_once(settings, len(ids), expected)
    from purchaseshare.db import session_scope

    with session_scope(settings) as db:  # losing a race is not an error
        assert [row.last_error for row in db.exec(select(RawEmail)).all() if row.last_error] == []


def test_transient_failures_are_retried_with_backoff_and_permanent_ones_end_failed(settings, session,
                                                                                   redis_url, tmp_path):
    trace = tmp_path / "trace"
    env = worker_env(redis_url, PURCHASESHARE_TEST_TRACE=str(trace), PURCHASESHARE_MAX_ATTEMPTS="3")

    with Workers(env, tmp_path) as workers:
        user = _user(session, "flaky")
        ids, expected = _store_distinct(session, [user], "ok", per_user=10)
        fixtures = purchase_fixtures()
        transient = [_store(session, user, with_header(with_message_id(fixtures[20 + i].raw, f"t{i}@test"),
                                                       "X-Test-Fault: fail-attempts=2"), f"transient-{i}")
                     for i in range(2)]
        permanent = [_store(session, user, with_header(with_message_id(fixtures[30 + i].raw, f"p{i}@test"),
                                                       "X-Test-Fault: always"), f"permanent-{i}") for i in range(2)]
        expected |= {(user.id, fixtures[20 + i].domain, fixtures[20 + i].order_number) for i in range(2)}
        with sending_to(redis_url):
            enqueue_parse(session, ids + transient + permanent)
        wait_until_final(settings, workers)

    _assert_exactly_once(settings, len(ids) + 4, expected, failed=2)
    runs = read_trace(trace)
    from purchaseshare.db import session_scope

    with session_scope(settings) as db:
        for raw_id in transient:  # failed twice, then parsed on the third attempt
            row = db.get(RawEmail, raw_id)
            assert row.status == "parsed" and row.attempts == 3 and row.purchase_id is not None
        for raw_id in permanent:  # not `received` for ever: failed, with the reason
            row = db.get(RawEmail, raw_id)
            assert row.status == "failed" and row.attempts == 3 and row.purchase_id is None
            assert "after 3 attempts" in row.reason and "injected fault on attempt 3" in row.reason
    for raw_id in transient + permanent:  # dramatiq's backoff: 0.5-1 s, then 1-2 s
        times = sorted(moment for run_id, _, moment, _ in runs if run_id == raw_id)
        assert len(times) == 3
        assert times[1] - times[0] >= 0.45 and times[2] - times[1] >= 0.95
