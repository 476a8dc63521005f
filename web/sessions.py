"""Server-side sessions: the signed session cookie carries a random token under "sid"; the
`server_session` row (keyed by the token's sha256) says whose it is and whether it still holds.
Logout revokes the row, so a copied cookie dies with it; sign-out-everywhere and a password reset
revoke every row of the account. One indexed lookup (joined with the user) per signed-in request."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlmodel import Session, col, delete, or_, select, update

from purchaseshare.clock import utcnow
from purchaseshare.models import ServerSession, User

SESSION_KEY = "sid"  # the key in the signed cookie
LIFETIME = timedelta(days=30)  # idle time after which a session ends (renewed while in use)
MAX_PER_USER = 100  # live sessions per account; the oldest go first
TOUCH_EVERY = timedelta(minutes=10)  # last_seen/expiry written at most this often: no write per request


def token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(db: Session, user: User) -> str:
    """A new session for `user` (committed); returns the token for the cookie."""
    now = utcnow()
    assert user.id is not None
    # Dead sessions (anyone's expired ones, this account's revoked ones) are cleared at each sign-in,
    # and an account keeps at most MAX_PER_USER: repeated logins cannot grow the table without bound.
    crowd = (select(ServerSession.id).where(ServerSession.user_id == user.id)
             .order_by(col(ServerSession.created_at).desc()).offset(MAX_PER_USER - 1))
    db.exec(delete(ServerSession).where(or_(
        col(ServerSession.expires_at) <= now,
        (col(ServerSession.user_id) == user.id) & col(ServerSession.revoked_at).is_not(None),
        col(ServerSession.id).in_(crowd))))
    token = secrets.token_urlsafe(32)
    db.add(ServerSession(id=token_id(token), user_id=user.id, session_version=user.session_version,
                         created_at=now, last_seen_at=now, expires_at=now + LIFETIME))
    db.commit()
    return token


def user_for(db: Session, token: str, now: datetime | None = None) -> User | None:
    """The user of a live session; None when the token is unknown, revoked, expired, or the account
    signed out everywhere since (its session_version moved)."""
    now = now or utcnow()
    found = db.exec(select(ServerSession, User).join(User, col(User.id) == ServerSession.user_id)
                    .where(ServerSession.id == token_id(token))).first()
    if found is None:
        return None
    row, user = found
    if row.revoked_at is not None or row.expires_at <= now or row.session_version != user.session_version:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at, row.expires_at = now, now + LIFETIME
        db.add(row)
        db.commit()
    return user


def revoke(db: Session, token: str) -> None:
    db.exec(update(ServerSession).where(col(ServerSession.id) == token_id(token),
                                        col(ServerSession.revoked_at).is_(None)).values(revoked_at=utcnow()))
    db.commit()


def revoke_all(db: Session, user_id: int) -> None:
    """Every session of the account (the caller commits)."""
    db.exec(update(ServerSession).where(col(ServerSession.user_id) == user_id,
                                        col(ServerSession.revoked_at).is_(None)).values(revoked_at=utcnow()))


# What the page cache asks (on its own raw connection) before serving a stored signed-in page:
# whose live session it is.
LIVE_SQL = ('SELECT s.user_id FROM server_session s JOIN "user" u ON u.id = s.user_id WHERE s.id = {p} '
            "AND s.revoked_at IS NULL AND s.expires_at > {p} AND s.session_version = u.session_version")


def live_query(dialect: str, token: str) -> tuple[str, tuple]:
    """LIVE_SQL with the driver's parameter style and a `now` as SQLAlchemy stores it there."""
    now = utcnow()
    if dialect == "sqlite":  # SQLAlchemy's DateTime text on SQLite: UTC, no offset
        return LIVE_SQL.format(p="?"), (token_id(token), now.strftime("%Y-%m-%d %H:%M:%S.%f"))
    return LIVE_SQL.format(p="%s"), (token_id(token), now)
