"""Counting actions per key in a sliding window, in the database so every web process and worker
sees the same counts. Keys name the action and who did it: "comment:user:42", "signup:ip:1.2.3.4".
The rows live in `login_attempt` (it began as the login limiter's table; the shape is the same).
`take` checks and records in one step, serialized per key, so a burst of parallel requests cannot
all slip under a limit at once. The limits themselves are in purchaseshare.limits.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlmodel import Session, col, delete, func, select

from purchaseshare.clock import utcnow
from purchaseshare.models import LoginAttempt

Rule = tuple[int, timedelta]  # at most N events in this window


def count(session: Session, key: str, window: timedelta) -> int:
    return session.exec(select(func.count()).select_from(LoginAttempt).where(
        LoginAttempt.key == key, col(LoginAttempt.created_at) > utcnow() - window)).one()


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
    allowed = all(count(session, key[:400], window) <= limit
                  for key, key_rules in rules.items() for limit, window in key_rules)
    if not allowed:
        for row in rows:
            session.delete(row)
        session.flush()
    return allowed


def retry_after(rules: list[Rule]) -> int:
    """Seconds a refused client is told to wait: the shortest window (the burst)."""
    return int(min(window for _limit, window in rules).total_seconds())
