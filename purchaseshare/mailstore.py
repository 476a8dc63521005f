"""Step one for every email, whatever door it came through (IMAP, `ingest`, upload):
commit its bytes. Nothing else happens to an email before this commit, and the same bytes or
the same Message-ID arriving again is a no-op that returns the row already stored.

`store_raw` stores one email; `store_raws` stores a batch (the IMAP poller's FETCH batch) with one
lookup and one commit, with the same outcome as calling `store_raw` for each in order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select

from purchaseshare.attribution import read_headers
from purchaseshare.clock import utcnow
from purchaseshare.models import RawEmail, RawStatus
from purchaseshare.pipeline import MAX_BYTES


@dataclass
class Stored:
    raw_email: RawEmail
    created: bool  # False: we had it already (same bytes or same Message-ID)


@dataclass
class Incoming:
    """One email for `store_raws`: its bytes and where it came from."""

    raw: bytes
    source: str
    envelope_to: str | None = None


def _one_line(value: object) -> str:
    return " ".join(str(value).split()) if value else ""


def store_raw(session: Session, raw: bytes, *, source: str, user_id: int | None = None,
              attributed_by: str | None = None, envelope_to: str | None = None,
              queued_at: datetime | None = None) -> Stored:
    """Commit the raw email (or find the one already stored). Idempotent and race-safe.
    `queued_at`: stamp a new row as queued in the same commit (the caller sends it right after)."""
    row = _new_row(raw, source, user_id, attributed_by, envelope_to, queued_at)
    existing = _find(session, row.sha256, row.message_id)
    if existing is not None:
        return Stored(existing, False)
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # another process stored the same email between our lookup and commit
        session.rollback()
        existing = _find(session, row.sha256, row.message_id)
        if existing is None:
            raise
        return Stored(existing, False)
    return Stored(row, True)


def store_raws(session: Session, emails: Sequence[Incoming], *, queued_at: datetime | None = None) -> list[Stored]:
    """`store_raw` for each email, in order, with one lookup and one commit for the whole batch
    (per email: a SELECT, an INSERT and a commit cost more than the rest of storing it). An email
    equal to an earlier one of the same batch is a no-op returning that one's row, as it would be
    one by one. Losing a race with another process falls back to `store_raw` one by one."""
    rows = [_new_row(email.raw, email.source, None, None, email.envelope_to, queued_at) for email in emails]
    digests = {row.sha256 for row in rows}
    message_ids = {row.message_id for row in rows if row.message_id}
    condition = col(RawEmail.sha256).in_(digests)
    if message_ids:
        condition = or_(condition, col(RawEmail.message_id).in_(message_ids))
    known = list(session.exec(select(RawEmail).where(condition)).all()) if rows else []
    by_digest = {row.sha256: row for row in known}
    by_message_id = {row.message_id: row for row in known if row.message_id}
    results: list[Stored] = []
    for row in rows:
        existing = by_digest.get(row.sha256) or (by_message_id.get(row.message_id) if row.message_id else None)
        if existing is not None:
            results.append(Stored(existing, False))
            continue
        session.add(row)
        by_digest[row.sha256] = row
        if row.message_id:
            by_message_id[row.message_id] = row
        results.append(Stored(row, True))
    if not any(stored.created for stored in results):
        return results
    try:
        session.commit()
    except IntegrityError:  # raced with another process: one by one finds its rows
        session.rollback()
        return [store_raw(session, email.raw, source=email.source, envelope_to=email.envelope_to,
                          queued_at=queued_at) for email in emails]
    return results


def _new_row(raw: bytes, source: str, user_id: int | None, attributed_by: str | None,
             envelope_to: str | None, queued_at: datetime | None) -> RawEmail:
    headers = read_headers(raw[:65536])  # header block only, parsed once
    row = RawEmail(
        sha256=hashlib.sha256(raw).hexdigest(), message_id=_one_line(headers.get("Message-ID"))[:998] or None,
        raw=raw, size=len(raw), source=source[:500],
        envelope_to=envelope_to, user_id=user_id, attributed_by=attributed_by if user_id else None,
        from_addr=(parseaddr(str(headers.get("From", "")))[1] or None),
        subject=_one_line(headers.get("Subject")) or None, queued_at=queued_at,
    )
    refusal = _refusal(raw)
    if refusal:  # kept all the same (nothing lost) and failed at once, with the reason
        row.status, row.reason, row.processed_at = RawStatus.FAILED, refusal, utcnow()
    return row


def _find(session: Session, digest: str, message_id: str | None) -> RawEmail | None:
    condition = RawEmail.sha256 == digest
    if message_id:
        condition = or_(condition, RawEmail.message_id == message_id)
    return session.exec(select(RawEmail).where(condition)).first()


def _refusal(raw: bytes) -> str | None:
    if not raw.strip():
        return "empty message: there was nothing to read"
    if len(raw) > MAX_BYTES:
        return f"message larger than {MAX_BYTES // (1024 * 1024)} MB; not parsed"
    return None
