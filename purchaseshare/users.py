"""Users and their sender addresses (the parts ingestion needs; the web adds passwords)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session, delete, select

from purchaseshare.clock import utcnow
from purchaseshare.models import HandleReservation, SenderAddress, User

EMAIL_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")  # the shape only: the verification mail proves it
HANDLE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,38}[a-z0-9])?$")


class UserError(ValueError):
    """A clear, user-facing reason (taken handle, bad address, ...)."""


def get_by_handle(session: Session, handle: str) -> User | None:
    return session.exec(select(User).where(User.handle == handle.lower())).first()


def create_user(session: Session, handle: str, *, email: str | None = None, display_name: str = "",
                password_hash: str | None = None) -> User:
    handle = handle.strip().lower()
    if not HANDLE.match(handle):
        raise UserError("a handle is 1-40 letters, digits, '-' or '_', starting and ending with a letter or digit")
    if not handle_free(session, handle):
        raise UserError(f"the handle {handle!r} is taken")
    release_handle(session, handle)
    email = email.strip().lower() if email else None
    if email and session.exec(select(User).where(User.email == email)).first() is not None:
        raise UserError("an account with this email address exists")
    user = User(handle=handle, email=email, display_name=display_name or handle, password_hash=password_hash)
    session.add(user)
    session.flush()
    return user


@dataclass(frozen=True)
class PendingClaim:
    """A claim on an address another account claimed first and has not verified. It lives in its
    verification link only (an address has one row): the first claim and its link stay intact,
    and whichever link is opened first takes the address (`confirm_claim`)."""

    user_id: int
    address: str


def _row_for(session: Session, address: str) -> SenderAddress | None:
    return session.exec(select(SenderAddress).where(SenderAddress.address == address)).first()


def add_sender_address(session: Session, user: User, address: str, *,
                       verified: bool = False) -> SenderAddress | PendingClaim:
    """The user's row for `address`, or a PendingClaim when another account holds it unverified.
    verified=True (the operator's CLI) takes the address at once, dropping others' pending claims."""
    address = address.strip().lower()
    if not EMAIL_ADDRESS.fullmatch(address):
        raise UserError(f"{address!r} is not an email address")
    existing = _row_for(session, address)
    if existing is not None and existing.user_id != user.id:
        if existing.verified_at is not None:
            raise UserError("this address is verified by another account")
        if not verified:
            return PendingClaim(user_id=user.id or 0, address=address)  # never touches the other's link
        session.delete(existing)
        session.flush()
        existing = None
    row = existing or SenderAddress(user_id=user.id, address=address, verify_token=secrets.token_urlsafe(24))
    if verified and row.verified_at is None:
        row.verified_at, row.verify_token = utcnow(), None
    session.add(row)
    session.flush()
    return row


# --- handles given up ------------------------------------------------------------------------------

# A renamed handle stays its previous owner's this long (and /u/OLD redirects to the new one), so
# nobody can take it over at once and receive the old links, follows and mentions.
HANDLE_RESERVED_FOR = timedelta(days=30)


def _live_reservation(session: Session, handle: str) -> HandleReservation | None:
    row = session.get(HandleReservation, handle.lower())
    return row if row is not None and row.expires_at > utcnow() else None


def handle_free(session: Session, handle: str, user_id: int | None = None) -> bool:
    """Nobody has the handle, and nobody but `user_id` (its previous owner) holds it reserved."""
    if get_by_handle(session, handle) is not None:
        return False
    reserved = _live_reservation(session, handle)
    return reserved is None or reserved.user_id == user_id


def release_handle(session: Session, handle: str) -> None:
    session.exec(delete(HandleReservation).where(HandleReservation.handle == handle.lower()))


def rename(session: Session, user: User, handle: str) -> None:
    """The user's new handle (checked free by the caller); the old one is reserved for them."""
    handle = handle.lower()
    if handle == user.handle:
        return
    release_handle(session, handle)
    session.merge(HandleReservation(handle=user.handle, user_id=user.id,
                                    expires_at=utcnow() + HANDLE_RESERVED_FOR))
    user.handle = handle
    session.add(user)


def moved_to(session: Session, handle: str) -> User | None:
    """The user who renamed away from `handle` lately (None once the reservation ended)."""
    reserved = _live_reservation(session, handle)
    return session.get(User, reserved.user_id) if reserved is not None else None


def confirm_claim(session: Session, user: User, address: str) -> SenderAddress | None:
    """The user opened a PendingClaim's link, proving the mailbox: the address becomes theirs,
    verified, and the other account's pending row (and its link) is dropped. None when another
    account verified it first, or when it is already verified (the link was used)."""
    existing = _row_for(session, address)
    if existing is not None and existing.verified_at is not None:
        return None
    if existing is not None and existing.user_id != user.id:
        session.delete(existing)
        session.flush()
        existing = None
    row = existing or SenderAddress(user_id=user.id, address=address)
    row.verified_at, row.verify_token = utcnow(), None
    session.add(row)
    session.flush()
    return row
