"""What the owner shares: approving items, rejecting, adding and removing items, and the rule for
"is this purchase public". The owner's pages (web/routes/owner.py) and the demo seed both call
these, so the rule lives in one place; `public.published_filter` is the same rule in SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func
from sqlalchemy.orm import object_session
from sqlmodel import Session, delete, select

from purchaseshare.clock import utcnow
from purchaseshare.item_images import queue_release, queue_sync
from purchaseshare.models import CollectionItem, Purchase, PurchaseItem, Review


def is_public(purchase: Purchase, items: Iterable[PurchaseItem]) -> bool:
    """Shown on the owner's profile: published once, not rejected, at least one approved item."""
    return (purchase.review != "rejected" and purchase.published_at is not None
            and any(item.approved for item in items))


def set_approved(purchase: Purchase, items: list[PurchaseItem], approved_ids: set[int],
                 now: datetime | None = None) -> None:
    """Share exactly these items; the purchase counts as reviewed, public once an item is shared.
    `now` lets the demo seed date its sample approvals in the past."""
    now = now or utcnow()
    for item in items:
        wanted = item.id in approved_ids
        if wanted and not item.approved:
            item.approved, item.approved_at = True, now
        elif not wanted and item.approved:
            item.approved, item.approved_at = False, None
    purchase.review = "reviewed"
    if any(item.approved for item in items) and purchase.published_at is None:
        purchase.published_at = now  # the first time only: a later re-approval keeps its place
    purchase.updated_at = now
    queue_sync(object_session(purchase), purchase.id)  # after the commit: store / drop item images


def approve_all(purchase: Purchase, items: list[PurchaseItem], now: datetime | None = None) -> None:
    set_approved(purchase, items, {item.id for item in items if item.id is not None}, now)


def reject(purchase: Purchase, items: list[PurchaseItem]) -> None:
    """Nothing shared, and never public whatever its items say later."""
    set_approved(purchase, items, set())
    purchase.review = "rejected"


def add_item(session: Session, purchase: Purchase, name: str, quantity: int = 1,
             unit_price: Decimal | None = None, url: str | None = None, image: str | None = None,
             position: int | None = None) -> PurchaseItem:
    """An item entered by the owner (one the parser missed, or a purchase entered by hand): private
    (not approved) until they share it. Placed after the existing items unless `position` is given.
    Flushes (the id); the caller commits."""
    if position is None:
        last = session.exec(select(func.max(PurchaseItem.position))
                            .where(PurchaseItem.purchase_id == purchase.id)).one()
        position = last + 1 if last is not None else 0
    item = PurchaseItem(purchase_id=purchase.id or 0, position=position, name=name,
                        quantity=quantity, unit_price=unit_price,
                        line_total=unit_price * quantity if unit_price is not None else None, url=url, image=image)
    session.add(item)
    purchase.updated_at = utcnow()
    session.add(purchase)
    session.flush()
    return item


def remove_item(session: Session, purchase: Purchase, item: PurchaseItem) -> None:
    """Delete a wrongly parsed item (a "Shipping" line, say) with what hangs on it: its review and
    collection entries. A purchase left with no approved item stops being public by the rule above
    (and published_filter), so nothing else changes. The caller commits."""
    queue_release(session, [item.image_file])  # its stored image, unless another item has it
    session.exec(delete(CollectionItem).where(CollectionItem.item_id == item.id))
    session.exec(delete(Review).where(Review.item_id == item.id))
    session.delete(item)
    purchase.updated_at = utcnow()
    session.add(purchase)
    session.flush()
