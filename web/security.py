"""Passwords (argon2), CSRF tokens, signed one-time links, and the login rate limiter."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException, Request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlmodel import Session, col, delete, func, or_, select

from purchaseshare.clock import utcnow
from purchaseshare.models import LoginAttempt
from web.limits import read_form

_hasher = PasswordHasher()
MIN_PASSWORD = 10
LOGIN_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 5  # per (account, client)
MAX_FAILURES_PER_ADDRESS = 20  # per client, over all accounts
UNDER_ATTACK = 20  # failures on one account from all clients: it is under attack ...
UNDER_ATTACK_CLIENT = 2  # ... and each client then gets this many failures on it


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
        sent = (await read_form(request)).get("csrf_token")  # at most MAX_FORM_FILES files
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


def client_key(address: str) -> str:
    """What the per-client limits count: the address, or its /64 for IPv6 (one subscriber's
    network gets a whole /64, so counting single IPv6 addresses would count nothing)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def _keys(handle: str, address: str) -> tuple[str, str, str]:
    client = client_key(address)
    return f"ip:{client}", f"user:{handle}", f"user:{handle}:ip:{client}"


def login_blocked(session: Session, handle: str, address: str) -> bool:
    """Whether this client may not try this account now. Failures are counted per client (all
    accounts), per account, and per (account, client). Only the CLIENT is ever blocked: a client
    is refused after MAX_FAILURES_PER_ACCOUNT failures on the account (fewer, UNDER_ATTACK_CLIENT,
    while the account as a whole is under attack) or MAX_FAILURES_PER_ADDRESS on any accounts.
    A client that has not failed on the account, the owner's own, still gets in with the right
    password, however many guesses others make: failures cannot lock the owner out."""
    per_client, per_account, pair = _keys(handle, address)
    counts = dict(session.exec(select(LoginAttempt.key, func.count()).where(
        col(LoginAttempt.key).in_([per_client, per_account, pair]), LoginAttempt.created_at > utcnow() - LOGIN_WINDOW)
        .group_by(LoginAttempt.key)).all())
    allowed_here = (UNDER_ATTACK_CLIENT if counts.get(per_account, 0) >= UNDER_ATTACK
                    else MAX_FAILURES_PER_ACCOUNT)
    return counts.get(per_client, 0) >= MAX_FAILURES_PER_ADDRESS or counts.get(pair, 0) >= allowed_here


def record_login_failure(session: Session, handle: str, address: str) -> None:
    session.add_all([LoginAttempt(key=key[:400]) for key in _keys(handle, address)])
    # Old login rows only: other limits (purchaseshare.ratelimit) share the table with longer windows.
    session.exec(delete(LoginAttempt).where(col(LoginAttempt.created_at) < utcnow() - LOGIN_WINDOW,
                                            or_(col(LoginAttempt.key).startswith("user:"),
                                                col(LoginAttempt.key).startswith("ip:"))))
    session.commit()


def clear_login_failures(session: Session, handle: str, address: str | None = None) -> None:
    """After a right password: the account's count and this client's blame on it are forgotten
    (other clients' failures on the account stay: they are still the ones refused)."""
    keys = [f"user:{handle}"] + ([_keys(handle, address)[2]] if address is not None else [])
    session.exec(delete(LoginAttempt).where(col(LoginAttempt.key).in_(keys)))
    session.commit()
