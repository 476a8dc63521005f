"""Small actors that take ids and are idempotent (the dramatiq way).

`parse_email(raw_id)`: attribute + parse + store one raw email (a no-op once it is final).
`reparse_email(raw_id)`: run it again after a parser changed (keeps the owner's choices).
`send_mail(mail_id)`: deliver one outbox mail over SMTP (a no-op once sent).
`purge_raw()`: the raw-mail retention sweep.
Enqueue only after the commit that created the row (see `enqueue_parse`).
"""

from __future__ import annotations

import logging
import os

import dramatiq
from dramatiq.middleware.time_limit import TimeLimitExceeded
from sqlmodel import Session, col, update

from purchaseshare.clock import utcnow
from purchaseshare.config import Settings, get_settings
from purchaseshare.db import session_scope
from purchaseshare.models import OutboxMail, RawEmail
from purchaseshare.processing import (
    mark_failed,
    mark_too_costly,
    process_raw_email,
    purge_expired_raw,
    record_error,
)
from purchaseshare.reparse import reparse_raw_email
from workers.broker import broker, send_many  # noqa: F401  (broker: set before the actors bind to it)

log = logging.getLogger(__name__)

RETRY = {"max_retries": 8, "min_backoff": 500, "max_backoff": 60_000}
# The hard limit on one email (issue 17): the reader's bounds keep every email to seconds, this
# stops whatever they missed. dramatiq's TimeLimit raises TimeLimitExceeded in the worker thread
# (checked about once a second); the email ends `failed`, the worker takes the next one.
PARSE_TIME_LIMIT_MS = int(os.environ.get("PURCHASESHARE_PARSE_TIME_LIMIT_MS", "120000"))


@dramatiq.actor(**RETRY, time_limit=PARSE_TIME_LIMIT_MS)
def parse_email(raw_id: int) -> None:
    settings = get_settings()
    try:
        outcome = process_raw_email(raw_id, settings)
    except TimeLimitExceeded:
        mark_too_costly(raw_id, f"stopped after {PARSE_TIME_LIMIT_MS / 1000:g} s", settings)
        return
    except Exception as exc:
        attempts = record_error(raw_id, f"{type(exc).__name__}: {exc}", settings)
        if attempts >= settings.max_attempts:  # for good: a visible status and reason, not a drop
            mark_failed(raw_id, f"{type(exc).__name__}: {exc}", settings)
            return
        raise  # transient (database locked, connection lost): dramatiq retries with backoff
    send_after_commit(settings, outcome.mail_ids)


@dramatiq.actor(**RETRY)
def reparse_email(raw_id: int) -> None:
    settings = get_settings()
    send_after_commit(settings, reparse_raw_email(raw_id, settings).mail_ids)


@dramatiq.actor(**RETRY)
def send_mail(mail_id: int) -> None:
    from purchaseshare.mailer import deliver

    settings = get_settings()
    with session_scope(settings) as session:
        mail = session.get(OutboxMail, mail_id)
        if mail is None or mail.sent_at is not None:
            return
        try:
            deliver(mail, settings)
        except Exception as exc:
            mail.error = f"{type(exc).__name__}: {exc}"
            session.commit()
            raise
        mail.sent_at, mail.error = utcnow(), None
        session.commit()


@dramatiq.actor(max_retries=3)
def purge_raw() -> None:
    settings = get_settings()
    with session_scope(settings) as session:
        purged = purge_expired_raw(session, settings)
    if purged:
        log.info("retention: purged the raw bytes of %d emails", purged)


def send_after_commit(settings: Settings, mail_ids: list[int | None]) -> None:
    """Deliver outbox mail over SMTP_URL, once the rows that caused it are committed (the worker
    reads them). With no SMTP_URL the mail stays in the outbox."""
    if settings.smtp_url:
        for mail_id in mail_ids:
            if mail_id is not None:
                send_mail.send(mail_id)


def enqueue_parse(session: Session, raw_ids: list[int]) -> None:
    """Queue stored emails (call after their commit). If the queue is down the rows stay
    `received` and the sweeper (`requeue_stale`) queues them again: nothing is lost."""
    # One UPDATE: loading the rows would read their raw bytes only to stamp them.
    session.exec(update(RawEmail).where(col(RawEmail.id).in_(raw_ids)).values(queued_at=utcnow()))  # type: ignore[call-overload]
    session.commit()
    send_parse(raw_ids)


def send_parse(raw_ids: list[int]) -> None:
    """Queue `parse_email` for rows already committed AND stamped queued (the IMAP poller stamps
    them in the commit that stores them). One Redis round trip for the lot."""
    send_many(parse_email, [(raw_id,) for raw_id in raw_ids])


def requeue_stale() -> int:
    """Queue again every raw email that waited too long (lost messages, a restarted Redis)."""
    from purchaseshare.processing import claim_stale

    settings = get_settings()
    with session_scope(settings) as session:
        ids = claim_stale(session, settings)
    send_parse(ids)
    return len(ids)
