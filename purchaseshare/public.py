"""The ONE public view of a purchase. Public pages, feeds, SSE, the JSON API and meta tags are
all rendered from `PublicPurchase` and nothing else: it copies allow-listed fields of APPROVED
items only, passes every string through `redact`, and never carries the order number, totals of
the whole order (they would reveal unapproved items), addresses, or anything from the raw email.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func
from sqlmodel import Session, col, select

from purchaseshare.models import Comment, Like, Purchase, PurchaseItem, Review, User
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
    image: str | None
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

    @property
    def title(self) -> str:
        first = self.items[0].name if self.items else "A purchase"
        more = f" and {len(self.items) - 1} more" if len(self.items) > 1 else ""
        return f"{first}{more}" + (f" from {self.merchant_name}" if self.merchant_name else "")


def published_filter():
    """SQL condition: purchases that may appear publicly (at least one approved item)."""
    has_approved = select(PurchaseItem.id).where(PurchaseItem.purchase_id == Purchase.id,
                                                 PurchaseItem.approved == True).exists()  # noqa: E712
    return (col(Purchase.published_at).is_not(None)) & (Purchase.review != "rejected") & has_approved


def build(session: Session, rows: Sequence[tuple[Purchase, User]]) -> list[PublicPurchase]:
    """Public views for (purchase, owner) rows, in the given order: a constant number of queries."""
    ids = [purchase.id for purchase, _ in rows]
    if not ids:
        return []
    items_by: dict[int, list[PurchaseItem]] = defaultdict(list)
    item_rows = session.exec(select(PurchaseItem).where(col(PurchaseItem.purchase_id).in_(ids),
                                                        PurchaseItem.approved == True)  # noqa: E712
                             .order_by(PurchaseItem.purchase_id, PurchaseItem.position)).all()
    for item in item_rows:
        items_by[item.purchase_id].append(item)
    reviews = {review.item_id: review for review in session.exec(
        select(Review).where(col(Review.item_id).in_([item.id for item in item_rows])))} if item_rows else {}
    likes = dict(session.exec(select(Like.purchase_id, func.count()).where(col(Like.purchase_id).in_(ids))
                              .group_by(Like.purchase_id)).all())
    comments = dict(session.exec(select(Comment.purchase_id, func.count()).where(col(Comment.purchase_id).in_(ids))
                                 .group_by(Comment.purchase_id)).all())
    views = []
    for purchase, owner in rows:
        items = items_by.get(purchase.id or 0, [])
        if not items:
            continue
        views.append(_view(purchase, owner, items, reviews, likes.get(purchase.id, 0), comments.get(purchase.id, 0)))
    return views


def _view(purchase: Purchase, owner: User, items: list[PurchaseItem], reviews: dict[int, Review],
          likes: int, comments: int) -> PublicPurchase:
    secrets = (purchase.order_number,)
    merchant = redact(purchase.merchant_name, secrets)
    return PublicPurchase(
        public_id=purchase.public_id, handle=owner.handle, owner_name=redact(owner.display_name) or owner.handle,
        merchant_name=merchant, merchant_domain=purchase.merchant_domain, bought_on=purchase.order_date,
        published_at=purchase.published_at, caption=redact(purchase.caption, secrets),
        items=tuple(_item(item, purchase, reviews.get(item.id or 0), merchant) for item in items),
        likes=likes, comments=comments,
    )


def _item(item: PurchaseItem, purchase: Purchase, review: Review | None, merchant: str | None) -> PublicItem:
    secrets = (purchase.order_number,)
    price = None if purchase.hide_prices else (item.unit_price if item.unit_price is not None else item.line_total)
    verified = None
    if review is not None:
        where = merchant or purchase.merchant_domain or "a shop"
        when = purchase.order_date.isoformat() if purchase.order_date else "an unknown date"
        verified = PublicReview(rating=review.rating, body=redact(review.body, secrets) or "",
                                verified=f"Verified purchase: bought at {where} on {when}")
    return PublicItem(position=item.position, name=redact(item.name, secrets) or "", quantity=item.quantity,
                      price=price, currency=purchase.currency, url=public_url(item.url, secrets),
                      image=public_url(item.image, secrets), review=verified)


def profile_page(session: Session, owner: User, page: int = 1, size: int = PAGE_SIZE) -> list[PublicPurchase]:
    """An owner's shared purchases, newest first."""
    rows = session.exec(select(Purchase, User).join(User, Purchase.user_id == User.id)
                        .where(Purchase.user_id == owner.id, published_filter())
                        .order_by(col(Purchase.published_at).desc(), col(Purchase.id).desc())
                        .offset((max(page, 1) - 1) * size).limit(size)).all()
    return build(session, rows)


def one(session: Session, handle: str, public_id: str) -> PublicPurchase | None:
    row = session.exec(select(Purchase, User).join(User, Purchase.user_id == User.id)
                       .where(User.handle == handle, Purchase.public_id == public_id, published_filter())).first()
    views = build(session, [row]) if row else []
    return views[0] if views else None


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
            "url": item.url, "image": item.image,
            "review": {"rating": item.review.rating, "body": item.review.body, "verified": item.review.verified}
            if item.review else None,
        } for item in view.items],
    }
