"""Counting actions per key in a sliding window, in the database so every web process and worker
sees the same counts. Keys name the action and who did it: "comment:user:42", "signup:ip:1.2.3.4".
The rows live in `login_attempt` (it began as the login limiter's table; the shape is the same).
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, delete, func, select

from purchaseshare.clock import utcnow
from purchaseshare.models import LoginAttempt


def count(session: Session, key: str, window: timedelta) -> int:
    return session.exec(select(func.count()).select_from(LoginAttempt).where(
        LoginAttempt.key == key, col(LoginAttempt.created_at) > utcnow() - window)).one()


def record(session: Session, *keys: str) -> None:
    """One event for each key (added to the session; the caller commits)."""
    for key in keys:
        session.add(LoginAttempt(key=key[:400]))


def allow(session: Session, key: str, limit: int, window: timedelta) -> bool:
    """True and the event recorded (committed) while `key` has had fewer than `limit` events in
    `window`; False, recording nothing, once it has."""
    if count(session, key, window) >= limit:
        return False
    record(session, key)
    session.commit()
    return True


def forget_older_than(session: Session, window: timedelta) -> None:
    session.exec(delete(LoginAttempt).where(col(LoginAttempt.created_at) < utcnow() - window))
