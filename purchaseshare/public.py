"""The ONE public view of a purchase. Public pages, feeds, SSE, the JSON API and meta tags are
all rendered from `PublicPurchase` and nothing else: it copies allow-listed fields of APPROVED
items only, passes every string through `redact`, and never carries the order number, totals of
the whole order (they would reveal unapproved items), addresses, or anything from the raw email.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property, lru_cache
from typing import NamedTuple

from sqlalchemy import Row, ScalarSelect, Select, bindparam, func, true
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from purchaseshare.images import THUMB, media_path
from purchaseshare.models import (
    Collection,
    CollectionItem,
    Comment,
    Follow,
    Like,
    Purchase,
    PurchaseItem,
    Review,
    User,
)
from purchaseshare.pipeline import MAX_ITEMS
from purchaseshare.redact import public_url, redact

PAGE_SIZE = 20


@dataclass(frozen=True)
class PublicReview:
    rating: int
    body: str
    verified: str  # "bought at MERCHANT on DATE"


@dataclass(frozen=True)
class PublicItem:
    position: int
    name: str
    quantity: int
    price: Decimal | None  # unit price; None when the owner hides prices
    currency: str | None
    url: str | None
    image: str | None  # OUR stored image's path (/media/...), never the merchant's URL; None: none
    review: PublicReview | None = None


@dataclass(frozen=True)
class PublicPurchase:
    public_id: str
    handle: str
    owner_name: str
    merchant_name: str | None
    merchant_domain: str | None
    bought_on: date | None
    published_at: datetime | None
    caption: str | None
    items: tuple[PublicItem, ...]
    likes: int = 0
    comments: int = 0
    extra: dict = field(default_factory=dict, compare=False)  # per-viewer flags (liked_by_me), not data

    @property
    def path(self) -> str:
        return f"/u/{self.handle}/p/{self.public_id}"

    @cached_property  # templates ask several times per card; the view is immutable
    def title(self) -> str:
        first = self.items[0].name if self.items else "A purchase"
        more = f" and {len(self.items) - 1} more" if len(self.items) > 1 else ""
        return f"{first}{more}" + (f" from {self.merchant_name}" if self.merchant_name else "")


def published_filter():
    """SQL condition: purchases that may appear publicly (at least one approved item)."""
    has_approved = select(PurchaseItem.id).where(PurchaseItem.purchase_id == Purchase.id,
                                                 PurchaseItem.approved == True).exists()  # noqa: E712
    return (col(Purchase.published_at).is_not(None)) & (Purchase.review != "rejected") & has_approved


# --- reading the view: plain column rows, few queries, no ORM entities --------------------------
# Pages are hot paths: rows of the columns a view needs (Core, not ORM objects), counts as
# correlated subqueries of the page's own query, items and reviews in one more query. The order
# number is selected only to be hidden (`secrets`), never copied.

_P, _U = Purchase.__table__.c, User.__table__.c  # type: ignore[attr-defined]
_I, _R = PurchaseItem.__table__.c, Review.__table__.c  # type: ignore[attr-defined]


def _count_of(table) -> ScalarSelect:
    return (sa_select(func.count()).select_from(table).where(table.c.purchase_id == _P.id)
            .correlate(Purchase.__table__).scalar_subquery())


VIEW_COLUMNS = (_P.id, _P.public_id, _P.merchant_name, _P.merchant_domain, _P.order_number, _P.personal_terms,
                _P.order_date, _P.published_at, _P.caption, _P.hide_prices, _P.currency, _U.handle, _U.display_name,
                _count_of(Like.__table__).label("likes"), _count_of(Comment.__table__).label("comments"))
NEWEST_FIRST = (_P.published_at.desc(), _P.id.desc())  # publication order: feeds (home, Atom)
# What people browse on a profile: newest BOUGHT first. A purchase whose date is unknown comes after
# every dated one (a guess would put it anywhere); ties (same day, or both unknown) go newest shared first.
BOUGHT_NEWEST_FIRST = (_P.order_date.desc().nulls_last(), *NEWEST_FIRST)


class _ViewRow(NamedTuple):  # VIEW_COLUMNS, in order
    id: int
    public_id: str
    merchant_name: str | None
    merchant_domain: str | None
    order_number: str | None
    personal_terms: str | None  # JSON list: the email's own personal values, hidden like the order number
    order_date: date | None
    published_at: datetime | None
    caption: str | None
    hide_prices: bool
    currency: str | None
    handle: str
    display_name: str
    likes: int
    comments: int


class _ItemRow(NamedTuple):  # _ITEMS after purchase_id, in order
    position: int
    name: str
    quantity: int
    unit_price: Decimal | None
    line_total: Decimal | None
    url: str | None
    image_file: str | None  # the stored image's name (purchaseshare/images.py), not the merchant's URL
    rating: int | None
    body: str | None


def view_rows_query(*extra_columns) -> Select:
    """SELECT of what `views_from_rows` needs, for published purchases (callers add WHERE,
    ORDER BY, LIMIT). `extra_columns` come after the view's (e.g. a per-viewer flag)."""
    return (sa_select(*VIEW_COLUMNS, *extra_columns)
            .select_from(Purchase.__table__.join(User.__table__, _P.user_id == _U.id))
            .where(published_filter()))


# The first MAX_ITEMS approved items of each purchase: a page stays small even for a purchase
# stored with more (before the cap existed).
_FIRST = (sa_select(_I.id, func.row_number().over(partition_by=_I.purchase_id, order_by=(_I.position, _I.id))
                    .label("rank"))
          .where(_I.purchase_id.in_(bindparam("ids", expanding=True)), _I.approved == true()).subquery())
_ITEMS = (sa_select(_I.purchase_id, _I.position, _I.name, _I.quantity, _I.unit_price, _I.line_total, _I.url,
                    _I.image_file, _R.rating, _R.body)
          .select_from(PurchaseItem.__table__.join(_FIRST, _FIRST.c.id == _I.id)
                       .outerjoin(Review.__table__, _R.item_id == _I.id))
          .where(_FIRST.c.rank <= MAX_ITEMS)
          .order_by(_I.purchase_id, _I.position, _I.id))
# Statements built once (building one costs more than running it on a small page).
_PROFILE_PAGE = (view_rows_query().where(_P.user_id == bindparam("owner_id")).order_by(*BOUGHT_NEWEST_FIRST)
                 .offset(bindparam("offset")).limit(bindparam("limit")))
_PROFILE_FEED = (view_rows_query().where(_P.user_id == bindparam("owner_id")).order_by(*NEWEST_FIRST)
                 .offset(bindparam("offset")).limit(bindparam("limit")))
_ONE = (view_rows_query(_U.id.label("owner_id"), _U.bio.label("owner_bio"), _U.avatar_file.label("owner_avatar_file"),
                        _U.allow_indexing.label("owner_allow_indexing"))
        .where(_U.handle == bindparam("handle"), _P.public_id == bindparam("public_id")))
_BY_IDS = view_rows_query().where(_P.id.in_(bindparam("ids", expanding=True)))


def views_from_rows(session: Session, rows: Sequence[Row]) -> list[PublicPurchase]:
    """Views for rows of `view_rows_query`, in their order: ONE more query (approved items and
    their reviews), whatever the number of rows. Rows without an approved item are dropped."""
    if not rows:
        return []
    items_by: dict[int, list[_ItemRow]] = defaultdict(list)
    for item in session.connection().execute(_ITEMS, {"ids": [row.id for row in rows]}):
        items_by[item[0]].append(_ItemRow._make(item[1:]))
    views = []
    width = len(VIEW_COLUMNS)
    for row in rows:
        items = items_by.get(row.id)
        if items:  # a fresh object per request: `extra` holds per-viewer flags
            views.append(PublicPurchase(*_view_fields(_ViewRow._make(row[:width]), tuple(items))))
    return views


def build(session: Session, rows: Sequence[tuple[Purchase, User]]) -> list[PublicPurchase]:
    """Public views for (purchase, owner) rows, in the given order: a constant number of queries."""
    order = [purchase.id for purchase, _ in rows]
    if not order:
        return []
    fetched = {row.id: row for row in session.connection().execute(_BY_IDS, {"ids": order})}
    return views_from_rows(session, [fetched[pid] for pid in order if pid in fetched])


@lru_cache(maxsize=4096)
def _view_fields(row: _ViewRow, items: tuple[_ItemRow, ...]) -> tuple:
    """PublicPurchase's fields (all but `extra`) from the data they are made of. Memoized on that
    data itself: any change in a row (an edit, an approval, a like) is a different key, so a
    cached result is never stale; the result is immutable and shared between requests."""
    secrets = purchase_secrets(row.order_number, row.personal_terms)
    merchant = redact(row.merchant_name, secrets)
    verified = None
    if any(item.rating is not None for item in items):
        where = merchant or row.merchant_domain or "a shop"
        when = row.order_date.isoformat() if row.order_date else "an unknown date"
        verified = f"Verified purchase: bought at {where} on {when}"
    return (row.public_id, row.handle, redact(row.display_name) or row.handle, merchant, row.merchant_domain,
            row.order_date, row.published_at, redact(row.caption, secrets),
            tuple(_item(item, row, secrets, verified) for item in items), row.likes, row.comments)


def purchase_secrets(order_number: str | None, personal_terms: str | None) -> tuple[str, ...]:
    """What a purchase's public text must never show besides the generic patterns: its order
    number and the personal values its email stated (stored privately as a JSON list)."""
    terms: list[str] = []
    if personal_terms:
        try:
            terms = [term for term in json.loads(personal_terms) if isinstance(term, str)]
        except ValueError:
            terms = []
    return tuple(term for term in (order_number, *terms) if term)


def _item(item: _ItemRow, purchase: _ViewRow, secrets: tuple[str | None, ...], verified: str | None) -> PublicItem:
    price = None if purchase.hide_prices else (item.unit_price if item.unit_price is not None else item.line_total)
    review = None
    if item.rating is not None:
        review = PublicReview(rating=item.rating, body=redact(item.body, secrets) or "", verified=verified or "")
    return PublicItem(position=item.position, name=redact(item.name, secrets) or "", quantity=item.quantity,
                      price=price, currency=purchase.currency, url=public_url(item.url, secrets),
                      image=media_path(item.image_file) if item.image_file else None, review=review)


def profile_page(session: Session, owner: User | Owner, page: int = 1, size: int = PAGE_SIZE) -> list[PublicPurchase]:
    """An owner's shared purchases, newest SHARED first (the Atom feed: its first entry is the
    latest change; profile pages use `profile_slice`, by purchase date)."""
    rows = session.connection().execute(_PROFILE_FEED, {"owner_id": owner.id, "offset": (max(page, 1) - 1) * size,
                                                        "limit": size}).all()
    return views_from_rows(session, rows)


def one(session: Session, handle: str, public_id: str) -> PublicPurchase | None:
    found = one_with_owner(session, handle, public_id)
    return found[0] if found else None


def one_with_owner(session: Session, handle: str, public_id: str) -> tuple[PublicPurchase, Owner] | None:
    """A shared purchase addressed by its public URL and its owner, from the same row: two
    queries (the row, its items). None when the handle or the purchase is unknown or not shared."""
    rows = session.connection().execute(_ONE, {"handle": handle.lower(), "public_id": public_id}).all()
    views = views_from_rows(session, rows)
    if not views:
        return None
    row = rows[0]
    return views[0], Owner(row.owner_id, row.handle, row.display_name, row.owner_bio, row.owner_avatar_file,
                           row.owner_allow_indexing)


def to_json(view: PublicPurchase, base_url: str = "") -> dict:
    """The API's object (money as decimal strings)."""
    return {
        "id": view.public_id,
        "user": view.handle,
        "url": base_url + view.path,
        "merchant": {"name": view.merchant_name, "domain": view.merchant_domain},
        "bought_on": view.bought_on.isoformat() if view.bought_on else None,
        "shared_at": view.published_at.isoformat() if view.published_at else None,
        "caption": view.caption,
        "likes": view.likes,
        "comments": view.comments,
        "items": [{
            "name": item.name, "quantity": item.quantity,
            "price": str(item.price) if item.price is not None else None, "currency": item.currency,
            "url": item.url, "image": base_url + item.image if item.image else None,
            "review": {"rating": item.review.rating, "body": item.review.body, "verified": item.review.verified}
            if item.review else None,
        } for item in view.items],
    }


# --- profiles and collections (the rest of what public pages show) ----------------------------


@dataclass(frozen=True)
class PublicCollectionRef:
    slug: str
    name: str


@dataclass(frozen=True)
class PublicProfile:
    handle: str
    display_name: str
    bio: str
    avatar_url: str | None  # OUR stored copy's path (/media/...), never the URL the owner typed
    allow_indexing: bool
    collections: tuple[PublicCollectionRef, ...] = ()

    @property
    def path(self) -> str:
        return f"/u/{self.handle}"


@dataclass(frozen=True)
class PublicCollection:
    handle: str
    slug: str
    name: str
    description: str
    entries: tuple[tuple[PublicPurchase, PublicItem], ...]  # (the purchase it came from, the item)

    @property
    def path(self) -> str:
        return f"/u/{self.handle}/c/{self.slug}"


# --- the owner of a public page: one row, no ORM entity -----------------------------------------


class Owner(NamedTuple):
    """What public pages read of their owner (never shown as is: `profile` redacts it)."""
    id: int
    handle: str
    display_name: str
    bio: str
    avatar_file: str | None
    allow_indexing: bool


class OwnerCounts(NamedTuple):
    followers: int
    following: int
    collections: int  # how many the owner made (their names need one more query, only when some exist)


def _count_by_user(column) -> ScalarSelect:
    return (sa_select(func.count()).select_from(column.table).where(column == _U.id)
            .correlate(User.__table__).scalar_subquery())


_C, _F = Collection.__table__.c, Follow.__table__.c  # type: ignore[attr-defined]
_OWNER = (sa_select(_U.id, _U.handle, _U.display_name, _U.bio, _U.avatar_file, _U.allow_indexing,
                    _count_by_user(_F.followee_id), _count_by_user(_F.follower_id), _count_by_user(_C.user_id))
          .where(_U.handle == bindparam("handle")))
_COLLECTIONS = sa_select(_C.slug, _C.name).where(_C.user_id == bindparam("owner_id")).order_by(_C.name, _C.id)


def owner(session: Session, handle: str) -> tuple[Owner, OwnerCounts] | None:
    """The user with this handle and their follower, following and collection counts: ONE query.
    None for an unknown handle (the caller tells a renamed one from a missing one)."""
    row = session.connection().execute(_OWNER, {"handle": handle.lower()}).first()
    return (Owner._make(row[:6]), OwnerCounts._make(row[6:])) if row else None


def profile(session: Session, owner: User | Owner, with_collections: bool = True) -> PublicProfile:
    """The owner's public identity (display name, bio, avatar) and collection names, redacted too."""
    collections: tuple[PublicCollectionRef, ...] = ()
    if with_collections:
        rows = session.connection().execute(_COLLECTIONS, {"owner_id": owner.id}).all()
        collections = tuple(PublicCollectionRef(slug=slug, name=redact(name) or slug) for slug, name in rows)
    return PublicProfile(handle=owner.handle, display_name=redact(owner.display_name) or owner.handle,
                         bio=redact(owner.bio) or "",
                         avatar_url=media_path(owner.avatar_file, THUMB) if owner.avatar_file else None,
                         allow_indexing=owner.allow_indexing, collections=collections)


def profile_slice(session: Session, owner: User | Owner, page: int = 1,
                  size: int = PAGE_SIZE) -> tuple[list[PublicPurchase], bool]:
    """One page of the owner's shared purchases, newest bought first (BOUGHT_NEWEST_FIRST), and
    whether a next page exists (one extra row, no COUNT). Two queries."""
    rows = session.connection().execute(_PROFILE_PAGE, {"owner_id": owner.id, "offset": (max(page, 1) - 1) * size,
                                                        "limit": size + 1}).all()
    return views_from_rows(session, rows[:size]), len(rows) > size


def collection(session: Session, owner: User, slug: str) -> PublicCollection | None:
    """A collection with only the approved items of the owner's published purchases in it, newest
    bought first (BOUGHT_NEWEST_FIRST)."""
    found = session.exec(select(Collection).where(Collection.user_id == owner.id, Collection.slug == slug)).first()
    if found is None:
        return None
    entry = aliased(PurchaseItem)  # published_filter's EXISTS must not correlate with this one
    rows = session.exec(
        select(entry.purchase_id, entry.position)
        .join(CollectionItem, CollectionItem.item_id == entry.id)
        .join(Purchase, Purchase.id == entry.purchase_id)
        .where(CollectionItem.collection_id == found.id, entry.approved == True,  # noqa: E712
               Purchase.user_id == owner.id, published_filter())
        .order_by(*BOUGHT_NEWEST_FIRST, entry.position, entry.id)).all()  # like the profile; a purchase's items in its order
    purchase_ids = list(dict.fromkeys(purchase_id for purchase_id, _ in rows))
    purchases = session.exec(select(Purchase, User).join(User, Purchase.user_id == User.id)
                             .where(col(Purchase.id).in_(purchase_ids))).all() if purchase_ids else []
    public_ids = {purchase.id: purchase.public_id for purchase, _ in purchases}
    views = {view.public_id: view for view in build(session, purchases)}
    entries = []
    for purchase_id, position in rows:
        view = views.get(public_ids.get(purchase_id, ""))
        item = next((item for item in view.items if item.position == position), None) if view else None
        if view is not None and item is not None:
            entries.append((view, item))
    return PublicCollection(handle=owner.handle, slug=found.slug, name=redact(found.name) or found.slug,
                            description=redact(found.description) or "", entries=tuple(entries))
