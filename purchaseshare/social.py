"""The social layer's logic (routes live in web/routes/social.py): follows, the home feed and its
live cursor, likes, comments (safe rendering), notifications, verified-purchase reviews and
collections. Everything shown to others goes through `purchaseshare.public` and `redact`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from markupsafe import Markup, escape
from sqlalchemy import bindparam, func
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select, update

from purchaseshare import public
from purchaseshare.clock import utcnow
from purchaseshare.config import Settings
from purchaseshare.limits import TEXT_MAX
from purchaseshare.mailer import queue_mail
from purchaseshare.models import (
    Collection,
    CollectionItem,
    Comment,
    Follow,
    Like,
    Notification,
    Purchase,
    PurchaseItem,
    Review,
    User,
)
from purchaseshare.redact import redact

COMMENT_MAX = TEXT_MAX["comment"]  # the limits live in purchaseshare.limits (forms read them too)
REVIEW_MAX = TEXT_MAX["review"]
COLLECTION_NAME_MAX = TEXT_MAX["collection_name"]
NOTIFICATIONS_PAGE = 50
# A purchase published (committed) a moment after a later one would be missed by a strict
# "published_at > cursor": the live feed re-reads this much behind its cursor and skips ids it sent.
LIVE_OVERLAP = timedelta(seconds=10)


class SocialError(ValueError):
    """A user-facing reason (empty comment, bad rating, ...)."""


def as_utc(value: datetime) -> datetime:
    """Cursors are aware UTC datetimes, like the stored timestamps (a naive one is taken as UTC)."""
    return value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)


# --- follows -------------------------------------------------------------------------------


_FOLLOWS = Follow.__table__.c  # type: ignore[attr-defined]
# Statements read on every profile or feed view, built once (building one costs more than running it).
_IS_FOLLOWING = sa_select(_FOLLOWS.id).where(_FOLLOWS.follower_id == bindparam("follower_id"),
                                             _FOLLOWS.followee_id == bindparam("followee_id"))
_FOLLOW_COUNT = sa_select(func.count()).select_from(Follow.__table__)
_FOLLOW_COUNTS = sa_select(_FOLLOW_COUNT.where(_FOLLOWS.followee_id == bindparam("user_id")).scalar_subquery(),
                           _FOLLOW_COUNT.where(_FOLLOWS.follower_id == bindparam("user_id")).scalar_subquery())


def is_following(session: Session, follower_id: int, followee_id: int) -> bool:
    return session.connection().execute(_IS_FOLLOWING, {"follower_id": follower_id,
                                                        "followee_id": followee_id}).first() is not None


def follow(session: Session, follower: User, followee: User) -> bool:
    """Follow (idempotent). True when a new follow was made. Flushes, the caller commits."""
    if follower.id == followee.id:
        raise SocialError("you cannot follow yourself")
    if is_following(session, follower.id or 0, followee.id or 0):
        return False
    return _insert_once(session, Follow(follower_id=follower.id or 0, followee_id=followee.id or 0))


def _insert_once(session: Session, row: object) -> bool:
    """Insert a row guarded by a unique key; a double click racing itself loses quietly. Called
    before anything else is written in the request: the rollback undoes only this row. (No
    SAVEPOINT: pysqlite's would commit early.)"""
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return False
    return True


def unfollow(session: Session, follower: User, followee: User) -> None:
    session.exec(delete(Follow).where(Follow.follower_id == follower.id, Follow.followee_id == followee.id))


def follow_counts(session: Session, user_id: int) -> tuple[int, int]:
    """(followers, following): one query for both."""
    row = session.connection().execute(_FOLLOW_COUNTS, {"user_id": user_id}).one()
    return row[0], row[1]


# --- the home feed -------------------------------------------------------------------------


def _followed_rows(viewer_id: int, *extra_columns):
    """`public.view_rows_query` for purchases of the people `viewer_id` follows."""
    follows = Follow.__table__  # type: ignore[attr-defined]
    return (public.view_rows_query(*extra_columns)
            .join(follows, follows.c.followee_id == Purchase.user_id).where(follows.c.follower_id == viewer_id))


def _feed_query():
    likes = Like.__table__  # type: ignore[attr-defined]
    liked = sa_select(likes.c.id).where(likes.c.purchase_id == Purchase.id,
                                        likes.c.user_id == bindparam("viewer_id")).exists().label("liked")
    return (_followed_rows(bindparam("viewer_id"), liked).order_by(*public.NEWEST_FIRST)
            .offset(bindparam("offset")).limit(bindparam("limit")))


_FEED = _feed_query()  # built once: building costs more than running it


def feed_page(session: Session, viewer: User, page: int = 1,
              size: int = public.PAGE_SIZE) -> tuple[list[public.PublicPurchase], bool]:
    """Shared purchases of the people `viewer` follows, newest first; (views, has_next).
    Two queries whatever the page size: the page (with the viewer's likes) and its items."""
    rows = session.connection().execute(_FEED, {"viewer_id": viewer.id or 0, "offset": (max(page, 1) - 1) * size,
                                                "limit": size + 1}).all()
    has_next = len(rows) > size
    rows = rows[:size]
    views = public.views_from_rows(session, rows)
    liked_ids = {row.public_id for row in rows if row.liked}
    for view in views:  # a per-viewer flag, on this request's own view objects
        view.extra["liked"] = view.public_id in liked_ids
    return views, has_next


def published_between(session: Session, viewer_id: int, after: datetime,
                      limit: int = 50) -> list[public.PublicPurchase]:
    """Followed users' shared purchases with published_at > after, OLDEST first (live updates)."""
    rows = session.connection().execute(_followed_rows(viewer_id).where(col(Purchase.published_at) > as_utc(after))
                                        .order_by(col(Purchase.published_at), col(Purchase.id)).limit(limit)).all()
    return public.views_from_rows(session, rows)


def seen_before(session: Session, viewer_id: int, cursor: datetime) -> set[str]:
    """Public ids the client already has (published in the overlap window up to its cursor)."""
    cursor = as_utc(cursor)
    return set(session.exec(select(Purchase.public_id).join(Follow, Follow.followee_id == Purchase.user_id)
                            .where(Follow.follower_id == viewer_id, public.published_filter(),
                                   col(Purchase.published_at) > cursor - LIVE_OVERLAP,
                                   col(Purchase.published_at) <= cursor)).all())


@dataclass
class LiveCursor:
    """Where one live-feed connection got to: the newest published_at sent, and the ids sent in the
    overlap window behind it (so a late commit is caught and nothing is sent twice)."""

    at: datetime
    sent: dict[str, datetime]

    def poll(self, session: Session, viewer_id: int) -> list[public.PublicPurchase]:
        fresh = [view for view in published_between(session, viewer_id, self.at - LIVE_OVERLAP)
                 if view.public_id not in self.sent]
        for view in fresh:
            published = as_utc(view.published_at) if view.published_at else self.at
            self.sent[view.public_id] = published
            self.at = max(self.at, published)
        horizon = self.at - LIVE_OVERLAP * 2
        self.sent = {key: when for key, when in self.sent.items() if when >= horizon}
        return fresh


def open_cursor(session: Session, viewer_id: int, since: datetime) -> LiveCursor:
    since = as_utc(since)
    return LiveCursor(at=since, sent={key: since for key in seen_before(session, viewer_id, since)})


def parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return as_utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except ValueError:
        return None


# --- purchases others may act on -------------------------------------------------------------


def published_purchase(session: Session, handle: str, public_id: str) -> tuple[Purchase, User] | None:
    """A shared purchase addressed by its public URL; None if missing or not (or no longer) shared."""
    row = session.exec(select(Purchase, User).join(User, Purchase.user_id == User.id)
                       .where(User.handle == handle.lower(), Purchase.public_id == public_id,
                              public.published_filter())).first()
    return (row[0], row[1]) if row else None


# --- notifications ---------------------------------------------------------------------------

MAIL_SUBJECTS = {"like": "liked your purchase", "comment": "commented on your purchase",
                 "follow": "started following you", "review": "reviewed a purchase"}


def notify(session: Session, settings: Settings, *, user: User, actor: User, kind: str,
           purchase: Purchase | None = None, comment: Comment | None = None) -> int | None:
    """Tell `user` that `actor` did something (never about their own actions). Added to the
    caller's transaction; returns the id of a queued mail to send AFTER the commit, if any."""
    if user.id == actor.id:
        return None
    if kind in ("like", "follow"):  # like/unlike/like or follow/unfollow/follow: one notice is enough
        same_target = (Notification.purchase_id == purchase.id) if purchase else col(Notification.purchase_id).is_(None)
        existing = session.exec(select(Notification.id).where(
            Notification.user_id == user.id, Notification.actor_id == actor.id, Notification.kind == kind,
            same_target)).first()
        if existing is not None:
            return None
    session.add(Notification(user_id=user.id or 0, actor_id=actor.id, kind=kind,
                             purchase_id=purchase.id if purchase else None,
                             comment_id=comment.id if comment else None))
    if not settings.smtp_url or not user.email:
        return None
    link = settings.base_url.rstrip("/") + (f"/u/{user.handle}/p/{purchase.public_id}" if purchase
                                            else f"/u/{actor.handle}")
    mail = queue_mail(session, to=user.email, template="notification", user_id=user.id,
                      purpose=f"notify-{kind}", kind=kind, what=MAIL_SUBJECTS.get(kind, kind),
                      actor=actor.handle, user=user.handle, link=link,
                      comment=redact(comment.body) if comment else "",
                      settings_link=settings.base_url.rstrip("/") + "/notifications")
    return mail.id if mail else None


@dataclass(frozen=True)
class NotificationView:
    id: int
    kind: str
    actor_handle: str | None
    purchase_path: str | None
    comment: Markup | None
    unread: bool
    created_at: datetime
    purchase_title: str | None = None  # WHICH purchase: its public title ("Kettle from Shop")


def notifications(session: Session, user: User, limit: int = NOTIFICATIONS_PAGE) -> list[NotificationView]:
    """Newest first, with who did it and on which purchase: one query, and two more (the public
    views, for their titles) when a notice is about a purchase."""
    rows = session.exec(select(Notification, User.handle, Purchase.id, Purchase.user_id, Comment.body)
                        .join(User, Notification.actor_id == User.id, isouter=True)
                        .join(Purchase, Notification.purchase_id == Purchase.id, isouter=True)
                        .join(Comment, Notification.comment_id == Comment.id, isouter=True)
                        .where(Notification.user_id == user.id)
                        .order_by(col(Notification.created_at).desc(), col(Notification.id).desc())
                        .limit(limit)).all()
    targets = _purchase_targets(session, user, {pid: owner for _, _, pid, owner, _ in rows if pid is not None})
    return [NotificationView(id=note.id or 0, kind=note.kind, actor_handle=actor,
                             purchase_path=targets[pid][0] if pid is not None else None,
                             purchase_title=targets[pid][1] if pid is not None else None,
                             comment=comment_html(body) if body is not None else None,
                             unread=note.read_at is None, created_at=note.created_at)
            for note, actor, pid, _, body in rows]


def _purchase_targets(session: Session, reader: User,
                      owners: dict[int, int]) -> dict[int, tuple[str | None, str]]:
    """(link, title) per purchase id: the public page and title while it is shared (the public
    view: approved items, redacted); once it is not, the owner's own page for its owner, and no
    link for anyone else."""
    if not owners:
        return {}
    rows = session.connection().execute(public.view_rows_query().where(col(Purchase.id).in_(list(owners)))).all()
    ids = {row.public_id: row.id for row in rows}
    targets: dict[int, tuple[str | None, str]] = {
        pid: (f"/purchases/{pid}", "a purchase you no longer share") if owner == reader.id
        else (None, "a purchase no longer shared") for pid, owner in owners.items()}
    for view in public.views_from_rows(session, rows):
        targets[ids[view.public_id]] = (view.path, view.title)
    return targets


def mark_read(session: Session, user: User, upto: int | None = None) -> None:
    """Mark read; `upto` (the newest id the user saw) leaves later arrivals unread."""
    query = update(Notification).where(Notification.user_id == user.id, col(Notification.read_at).is_(None))
    if upto is not None:
        query = query.where(col(Notification.id) <= upto)
    session.exec(query.values(read_at=utcnow()))  # type: ignore[call-overload]


# --- likes and comments ----------------------------------------------------------------------


def like(session: Session, user: User, purchase: Purchase) -> bool:
    """Like once (idempotent); True when a new like was made."""
    if session.exec(select(Like.id).where(Like.user_id == user.id, Like.purchase_id == purchase.id)).first():
        return False
    return _insert_once(session, Like(user_id=user.id or 0, purchase_id=purchase.id or 0))


def unlike(session: Session, user: User, purchase: Purchase) -> None:
    session.exec(delete(Like).where(Like.user_id == user.id, Like.purchase_id == purchase.id))


def add_comment(session: Session, user: User, purchase: Purchase, body: str) -> Comment:
    body = body.replace("\r\n", "\n").strip()
    if not body:
        raise SocialError("write something first")
    if len(body) > COMMENT_MAX:
        raise SocialError(f"a comment is at most {COMMENT_MAX} characters")
    comment = Comment(purchase_id=purchase.id or 0, user_id=user.id or 0, body=body)
    session.add(comment)
    session.flush()
    return comment


def deletable_comment(session: Session, user: User, comment_id: int) -> Comment | None:
    """The comment if `user` wrote it or owns the purchase it is on; None otherwise (404)."""
    row = session.exec(select(Comment, Purchase.user_id).join(Purchase, Comment.purchase_id == Purchase.id)
                       .where(Comment.id == comment_id)).first()
    if row is None:
        return None
    comment, owner_id = row
    return comment if user.id in (comment.user_id, owner_id) else None


# http(s) URLs only: `javascript:`, `data:` and friends never match, so they stay text.
URL = re.compile(r"\bhttps?://[^\s<>\"'`]+", re.IGNORECASE)
TRAILING = ".,;:!?)]}'\""


def comment_html(text: str, secrets: tuple[str | None, ...] = ()) -> Markup:
    """Comment text for a public page: redacted, every character escaped, http(s) URLs made into
    links that pass no ranking or referrer (rel=nofollow ugc noopener noreferrer)."""
    text = redact(text, secrets) or ""
    out: list[str] = []
    last = 0
    for match in URL.finditer(text):
        stripped = match.group(0)
        while stripped and stripped[-1] in TRAILING:  # "see https://x.org/a." ends before the dot
            if stripped[-1] == ")" and stripped.count("(") >= stripped.count(")"):
                break  # Wikipedia-style URLs keep a balanced closing parenthesis
            stripped = stripped[:-1]
        end = match.start() + len(stripped)
        try:
            host = urlsplit(stripped).hostname
        except ValueError:
            host = None
        if not host:
            continue
        out.append(str(escape(text[last:match.start()])))
        out.append(f'<a href="{escape(stripped)}" rel="nofollow ugc noopener noreferrer">{escape(stripped)}</a>')
        last = end
    out.append(str(escape(text[last:])))
    return Markup("".join(out))


@dataclass(frozen=True)
class CommentView:
    id: int
    author_handle: str
    author_name: str
    html: Markup
    created_at: datetime
    can_delete: bool


_COMMENTS, _LIKES, _PURCHASES, _USERS = (table.__table__.c for table in (Comment, Like, Purchase, User))  # type: ignore[attr-defined]
# Columns, not ORM entities: a purchase page reads these for every view that has comments.
_COMMENTS_OF = (sa_select(_COMMENTS.id, _COMMENTS.body, _COMMENTS.created_at, _COMMENTS.user_id, _USERS.handle,
                          _USERS.display_name, _PURCHASES.order_number, _PURCHASES.personal_terms)
                .select_from(Comment.__table__.join(Purchase.__table__, _COMMENTS.purchase_id == _PURCHASES.id)
                             .join(User.__table__, _COMMENTS.user_id == _USERS.id))
                .where(_PURCHASES.public_id == bindparam("public_id"))
                .order_by(_COMMENTS.created_at, _COMMENTS.id))
_LIKED_BY = (sa_select(_LIKES.id).select_from(Like.__table__.join(Purchase.__table__, _LIKES.purchase_id == _PURCHASES.id))
             .where(_PURCHASES.public_id == bindparam("public_id"), _LIKES.user_id == bindparam("user_id")))


def comments_for(session: Session, viewer: User | None, public_id: str, owner_id: int) -> list[CommentView]:
    """The comments under a purchase addressed by its public id (one query: the purchase row
    itself is not loaded, only its order number and personal values, to hide them)."""
    rows = session.connection().execute(_COMMENTS_OF, {"public_id": public_id}).all()
    viewer_id = viewer.id if viewer else None
    # The order number and the buyer's own values are secrets: a commenter who guessed them
    # still cannot publish them.
    return [CommentView(id=row.id, author_handle=row.handle, author_name=redact(row.display_name) or row.handle,
                        html=comment_html(row.body, public.purchase_secrets(row.order_number, row.personal_terms)),
                        created_at=row.created_at,
                        can_delete=viewer_id is not None and viewer_id in (row.user_id, owner_id))
            for row in rows]


def liked_by(session: Session, viewer: User, public_id: str) -> bool:
    """Whether `viewer` likes the purchase with this public id (the count is in its public view)."""
    return session.connection().execute(_LIKED_BY, {"public_id": public_id,
                                                    "user_id": viewer.id}).first() is not None


# --- verified-purchase reviews ---------------------------------------------------------------


def _item_is_shared():
    """SQL: this approved item is on a purchase that is shared (published_filter() with the item
    itself as the approved one; that filter's EXISTS cannot be used where the outer query already
    selects from purchase_item, it would correlate away)."""
    return ((PurchaseItem.approved == True) & col(Purchase.published_at).is_not(None)  # noqa: E712
            & (Purchase.review != "rejected"))


def reviewable_item(session: Session, user: User, item_id: int) -> tuple[PurchaseItem, Purchase] | None:
    """The item if `user` bought it AND shared it (approved, on a shared purchase); None → 404."""
    row = session.exec(select(PurchaseItem, Purchase).join(Purchase, PurchaseItem.purchase_id == Purchase.id)
                       .where(PurchaseItem.id == item_id, Purchase.user_id == user.id, _item_is_shared())).first()
    return (row[0], row[1]) if row else None


def save_review(session: Session, user: User, item: PurchaseItem, rating: str | int, body: str) -> Review:
    try:
        stars = int(rating)
    except (TypeError, ValueError):
        stars = 0
    if not 1 <= stars <= 5:
        raise SocialError("choose a rating from 1 to 5")
    body = body.replace("\r\n", "\n").strip()
    if len(body) > REVIEW_MAX:
        raise SocialError(f"a review is at most {REVIEW_MAX} characters")
    review = session.exec(select(Review).where(Review.item_id == item.id)).first()
    if review is None:
        review = Review(item_id=item.id or 0, user_id=user.id or 0, rating=stars, body=body)
    else:
        review.rating, review.body, review.updated_at = stars, body, utcnow()
    session.add(review)
    session.flush()
    return review


@dataclass(frozen=True)
class ReviewForm:
    item_id: int
    name: str
    rating: int | None
    body: str


def review_forms(session: Session, public_id: str) -> list[ReviewForm]:
    """For the owner: each shared item of this purchase with its review, if any (one query)."""
    rows = session.exec(select(PurchaseItem, Review).join(Review, Review.item_id == PurchaseItem.id, isouter=True)
                        .join(Purchase, PurchaseItem.purchase_id == Purchase.id)
                        .where(Purchase.public_id == public_id, PurchaseItem.approved == True)  # noqa: E712
                        .order_by(PurchaseItem.position)).all()
    return [ReviewForm(item_id=item.id or 0, name=item.name, rating=review.rating if review else None,
                       body=review.body if review else "") for item, review in rows]


# --- collections -----------------------------------------------------------------------------


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:60].strip("-")
    return slug or "collection"


def create_collection(session: Session, user: User, name: str, description: str = "") -> Collection:
    name = " ".join(name.split())
    if not name:
        raise SocialError("give the collection a name")
    if len(name) > COLLECTION_NAME_MAX:
        raise SocialError(f"a name is at most {COLLECTION_NAME_MAX} characters")
    description = description.strip()
    if len(description) > TEXT_MAX["collection_description"]:  # refused, never cut silently
        raise SocialError(f"a description is at most {TEXT_MAX['collection_description']} characters")
    base = slugify(name)
    taken = set(session.exec(select(Collection.slug).where(Collection.user_id == user.id,
                                                           col(Collection.slug).startswith(base))).all())
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    collection = Collection(user_id=user.id or 0, name=name, slug=slug, description=description)
    session.add(collection)
    session.flush()
    return collection


def add_to_collection(session: Session, user: User, collection: Collection, item_id: int) -> bool:
    """Add one of the user's shared items; False when it is not theirs or not shared (404)."""
    if reviewable_item(session, user, item_id) is None:
        return False
    exists = session.exec(select(CollectionItem.id).where(CollectionItem.collection_id == collection.id,
                                                          CollectionItem.item_id == item_id)).first()
    if exists is None:
        position = session.exec(select(func.coalesce(func.max(CollectionItem.position), 0))
                                .where(CollectionItem.collection_id == collection.id)).one()
        _insert_once(session, CollectionItem(collection_id=collection.id or 0, item_id=item_id, position=position + 1))
    return True


def remove_from_collection(session: Session, collection: Collection, item_id: int) -> None:
    session.exec(delete(CollectionItem).where(CollectionItem.collection_id == collection.id,
                                              CollectionItem.item_id == item_id))


@dataclass(frozen=True)
class ItemChoice:
    item_id: int
    name: str
    merchant: str | None


@dataclass
class CollectionView:
    id: int
    name: str
    slug: str
    description: str
    items: list[ItemChoice]


def my_collections(session: Session, user: User) -> tuple[list[CollectionView], list[ItemChoice]]:
    """The owner's collections with their items, and the shared items that may be added (3 queries)."""
    collections = session.exec(select(Collection).where(Collection.user_id == user.id)
                               .order_by(col(Collection.created_at), col(Collection.id))).all()
    views = {c.id: CollectionView(c.id or 0, c.name, c.slug, c.description, []) for c in collections}
    if views:
        rows = session.exec(select(CollectionItem.collection_id, PurchaseItem, Purchase.merchant_name)
                            .join(PurchaseItem, CollectionItem.item_id == PurchaseItem.id)
                            .join(Purchase, PurchaseItem.purchase_id == Purchase.id)
                            .where(col(CollectionItem.collection_id).in_(list(views)))
                            .order_by(CollectionItem.collection_id, CollectionItem.position)).all()
        for collection_id, item, merchant in rows:
            views[collection_id].items.append(ItemChoice(item.id or 0, item.name, merchant))
    shared = session.exec(select(PurchaseItem, Purchase.merchant_name)
                          .join(Purchase, PurchaseItem.purchase_id == Purchase.id)
                          .where(Purchase.user_id == user.id, _item_is_shared())
                          .order_by(col(Purchase.published_at).desc(), PurchaseItem.position).limit(500)).all()
    return list(views.values()), [ItemChoice(item.id or 0, item.name, merchant) for item, merchant in shared]
