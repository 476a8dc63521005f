"""One item standing for the whole purchase, when a reading states what was paid but found no
item rows: a payment to a payee, a marketplace order of one surprise bag, a donation. Without
an item a purchase cannot be shared at all (owners approve item by item), so the reader names
the one thing the email says was bought, and only when the email says it:

- a labelled line, "Description: Tier 1 subscription" (any language's label);
- "your order at <store>", when the store is not the merchant itself (a marketplace);
- a payment provider's receipt: "Payment to <payee>".

Its price is what the items cost by the reading's own breakdown (the subtotal, or the total
when nothing else was charged); "Quantity: 2" splits it into unit prices when they are exact.
Structure and vocabulary (parsers/vocab/whole_order.toml) only: no shop's words.
"""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from pathlib import Path

from parsers.items import VOCABULARY, is_heading
from parsers.model import Extraction, Item

VOCAB_FILE = Path(__file__).with_name("vocab") / "whole_order.toml"
LANGUAGES = ("en", "fr", "de", "es", "it", "nl", "pt", "sv", "pl")
_TEXT_READ = 20_000  # the item is named near the top; a long body's tail is footers
_VOCAB = tomllib.loads(VOCAB_FILE.read_text(encoding="utf-8"))


def _any(table: str) -> str:
    return "|".join(dict.fromkeys(entry for lang in LANGUAGES for entry in _VOCAB[table][lang]))


# "Description: X" / "Description: | X" (a label cell and its value), X with letters in it
_DESCRIPTION = re.compile(rf"^(?:{_any('description')})\s*(?::\s*\|?|\|)\s*(?P<name>[^\n|]*?[^\W\d_][^\n|]{{1,150}})$",
                          re.IGNORECASE | re.MULTILINE)
_ORDER_AT = re.compile(rf"\b(?:{_any('order_at')})\s+(?P<name>[^\W\d_][^\n]{{1,80}}?)\s*(?:[.,;]\s|[.!]?$)",
                       re.IGNORECASE | re.MULTILINE)
# The item finder's quantity words (parsers/vocab/items.toml), here as a whole line: "Quantity: 2"
_QUANTITY = re.compile(rf"^(?:{VOCABULARY['qty']})\s*(?::\s*\|?|\|)\s*(?P<count>\d{{1,3}})\s*$",
                       re.IGNORECASE | re.MULTILINE)
_MONEY_ONLY = re.compile(r"^[\W\d]*(?:[A-Z]{3})?[\W\d]*$")
_CENT = Decimal("0.01")


def whole_order_item(extraction: Extraction, text: str, *, merchant: str | None, payee: str | None,
                     language: str | None) -> Item | None:
    """The one item of a reading that has a total and no items, or None when the email does
    not name what was bought."""
    if extraction.items or extraction.total is None:
        return None
    price = _items_price(extraction)
    if price is None or price <= 0:
        return None
    text = text[:_TEXT_READ]
    name = _described(text) or _store(text, merchant)
    if name is None and payee:
        words = _VOCAB["payment_to"].get((language or "en").split("-")[0].lower(), _VOCAB["payment_to"]["en"])
        name = f"{words[0]} {payee}"
    if name is None:
        return None
    counted = _QUANTITY.search(text)
    quantity = int(counted.group("count")) if counted and int(counted.group("count")) > 0 else 1
    unit = price / quantity
    exact = unit == unit.quantize(_CENT)
    return Item(name=name, quantity=quantity if exact else 1, unit_price=unit if exact else price, line_total=price)


def _items_price(extraction: Extraction) -> Decimal | None:
    """What the items cost by the reading's breakdown: the subtotal, else the total less what
    it says was charged besides (shipping, tax) plus any discount."""
    if extraction.subtotal is not None:
        return extraction.subtotal
    total = extraction.total
    assert total is not None
    return total - (extraction.shipping or 0) - (extraction.tax or 0) + (extraction.discount or 0)


def _described(text: str) -> str | None:
    for found in _DESCRIPTION.finditer(text):
        name = " ".join(found.group("name").split())
        if not _MONEY_ONLY.match(name) and not is_heading(name):
            return name
    return None


def _store(text: str, merchant: str | None) -> str | None:
    """The store of "your order at <store>" when it is not the merchant (then it names only the shop)."""
    found = _ORDER_AT.search(text)
    if found is None:
        return None
    name = " ".join(found.group("name").split())
    if not name[0].isupper():
        return None  # "your order with us", "deine Bestellung bei uns": no store named
    key = re.sub(r"\W", "", name.casefold())
    merchant_key = re.sub(r"\W", "", (merchant or "").casefold())
    if not key or (merchant_key and (merchant_key in key or key in merchant_key)):
        return None
    return name
