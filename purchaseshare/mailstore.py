"""Step one for every email, whatever door it came through (IMAP, `ingest`, upload):
commit its bytes. Nothing else happens to an email before this commit, and the same bytes or
the same Message-ID arriving again is a no-op that returns the row already stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email.utils import parseaddr

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, or_, select

from purchaseshare.attribution import read_headers
from purchaseshare.clock import utcnow
from purchaseshare.models import RawEmail, RawStatus
from purchaseshare.pipeline import MAX_BYTES


@dataclass
class Stored:
    raw_email: RawEmail
    created: bool  # False: we had it already (same bytes or same Message-ID)


def _one_line(value: object) -> str:
    return " ".join(str(value).split()) if value else ""


def store_raw(session: Session, raw: bytes, *, source: str, user_id: int | None = None,
              attributed_by: str | None = None, envelope_to: str | None = None) -> Stored:
    """Commit the raw email (or find the one already stored). Idempotent and race-safe."""
    digest = hashlib.sha256(raw).hexdigest()
    headers = read_headers(raw[:65536])  # header block only, parsed once
    message_id = _one_line(headers.get("Message-ID"))[:998] or None
    existing = _find(session, digest, message_id)
    if existing is not None:
        return Stored(existing, False)
    row = RawEmail(
        sha256=digest, message_id=message_id, raw=raw, size=len(raw), source=source[:500],
        envelope_to=envelope_to, user_id=user_id, attributed_by=attributed_by if user_id else None,
        from_addr=(parseaddr(str(headers.get("From", "")))[1] or None),
        subject=_one_line(headers.get("Subject")) or None,
    )
    refusal = _refusal(raw)
    if refusal:  # kept all the same (nothing lost) and failed at once, with the reason
        row.status, row.reason, row.processed_at = RawStatus.FAILED, refusal, utcnow()
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # another process stored the same email between our lookup and commit
        session.rollback()
        existing = _find(session, digest, message_id)
        if existing is None:
            raise
        return Stored(existing, False)
    return Stored(row, True)


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
