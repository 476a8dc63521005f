"""What the parser layers produce, before normalization.

Parsers are pure: bytes in, `Extraction` out; no database, no network. Money is
always `Decimal`; a currency may still be a symbol ("£", "$") here, it becomes an
ISO 4217 code (or None) in `parsers.normalize`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum


class Kind(StrEnum):
    ORDER = "order"
    RECEIPT = "receipt"
    SHIPPING = "shipping"
    REFUND = "refund"
    CANCELLATION = "cancellation"
    NEWSLETTER = "newsletter"
    OTHER = "other"

    @property
    def is_purchase(self) -> bool:
        return self in (Kind.ORDER, Kind.RECEIPT)


@dataclass
class Item:
    name: str
    quantity: int = 1
    unit_price: Decimal | None = None
    line_total: Decimal | None = None
    url: str | None = None
    image: str | None = None
    sku: str | None = None
    variant: str | None = None  # a size/colour sub-line ("Size: M, Colour: Blue")


@dataclass
class Extraction:
    """One purchase as a parser layer read it (fields it could not read stay None)."""

    parser: str
    confidence: float
    merchant_name: str | None = None
    merchant_domain: str | None = None
    order_number: str | None = None
    order_date: date | None = None
    currency: str | None = None  # ISO code or a symbol, resolved by normalize
    total: Decimal | None = None
    subtotal: Decimal | None = None
    shipping: Decimal | None = None
    tax: Decimal | None = None
    discount: Decimal | None = None  # a positive amount taken off the total
    items: list[Item] = field(default_factory=list)
    kind: Kind | None = None  # a parser may know better than the classifier
    warnings: list[str] = field(default_factory=list)
    # The layer checked its own arithmetic and it closed (items -> subtotal -> total): its
    # amounts may fill another layer's gaps (parsers.chain).
    sum_checked: bool = False

    @property
    def has_purchase_data(self) -> bool:
        return bool(self.items) or self.total is not None
