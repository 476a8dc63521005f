"""The user's rights over their data: download everything (`export_chunks`, a streamed zip),
delete the account with everything about it (`delete_account`), delete one purchase
(`delete_purchase`). Used by the web (/settings/export, /settings/delete,
/purchases/{id}/delete) and the tests; works the same on SQLite and PostgreSQL.

Stored product images (purchaseshare/images.py) are files named by the rows of shared items:
deleting those rows queues the removal of the files nobody else's item names. The export adds
nothing for them: they are re-encoded copies of merchants' pictures whose URLs (`image`) it has.

Deletion removes rows explicitly, children first, instead of trusting ON DELETE CASCADE alone:
SQLite only enforces foreign keys when the connection turned them on, and an explicit list is
also the list of what "everything about the user" means.
"""

from __future__ import annotations

import io
import json
import sqlite3
import zipfile
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, or_, update
from sqlalchemy.orm import defer
from sqlmodel import Session, SQLModel, col, select

from purchaseshare.clock import utcnow
from purchaseshare.config import Settings
from purchaseshare.db import session_scope
from purchaseshare.item_images import names_of, queue_release
from purchaseshare.models import (
    Collection,
    CollectionItem,
    Comment,
    Follow,
    Like,
    LoginAttempt,
    Notification,
    OutboxMail,
    Purchase,
    PurchaseItem,
    RawEmail,
    Review,
    SenderAddress,
    Template,
    TemplateTeacher,
    User,
)

# Secrets that would only let someone act as the user if the export file leaked.
_NEVER_EXPORTED = {
    "user": {"password_hash"},
    "sender_addresses": {"verify_token"},
    "raw_emails": {"raw"},  # the bytes go into emails/*.eml instead
}

README = """PurchaseShare export for {handle}, made {when}.

One JSON file per table with every record about you: your account (without the password
hash), sender addresses, received emails (metadata; the original messages are in emails/),
purchases and their items, likes, comments, reviews, collections, follows, notifications,
outgoing mail to you and failed log-in attempts on your handle. Money values are decimal
strings, times are ISO 8601 in UTC.
"""


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    return value


def _record(row: SQLModel, exclude: set[str]) -> dict[str, Any]:
    return {name: _jsonable(getattr(row, name)) for name in type(row).model_fields if name not in exclude}


def _owned_queries(user_id: int):
    """Subqueries for ids that belong to the user, shared by export and delete."""
    purchases = select(Purchase.id).where(Purchase.user_id == user_id)
    items = select(PurchaseItem.id).where(col(PurchaseItem.purchase_id).in_(purchases))
    collections = select(Collection.id).where(Collection.user_id == user_id)
    return purchases, items, collections


def _tables(user: User) -> dict[str, tuple[type[SQLModel], Any]]:
    """Every table about the user, by export file name: the model and the WHERE for the user's rows."""
    uid = user.id
    assert uid is not None
    purchases, items, collections = _owned_queries(uid)
    return {
        "user": (User, User.id == uid),
        "sender_addresses": (SenderAddress, SenderAddress.user_id == uid),
        "raw_emails": (RawEmail, RawEmail.user_id == uid),
        "purchases": (Purchase, Purchase.user_id == uid),
        "purchase_items": (PurchaseItem, col(PurchaseItem.purchase_id).in_(purchases)),
        # What they did, and what others did to their purchases (both are shown to them on the site).
        "likes": (Like, or_(Like.user_id == uid, col(Like.purchase_id).in_(purchases))),
        "comments": (Comment, or_(Comment.user_id == uid, col(Comment.purchase_id).in_(purchases))),
        "reviews": (Review, or_(Review.user_id == uid, col(Review.item_id).in_(items))),
        "collections": (Collection, Collection.user_id == uid),
        "collection_items": (CollectionItem, col(CollectionItem.collection_id).in_(collections)),
        "follows": (Follow, or_(Follow.follower_id == uid, Follow.followee_id == uid)),
        "notifications": (Notification, Notification.user_id == uid),
        "outbox_mail": (OutboxMail, OutboxMail.user_id == uid),
        # Layouts learned from their corrections (labels and offsets, no values).
        "templates": (Template, col(Template.id).in_(select(TemplateTeacher.template_id)
                                                     .where(TemplateTeacher.user_id == uid))),
        "login_attempts": (LoginAttempt, LoginAttempt.key == f"user:{user.handle}"),
    }


def _no_bytes(model: type[SQLModel]) -> list:
    return [defer(RawEmail.raw)] if model is RawEmail else []  # type: ignore[arg-type]


class _Pipe(io.RawIOBase):
    """What ZipFile writes into: bytes kept until the response takes them. Not seekable, so ZipFile
    writes each member's sizes after its data (a data descriptor) and never goes back."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self._chunks = b"".join(self._chunks), []
        return data


EXPORT_PAGE = 500  # rows per query: a short session each, never open while the client reads
EXPORT_SLICE = 1024 * 1024  # raw bytes compressed and handed on at a time


def export_chunks(settings: Settings, user_id: int) -> Iterator[bytes]:
    """The export zip, as it is written: README.txt, one JSON file per table, emails/<id>.eml with
    the original bytes. Rows are read a page at a time and raw emails a slice at a time, each in
    its own short session, so memory stays a few MB whatever the account's size and no database
    connection is held while the client reads. (Not one snapshot: a row written meanwhile may or
    may not be in it, as with any download of a live account.)"""
    return (chunk for chunk in _export(settings, user_id) if chunk)


def _export(settings: Settings, user_id: int) -> Iterator[bytes]:
    pipe = _Pipe()
    with session_scope(settings) as session:
        user = session.get(User, user_id)
        if user is None:
            return
        handle, tables = user.handle, _tables(user)
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("README.txt", README.format(handle=handle, when=utcnow().isoformat()))
        yield pipe.take()
        raw_ids: list[int] = []
        for name, (model, condition) in tables.items():
            exclude = _NEVER_EXPORTED.get(name, set())
            with archive.open(f"{name}.json", "w") as member:
                member.write(b"[")
                for number, row in enumerate(_rows(settings, model, condition)):
                    text = json.dumps(_record(row, exclude), indent=2, ensure_ascii=False)
                    member.write(((",\n" if number else "\n") + text).encode())
                    if isinstance(row, RawEmail) and row.raw_purged_at is None and row.id is not None:
                        raw_ids.append(row.id)
                    yield pipe.take()
                member.write(b"\n]\n")
        for raw_id in raw_ids:
            with session_scope(settings) as session:
                size = session.exec(select(func.length(RawEmail.raw)).where(RawEmail.id == raw_id)).first()
            if size is None:  # deleted or purged since the listing
                continue
            with archive.open(f"emails/{raw_id}.eml", "w", force_zip64=size > 2**30) as member:
                for piece in _raw_slices(settings, raw_id, size):
                    member.write(piece)
                    yield pipe.take()
            yield pipe.take()
    yield pipe.take()  # the central directory, written on close


def _raw_slices(settings: Settings, raw_id: int, size: int) -> Iterator[bytes]:
    """One email's bytes, EXPORT_SLICE at a time, each read by the database (substr works on BLOB and
    bytea alike): a 50 MB email never sits whole in memory, nor several copies of it in the driver."""
    for start in range(0, size, EXPORT_SLICE):
        with session_scope(settings) as session:
            connection = session.connection()
            if connection.dialect.name == "sqlite":  # SQLite's substr would load the whole blob each time
                try:
                    with connection.connection.driver_connection.blobopen(  # type: ignore[union-attr]
                            "raw_email", "raw", raw_id, readonly=True) as blob:
                        blob.seek(start)
                        piece = blob.read(EXPORT_SLICE)
                except sqlite3.OperationalError:  # the row is gone
                    return
            else:
                piece = session.exec(select(func.substr(RawEmail.raw, start + 1, EXPORT_SLICE))
                                     .where(RawEmail.id == raw_id)).first()
        if piece is None:  # deleted meanwhile
            return
        yield bytes(piece)


def _rows(settings: Settings, model: type[SQLModel], condition: Any) -> Iterator[SQLModel]:
    """The rows matching `condition`, in id order, a page per short session (keyset pagination)."""
    after = 0
    while True:
        with session_scope(settings) as session:
            page = list(session.exec(select(model).options(*_no_bytes(model))
                                     .where(condition, model.id > after)  # type: ignore[attr-defined]
                                     .order_by(model.id).limit(EXPORT_PAGE)).all())  # type: ignore[attr-defined]
        yield from page
        if len(page) < EXPORT_PAGE:
            return
        after = page[-1].id  # type: ignore[attr-defined]


def delete_purchase(session: Session, purchase: Purchase) -> None:
    """Remove one purchase, its items and what others attached to it (likes, comments, reviews,
    collection entries, notifications). Its emails stay, unlinked, so the owner can see them and
    parse them again. Commits."""
    pid = purchase.id
    items = select(PurchaseItem.id).where(PurchaseItem.purchase_id == pid)
    comments = select(Comment.id).where(Comment.purchase_id == pid)
    statements = [
        delete(Notification).where(or_(Notification.purchase_id == pid, col(Notification.comment_id).in_(comments))),
        delete(CollectionItem).where(col(CollectionItem.item_id).in_(items)),
        delete(Review).where(col(Review.item_id).in_(items)),
        delete(Comment).where(Comment.purchase_id == pid),
        delete(Like).where(Like.purchase_id == pid),
        update(RawEmail).where(RawEmail.purchase_id == pid).values(
            purchase_id=None, reason="you deleted the purchase made from this email"),
        delete(PurchaseItem).where(PurchaseItem.purchase_id == pid),
        delete(Purchase).where(Purchase.id == pid),
    ]
    queue_release(session, names_of(session, PurchaseItem.purchase_id == pid))  # its stored images
    _run_in_one_transaction(session, statements)
    if purchase in session:
        session.expunge(purchase)


def delete_account(session: Session, user: User) -> None:
    """Remove the user and every row about them, in one transaction. Cannot be undone."""
    uid = user.id
    assert uid is not None
    purchases, items, collections = _owned_queries(uid)
    comments = select(Comment.id).where(or_(Comment.user_id == uid, col(Comment.purchase_id).in_(purchases)))
    statements = [
        delete(Notification).where(or_(Notification.user_id == uid, Notification.actor_id == uid,
                                       col(Notification.purchase_id).in_(purchases),
                                       col(Notification.comment_id).in_(comments))),
        delete(CollectionItem).where(or_(col(CollectionItem.collection_id).in_(collections),
                                         col(CollectionItem.item_id).in_(items))),
        delete(Review).where(or_(Review.user_id == uid, col(Review.item_id).in_(items))),
        delete(Comment).where(or_(Comment.user_id == uid, col(Comment.purchase_id).in_(purchases))),
        delete(Like).where(or_(Like.user_id == uid, col(Like.purchase_id).in_(purchases))),
        delete(Follow).where(or_(Follow.follower_id == uid, Follow.followee_id == uid)),
        delete(Collection).where(Collection.user_id == uid),
        # An email of someone else can never point at this user's purchase, but unlink to be sure.
        update(RawEmail).where(col(RawEmail.purchase_id).in_(purchases)).values(purchase_id=None),
        delete(RawEmail).where(RawEmail.user_id == uid),
        delete(PurchaseItem).where(col(PurchaseItem.purchase_id).in_(purchases)),
        delete(Purchase).where(Purchase.user_id == uid),
        delete(SenderAddress).where(SenderAddress.user_id == uid),
        delete(OutboxMail).where(OutboxMail.user_id == uid),
        delete(TemplateTeacher).where(TemplateTeacher.user_id == uid),
        # A template nobody taught any more goes too (one another user also taught stays theirs).
        delete(Template).where(~col(Template.id).in_(select(TemplateTeacher.template_id))),
        delete(LoginAttempt).where(or_(LoginAttempt.key == f"user:{user.handle}",  # and per (account, client)
                                       col(LoginAttempt.key).startswith(f"user:{user.handle}:ip:"))),
        delete(User).where(User.id == uid),
    ]
    # Their stored images go once the rows are gone (a file another user's item shows stays).
    queue_release(session, [user.avatar_file, *names_of(session, col(PurchaseItem.purchase_id).in_(purchases))])
    _run_in_one_transaction(session, statements)
    if user in session:
        session.expunge(user)


def _run_in_one_transaction(session: Session, statements: list) -> None:
    """All the statements or none: a failure halfway leaves every row as it was."""
    try:
        for statement in statements:
            session.exec(statement)  # type: ignore[call-overload]
        session.commit()
    except Exception:
        session.rollback()
        raise
