"""Step one for every email, whatever door it came through (IMAP, `ingest`, upload):
commit its bytes. Nothing else happens to an email before this commit, and the same email
arriving again through the same door for the same owner is a no-op that returns the row stored.

De-duplication is per scope, never across owners (issue 11): `user:<id>` for mail handed in by a
known user (upload, `ingest --user`, demo), `inbox` for mail the IMAP door stores before anyone
knows whose it is. Within a scope an email is "the same" when its sha256 is, or when its
Message-ID comes with the same sender, date and recipients (`message_key`). So an upload can never
match, reveal or take over another user's row or an unattributed (quarantined) one, a Message-ID
cannot be squatted by someone else, and two people adding the same order each get their own row.
A row's scope never changes: attributing an inbox row later cannot collide with anything.

`store_raw` stores one email; `store_raws` stores a batch (the IMAP poller's FETCH batch) with one
lookup and one commit, with the same outcome as calling `store_raw` for each in order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from email.utils import getaddresses, parseaddr

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, and_, col, or_, select

from purchaseshare.attribution import RECIPIENT_HEADERS, read_headers
from purchaseshare.clock import utcnow
from purchaseshare.models import RawEmail, RawStatus
from purchaseshare.pipeline import MAX_BYTES


@dataclass
class Stored:
    raw_email: RawEmail
    created: bool  # False: we had it already in this scope (same bytes, or same message_key)


@dataclass
class Incoming:
    """One email for `store_raws`: its bytes and where it came from."""

    raw: bytes
    source: str
    envelope_to: str | None = None


INBOX_SCOPE = "inbox"  # the IMAP door: stored before attribution


def dedup_scope(user_id: int | None) -> str:
    """Where an email stored for `user_id` (None: not known yet) is de-duplicated."""
    return f"user:{user_id}" if user_id is not None else INBOX_SCOPE


def message_key(headers: Message) -> str | None:
    """The Message-ID together with the sender, the date and every recipient address, hashed.
    A Message-ID alone is anyone's to write; with the recipients in it, the same order forwarded
    to two people's forwarding addresses stays two emails (the recipients are what attribution
    reads first). None without a Message-ID."""
    message_id = _one_line(headers.get("Message-ID"))
    if not message_id:
        return None
    sender = parseaddr(str(headers.get("From", "")))[1].strip().lower()
    recipients = sorted({address.strip().lower() for _, address in getaddresses(
        [str(value) for name in RECIPIENT_HEADERS for value in headers.get_all(name, [])]) if address.strip()})
    parts = [message_id, sender, _one_line(headers.get("Date")), *recipients]
    return hashlib.sha256("\n".join(parts).encode("utf-8", "backslashreplace")).hexdigest()


def _one_line(value: object) -> str:
    return " ".join(str(value).split()) if value else ""


def store_raw(session: Session, raw: bytes, *, source: str, user_id: int | None = None,
              attributed_by: str | None = None, envelope_to: str | None = None,
              queued_at: datetime | None = None) -> Stored:
    """Commit the raw email (or find the one already stored). Idempotent and race-safe.
    `queued_at`: stamp a new row as queued in the same commit (the caller sends it right after)."""
    row = _new_row(raw, source, user_id, attributed_by, envelope_to, queued_at)
    existing = _find(session, row)
    if existing is not None:
        return Stored(existing, False)
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # another process stored the same email between our lookup and commit
        session.rollback()
        existing = _find(session, row)
        if existing is None:
            raise
        return Stored(existing, False)
    return Stored(row, True)


def store_raws(session: Session, emails: Sequence[Incoming], *, queued_at: datetime | None = None) -> list[Stored]:
    """`store_raw` for each email (IMAP mail: not attributed yet, the inbox scope), in order, with
    one lookup and one commit for the whole batch (per email: a SELECT, an INSERT and a commit cost
    more than the rest of storing it). An email equal to an earlier one of the same batch is a no-op
    returning that one's row, as it would be one by one. Losing a race with another process falls
    back to `store_raw` one by one."""
    rows = [_new_row(email.raw, email.source, None, None, email.envelope_to, queued_at) for email in emails]
    digests = {row.sha256 for row in rows}
    keys = {row.message_key for row in rows if row.message_key}
    condition = col(RawEmail.sha256).in_(digests)
    if keys:
        condition = or_(condition, col(RawEmail.message_key).in_(keys))
    known = list(session.exec(select(RawEmail).where(RawEmail.dedup_scope == INBOX_SCOPE, condition)).all()) \
        if rows else []
    by_digest = {row.sha256: row for row in known}
    by_key = {row.message_key: row for row in known if row.message_key}
    results: list[Stored] = []
    for row in rows:
        existing = by_digest.get(row.sha256) or (by_key.get(row.message_key) if row.message_key else None)
        if existing is not None:
            results.append(Stored(existing, False))
            continue
        session.add(row)
        by_digest[row.sha256] = row
        if row.message_key:
            by_key[row.message_key] = row
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
        dedup_scope=dedup_scope(user_id), sha256=hashlib.sha256(raw).hexdigest(),
        message_id=_one_line(headers.get("Message-ID"))[:998] or None, message_key=message_key(headers),
        raw=raw, size=len(raw), source=source[:500],
        envelope_to=envelope_to, user_id=user_id, attributed_by=attributed_by if user_id else None,
        from_addr=(parseaddr(str(headers.get("From", "")))[1] or None),
        subject=_one_line(headers.get("Subject")) or None, queued_at=queued_at,
    )
    refusal = _refusal(raw)
    if refusal:  # kept all the same (nothing lost) and failed at once, with the reason
        row.status, row.reason, row.processed_at = RawStatus.FAILED, refusal, utcnow()
    return row


def _find(session: Session, row: RawEmail) -> RawEmail | None:
    """The same email stored before in `row`'s scope. A known user's own rows from the inbox (mail
    already attributed to them) count too: theirs, so saying so reveals nothing."""
    same = [RawEmail.sha256 == row.sha256]
    if row.message_key:
        same.append(RawEmail.message_key == row.message_key)
    mine = [RawEmail.dedup_scope == row.dedup_scope]
    if row.user_id is not None:
        mine.append(RawEmail.user_id == row.user_id)
    # Spelled out as an OR of ANDs: each branch is one index lookup ((scope, key) or user_id).
    condition = or_(*(and_(owner, key) for owner in mine for key in same))
    # Our own scope first: that is the row a unique key would have clashed with.
    return session.exec(select(RawEmail).where(condition)
                        .order_by(RawEmail.dedup_scope != row.dedup_scope, RawEmail.id)).first()


def _refusal(raw: bytes) -> str | None:
    if not raw.strip():
        return "empty message: there was nothing to read"
    if len(raw) > MAX_BYTES:
        return f"message larger than {MAX_BYTES // (1024 * 1024)} MB; not parsed"
    return None
