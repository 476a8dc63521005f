"""The user's rights over their data: download everything (`export_zip`), delete the account
with everything about it (`delete_account`), delete one purchase (`delete_purchase`). Used by
the web (/settings/export, /settings/delete, /purchases/{id}/delete) and the tests; works the
same on SQLite and PostgreSQL.

Deletion removes rows explicitly, children first, instead of trusting ON DELETE CASCADE alone:
SQLite only enforces foreign keys when the connection turned them on, and an explicit list is
also the list of what "everything about the user" means.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, or_, update
from sqlmodel import Session, SQLModel, col, select

from purchaseshare.clock import utcnow
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


def collect(session: Session, user: User) -> dict[str, list[SQLModel]]:
    """Every row about the user, by export file name."""
    uid = user.id
    assert uid is not None
    purchases, items, collections = _owned_queries(uid)

    def rows(model: type[SQLModel], *conditions) -> list[SQLModel]:
        return list(session.exec(select(model).where(or_(*conditions)).order_by(model.id)).all())  # type: ignore[attr-defined]

    return {
        "user": [user],
        "sender_addresses": rows(SenderAddress, SenderAddress.user_id == uid),
        "raw_emails": rows(RawEmail, RawEmail.user_id == uid),
        "purchases": rows(Purchase, Purchase.user_id == uid),
        "purchase_items": rows(PurchaseItem, col(PurchaseItem.purchase_id).in_(purchases)),
        # What they did, and what others did to their purchases (both are shown to them on the site).
        "likes": rows(Like, Like.user_id == uid, col(Like.purchase_id).in_(purchases)),
        "comments": rows(Comment, Comment.user_id == uid, col(Comment.purchase_id).in_(purchases)),
        "reviews": rows(Review, Review.user_id == uid, col(Review.item_id).in_(items)),
        "collections": rows(Collection, Collection.user_id == uid),
        "collection_items": rows(CollectionItem, col(CollectionItem.collection_id).in_(collections)),
        "follows": rows(Follow, Follow.follower_id == uid, Follow.followee_id == uid),
        "notifications": rows(Notification, Notification.user_id == uid),
        "outbox_mail": rows(OutboxMail, OutboxMail.user_id == uid),
        "login_attempts": rows(LoginAttempt, LoginAttempt.key == f"user:{user.handle}"),
    }


def export_zip(session: Session, user: User) -> bytes:
    """A zip: README.txt, one JSON file per table, and emails/<id>.eml with the original bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", README.format(handle=user.handle, when=utcnow().isoformat()))
        for name, found in collect(session, user).items():
            exclude = _NEVER_EXPORTED.get(name, set())
            records = [_record(row, exclude) for row in found]
            archive.writestr(f"{name}.json", json.dumps(records, indent=2, ensure_ascii=False))
            if name == "raw_emails":
                for raw in found:
                    if isinstance(raw, RawEmail) and raw.raw is not None:
                        archive.writestr(f"emails/{raw.id}.eml", raw.raw)
    return buffer.getvalue()


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
        delete(LoginAttempt).where(or_(LoginAttempt.key == f"user:{user.handle}",  # and per (account, client)
                                       col(LoginAttempt.key).startswith(f"user:{user.handle}:ip:"))),
        delete(User).where(User.id == uid),
    ]
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
