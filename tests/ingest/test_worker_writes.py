"""What a worker writes for one email (issue 15): the attempt is committed before the parse (an
email that kills its worker is still counted), then the row is written once more with its outcome;
the quota's sum reads the partial index of migration 0013 and means what it meant; a worker
process freezes its boot-time heap. On SQLite and PostgreSQL (the `settings` fixture).

The emails are built here: random names, amounts and languages, no corpus email."""

from __future__ import annotations

import gc
import random
import re
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import pytest
from sqlalchemy import event, text
from sqlmodel import select

from purchaseshare import pipeline, quota
from purchaseshare.clock import utcnow
from purchaseshare.db import get_engine, session_scope
from purchaseshare.mailstore import store_raw
from purchaseshare.models import RawEmail, RawStatus
from purchaseshare.processing import _claim, process_raw_email
from purchaseshare.users import create_user

WORDS = ["lantern", "orchid", "copper", "meadow", "harbor", "velvet", "juniper", "marble", "saffron", "tundra"]


def _word() -> str:
    return random.choice(WORDS) + str(random.randint(10, 99))


def _newsletter(to: str) -> bytes:
    """A plain newsletter (not a purchase) sent to `to`."""
    message = EmailMessage()
    message["From"] = f"{_word().title()} News <news@{_word()}.example>"
    message["To"] = to
    message["Subject"] = random.choice(["Our spring ideas", "Ideen fuer den Fruehling", "Nos idees du printemps"])
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain="news.example")
    message.set_content(f"Hello {_word()},\n\nthis week: {_word()} and {_word()}.\n\nUnsubscribe any time.\n")
    return message.as_bytes()


def _user(session, handle: str):
    user = create_user(session, handle)
    session.commit()
    return user


def _store_for(session, settings, user, raw: bytes) -> int:
    """As the IMAP door stores it: not attributed yet, sent to the user's plus-address."""
    stored = store_raw(session, raw, source="test:imap", envelope_to=settings.forwarding_address(user.forwarding_token))
    assert stored.raw_email.id is not None
    return stored.raw_email.id


def _raw_email_writes(settings) -> tuple[list[str], object]:
    """A list that fills with every UPDATE of raw_email issued on this database, and the listener."""
    writes: list[str] = []

    def listen(_conn, _cursor, statement: str, *_args) -> None:
        if re.match(r"\s*UPDATE\s+raw_email\b", statement, re.IGNORECASE):
            writes.append(statement)

    event.listen(get_engine(settings), "before_cursor_execute", listen)
    return writes, listen


def test_an_email_is_written_twice_the_attempt_before_the_parse_and_then_its_outcome(settings, session, monkeypatch):
    user = _user(session, f"w{random.randint(1000, 9999)}")
    raw_id = _store_for(session, settings, user, _newsletter(settings.forwarding_address(user.forwarding_token)))
    seen_during_parse: list[tuple[int, str]] = []
    real_run = pipeline.run

    def watching_run(raw: bytes, **kwargs):
        # Another connection, as after a SIGKILL: the attempt is already committed, the outcome not.
        with session_scope(settings) as other:
            row = other.exec(select(RawEmail.attempts, RawEmail.status).where(RawEmail.id == raw_id)).one()
            seen_during_parse.append((row[0], row[1]))
        return real_run(raw, **kwargs)

    monkeypatch.setattr(pipeline, "run", watching_run)
    writes, listen = _raw_email_writes(settings)
    try:
        outcome = process_raw_email(raw_id, settings)
    finally:
        event.remove(get_engine(settings), "before_cursor_execute", listen)
    assert outcome.status == RawStatus.NOT_PURCHASE
    assert seen_during_parse == [(1, RawStatus.RECEIVED.value)]
    assert len(writes) == 2, writes  # the attempt, then everything else in one UPDATE
    with session_scope(settings) as other:
        row = other.get(RawEmail, raw_id)
        assert row is not None
        # The outcome's write carried the attribution and the result with it.
        assert (row.user_id, row.attributed_by, row.attempts) == (user.id, "token", 1)
        assert row.result_json and row.processed_at is not None and row.reason


def test_an_attempt_that_dies_mid_parse_is_counted_and_the_next_one_finishes(settings, session, monkeypatch):
    user = _user(session, f"k{random.randint(1000, 9999)}")
    raw_id = _store_for(session, settings, user, _newsletter(settings.forwarding_address(user.forwarding_token)))
    real_run = pipeline.run

    class WorkerDied(BaseException):  # not an Exception: nothing in processing may catch it
        pass

    def dying_run(raw: bytes, **kwargs):
        raise WorkerDied

    monkeypatch.setattr(pipeline, "run", dying_run)
    with pytest.raises(WorkerDied):
        process_raw_email(raw_id, settings)
    with session_scope(settings) as other:
        row = other.get(RawEmail, raw_id)
        assert row is not None
        # Counted, and nothing else of that attempt stayed (its attribution was never committed).
        assert (row.attempts, row.status, row.user_id) == (1, RawStatus.RECEIVED.value, None)
    monkeypatch.setattr(pipeline, "run", real_run)
    outcome = process_raw_email(raw_id, settings)
    assert outcome.status == RawStatus.NOT_PURCHASE
    with session_scope(settings) as other:
        row = other.get(RawEmail, raw_id)
        assert row is not None and (row.attempts, row.user_id) == (2, user.id)


def test_the_quota_counts_only_kept_bytes_of_that_user_and_reads_the_index(settings, session):
    alice, bob = _user(session, f"qa{random.randint(1000, 9999)}"), _user(session, f"qb{random.randint(1000, 9999)}")
    sizes = {"kept": 0, "purged": 0, "bob": 0}
    for n in range(6):
        raw = _newsletter(f"x{n}@example.org") + b"\n" + b"p" * random.randint(100, 5000)
        owner = bob if n == 5 else alice
        row = store_raw(session, raw, source=f"test:{n}", user_id=owner.id, attributed_by="cli").raw_email
        if n in (3, 4):  # purged: no bytes kept any more, they do not count
            row.raw, row.raw_purged_at = None, utcnow()
            session.add(row)
            session.commit()
            sizes["purged"] += row.size
        elif owner is bob:
            sizes["bob"] += row.size
        else:
            sizes["kept"] += row.size
    assert quota.used_bytes(session, alice.id) == sizes["kept"]
    assert quota.used_bytes(session, bob.id) == sizes["bob"]
    first = session.exec(select(RawEmail).where(RawEmail.user_id == alice.id).order_by(RawEmail.id)).first()
    assert first is not None and first.id is not None
    assert quota.used_bytes(session, alice.id, excluding=first.id) == sizes["kept"] - first.size
    if get_engine(settings).dialect.name == "sqlite":
        # The sum never reads the table (whose rows hold the bytes): the partial index answers it.
        plan = " ".join(str(row) for row in session.connection().execute(text(
            "EXPLAIN QUERY PLAN SELECT coalesce(sum(raw_email.size), 0) FROM raw_email WHERE raw_email.user_id = 1 "
            "AND raw_email.raw_purged_at IS NULL AND raw_email.raw IS NOT NULL AND raw_email.id != 2")).all())
        assert "ix_raw_email_user_kept" in plan, plan


def test_a_worker_process_freezes_its_boot_heap_after_a_warm_up_read():
    from workers.broker import WARM_UP, FreezeAtBoot

    assert pipeline.run(WARM_UP, source="warm-up").status in ("purchase", "not_purchase", "unparsed")
    gc.unfreeze()
    try:
        FreezeAtBoot().before_worker_boot(None, None)  # type: ignore[arg-type]
        assert gc.get_freeze_count() > 10_000  # the modules' objects, out of every collection's walk
    finally:
        gc.unfreeze()


def test_claiming_an_email_counts_its_attempt_and_loads_it_as_the_database_has_it(settings, session):
    user = _user(session, f"c{random.randint(1000, 9999)}")
    raw_id = _store_for(session, settings, user, _newsletter(settings.forwarding_address(user.forwarding_token)))
    for attempt in (1, 2):
        with session_scope(settings) as mine:
            row = _claim(mine, raw_id, settings)
            assert row is not None and row.raw and row.attempts == attempt and not mine.is_modified(row)
    with session_scope(settings) as other:
        fresh = other.get(RawEmail, raw_id)
        assert fresh is not None and fresh.attempts == 2
        fresh.status = RawStatus.NOT_PURCHASE.value
        other.add(fresh)
        other.commit()
    with session_scope(settings) as mine:  # final: not claimed, nothing written
        assert _claim(mine, raw_id, settings) is None
    with session_scope(settings) as other:
        fresh = other.get(RawEmail, raw_id)
        assert fresh is not None and fresh.attempts == 2
