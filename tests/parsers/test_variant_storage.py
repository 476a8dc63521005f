"""A variant line read from an email reaches the stored item (processing.add_items)."""

from __future__ import annotations

from decimal import Decimal

from sqlmodel import select

from parsers.model import Item
from purchaseshare.db import session_scope
from purchaseshare.models import Purchase, PurchaseItem, User
from purchaseshare.processing import add_items


def test_add_items_keeps_the_variant(settings):
    with session_scope(settings) as session:
        user = User(handle="vera")
        session.add(user)
        session.flush()
        purchase = Purchase(user_id=user.id, kind="order")
        session.add(purchase)
        session.flush()
        add_items(session, purchase.id, [Item("Linen shirt", 1, Decimal("30.00"), Decimal("30.00"),
                                              variant="Size: M, Colour: Blue")])
        session.commit()
        stored = session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == purchase.id)).one()
        assert stored.variant == "Size: M, Colour: Blue"
