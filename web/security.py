"""Passwords (argon2), CSRF tokens, signed one-time links, and the login rate limiter."""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException, Request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlmodel import Session, col, delete, func, select

from purchaseshare.clock import utcnow
from purchaseshare.models import LoginAttempt

_hasher = PasswordHasher()
MIN_PASSWORD = 10
LOGIN_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 20


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(stored_hash: str | None, password: str) -> bool:
    if not stored_hash:
        _hasher.hash(password)  # same time whether or not the account exists
        return False
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"use at least {MIN_PASSWORD} characters"
    return None


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


async def csrf_protect(request: Request) -> None:
    """Every state-changing request carries the session's token (form field or X-CSRF-Token)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    expected = request.session.get("csrf")
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        sent = (await request.form()).get("csrf_token")
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(expected, sent):
        raise HTTPException(status_code=403, detail="This form expired or came from elsewhere. Reload the page and try again.")


def signer(secret_key: str, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=f"purchaseshare-{purpose}")


def make_link_token(secret_key: str, purpose: str, payload: dict) -> str:
    return signer(secret_key, purpose).dumps(payload)


def read_link_token(secret_key: str, purpose: str, token: str, max_age_s: int) -> dict | None:
    try:
        return signer(secret_key, purpose).loads(token, max_age=max_age_s)
    except (SignatureExpired, BadSignature):
        return None


def login_blocked(session: Session, handle: str, address: str) -> bool:
    since = utcnow() - LOGIN_WINDOW
    counts = dict(session.exec(select(LoginAttempt.key, func.count()).where(
        col(LoginAttempt.key).in_([f"user:{handle}", f"ip:{address}"]), LoginAttempt.created_at > since)
        .group_by(LoginAttempt.key)).all())
    return (counts.get(f"user:{handle}", 0) >= MAX_FAILURES_PER_ACCOUNT
            or counts.get(f"ip:{address}", 0) >= MAX_FAILURES_PER_ADDRESS)


def record_login_failure(session: Session, handle: str, address: str) -> None:
    session.add(LoginAttempt(key=f"user:{handle}"))
    session.add(LoginAttempt(key=f"ip:{address}"))
    # Only the login counters: the table also holds longer windows (purchaseshare/limits.py).
    session.exec(delete(LoginAttempt).where(LoginAttempt.created_at < utcnow() - LOGIN_WINDOW,
                                            col(LoginAttempt.key).startswith("user:")
                                            | col(LoginAttempt.key).startswith("ip:")))
    session.commit()


def clear_login_failures(session: Session, handle: str) -> None:
    session.exec(delete(LoginAttempt).where(LoginAttempt.key == f"user:{handle}"))
    session.commit()
