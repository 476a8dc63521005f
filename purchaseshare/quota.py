"""Per-user storage quota: the raw mail a user keeps stored (sum of their emails' sizes whose bytes
are still kept) stays under `Settings.user_quota_mb`. Upload refuses a file beyond it; mail that
arrives by IMAP or `ingest` beyond it is kept as a `failed` row WITHOUT its bytes, with the reason
shown to its owner (purchaseshare.processing) — the original stays in the mailbox it came from."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, col, select

from purchaseshare.config import Settings
from purchaseshare.models import RawEmail

MB = 1024 * 1024


def used_bytes(session: Session, user_id: int, *, excluding: int | None = None) -> int:
    """Bytes of raw mail stored for the user (purged emails no longer count)."""
    query = select(func.coalesce(func.sum(RawEmail.size), 0)).where(
        RawEmail.user_id == user_id, col(RawEmail.raw_purged_at).is_(None), col(RawEmail.raw).is_not(None))
    if excluding is not None:
        query = query.where(RawEmail.id != excluding)
    return int(session.exec(query).one())


def refusal(session: Session, settings: Settings, user_id: int, size: int, *,
            excluding: int | None = None) -> str | None:
    """Why an email of `size` bytes does not fit in the user's quota, or None if it does."""
    used = used_bytes(session, user_id, excluding=excluding)
    limit = settings.user_quota_mb * MB
    if used + size <= limit:
        return None
    return (f"over your storage quota: {_mb(used)} of {settings.user_quota_mb} MB used, this email is {_mb(size)}. "
            "Delete emails or purchases you no longer need, then send it again")


def _mb(size: int) -> str:
    return f"{size / MB:.1f} MB" if size < 10 * MB else f"{size // MB} MB"
