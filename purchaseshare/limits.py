"""Limits on actions that reach other people (comments notify an owner, verification mail goes to
an outside address), counted with purchaseshare.ratelimit. `take` checks and records in one step,
serialized per key, so a burst of parallel requests cannot all slip under the limit at once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlmodel import Session, col, delete

from purchaseshare import ratelimit
from purchaseshare.clock import utcnow
from purchaseshare.models import LoginAttempt

Rule = tuple[int, timedelta]  # at most N events in this window

COMMENT_RULES: list[Rule] = [(5, timedelta(minutes=1)), (30, timedelta(hours=1))]
# Verification mail to one address, whichever accounts ask for it, and from one account.
VERIFY_TO_RULES: list[Rule] = [(3, timedelta(hours=1)), (5, timedelta(days=1))]
VERIFY_BY_RULES: list[Rule] = [(9, timedelta(hours=1)), (20, timedelta(days=1))]


def _lock(session: Session, key: str) -> None:
    """Hold the key until the transaction ends. PostgreSQL: an advisory lock; SQLite: the INSERT
    that `take` makes first already takes the database's single write lock."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})


def take(session: Session, rules: dict[str, list[Rule]]) -> bool:
    """Record one event under each key when every key is within all its rules and return True;
    otherwise record nothing and return False. The caller commits (with the action itself)."""
    for key in sorted(rules):  # one order: two requests never wait on each other's locks
        _lock(session, key)
        longest = max(window for _limit, window in rules[key])
        session.exec(delete(LoginAttempt).where(LoginAttempt.key == key[:400],  # what no rule counts any more
                                                col(LoginAttempt.created_at) < utcnow() - longest))
    rows = [LoginAttempt(key=key[:400]) for key in rules]
    session.add_all(rows)
    session.flush()
    allowed = all(ratelimit.count(session, key[:400], window) <= limit
                  for key, key_rules in rules.items() for limit, window in key_rules)
    if not allowed:
        for row in rows:
            session.delete(row)
        session.flush()
    return allowed


def retry_after(rules: list[Rule]) -> int:
    """Seconds a refused client is told to wait: the shortest window (the burst)."""
    return int(min(window for _limit, window in rules).total_seconds())
