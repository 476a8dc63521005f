"""One clock: aware UTC datetimes (sqlmodel stores them as UTC on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
