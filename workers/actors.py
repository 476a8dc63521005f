"""Small actors that take ids and are idempotent (the dramatiq way).

`parse_email(raw_id)`: attribute + parse + store one raw email (a no-op once it is final).
`reparse_email(raw_id)`: run it again after a parser changed (keeps the owner's choices).
`send_mail(mail_id)`: deliver one outbox mail over SMTP (a no-op once sent).
`purge_raw()`: the raw-mail retention sweep.
`store_item_images(purchase_id)`: fetch and store the images of its shared items, drop the others'.
`store_avatar(user_id)`: the same for a user's avatar.
`release_images(names)`: delete stored image files no item or avatar names any more.
Enqueue only after the commit that created the row (see `enqueue_parse`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import dramatiq
from dramatiq.middleware.time_limit import TimeLimitExceeded
from sqlmodel import Session, col, update

from purchaseshare.clock import utcnow
from purchaseshare.config import Settings, get_settings
from purchaseshare.db import session_scope
from purchaseshare.models import RawEmail
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


class MailDeferred(Exception):
    """A 4xx or a lost connection: dramatiq retries the send with backoff."""


# Greylisting and full mailboxes clear in minutes, not seconds: 30 s, 1 min, 2 min ... up to 30 min.
SEND_RETRY = {"max_retries": 12, "min_backoff": 30_000, "max_backoff": 1_800_000}


@dramatiq.actor(**SEND_RETRY)
def send_mail(mail_id: int) -> None:
    """Deliver one outbox row (a no-op once sent, failed or in doubt: see purchaseshare.mailer)."""
    from purchaseshare.mailer import QUEUED, deliver_outbox

    if deliver_outbox(mail_id, get_settings()) == QUEUED:
        raise MailDeferred(f"outbox mail {mail_id}: the server deferred it, retrying later")


@dramatiq.actor(max_retries=3)
def purge_raw() -> None:
    settings = get_settings()
    with session_scope(settings) as session:
        purged = purge_expired_raw(session, settings)
    if purged:
        log.info("retention: purged the raw bytes of %d emails", purged)


@dramatiq.actor(**RETRY)
def store_item_images(purchase_id: int) -> None:
    from purchaseshare.item_images import sync_purchase

    sync_purchase(get_settings(), purchase_id)  # a refused image is recorded, not raised: no retry


@dramatiq.actor(**RETRY)
def release_images(names: list[str]) -> None:
    from purchaseshare.item_images import release

    release(get_settings(), names)


@dramatiq.actor(**RETRY)
def store_avatar(user_id: int) -> None:
    from purchaseshare.item_images import sync_avatar

    sync_avatar(get_settings(), user_id)


def send_image_work(purchase_ids: list[int], names: list[str], user_ids: Sequence[int] = ()) -> None:
    """Queue the image sync of these purchases and users and the release of these files (after the
    commit that shared, changed or deleted them: purchaseshare/item_images.py calls this)."""
    send_many(store_item_images, [(purchase_id,) for purchase_id in purchase_ids])
    send_many(store_avatar, [(user_id,) for user_id in user_ids])
    if names:
        release_images.send(names)


def queue_missing_images() -> int:
    """Queue the image sync of every shared item and avatar never fetched (a backfill after
    migration 0009, or after the queue was down at an approval); how many were queued."""
    from purchaseshare.item_images import never_synced

    purchase_ids, user_ids = never_synced(get_settings())
    send_image_work(purchase_ids, [], user_ids)
    return len(purchase_ids) + len(user_ids)


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
