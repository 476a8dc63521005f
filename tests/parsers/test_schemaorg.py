"""The schema.org layer on its own: tests/data/schemaorg/<case>.html -> <case>.json.

Each .json states the Extraction fields the markup gives (items after normalize, so
line totals are filled in); `null` means the markup describes no purchase at all. Every
field the .json names must match; fields it leaves out are not compared.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from parsers.message import Email, Headers
from parsers.model import Extraction
from parsers.normalize import money_str, normalize_items
from parsers.schemaorg import extract_schemaorg
from purchaseshare.pipeline import run
from tests.helpers import ROOT, mismatches

DATA = ROOT / "tests" / "data" / "schemaorg"
CASES = sorted(DATA.glob("*.html"))


def as_json(extraction: Extraction | None) -> dict | None:
    if extraction is None:
        return None
    data: dict = {}
    for name in ("kind", "merchant_name", "merchant_domain", "order_number", "order_date", "currency", "total",
                 "subtotal", "shipping", "tax", "discount"):
        value = getattr(extraction, name)
        if isinstance(value, Decimal):
            value = format(value, "f")
        elif isinstance(value, date):
            value = value.isoformat()
        elif value is not None:
            value = str(value)
        data[name] = value
    data["items"] = [
        {"name": i.name, "quantity": i.quantity, "unit_price": _money(i.unit_price), "line_total": _money(i.line_total),
         "url": i.url, "image": i.image, "sku": i.sku}
        for i in normalize_items(extraction.items)
    ]
    return data


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def mail_of(html: str) -> Email:
    return Email(original=Headers(), html=html)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_schemaorg_case(path: Path):
    expected = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    actual = as_json(extract_schemaorg(mail_of(path.read_text(encoding="utf-8"))))
    if expected is None:
        assert actual is None
        return
    assert actual is not None, "no purchase read from the markup"
    assert mismatches(expected, actual) == []


def test_there_are_enough_cases():
    assert len(CASES) >= 12


def test_money_keeps_its_decimal_places():
    """Amounts are exact Decimals, never floats: 0.1 + 0.2 stays 0.30."""
    html = ('<script type="application/ld+json">{"@context": "http://schema.org", "@type": "Order", '
            '"priceCurrency": "USD", "price": 0.3, "acceptedOffer": ['
            '{"@type": "Offer", "itemOffered": {"name": "A"}, "price": 0.1},'
            '{"@type": "Offer", "itemOffered": {"name": "B"}, "price": 0.2}]}</script>')
    result = extract_schemaorg(mail_of(html))
    assert result is not None and isinstance(result.total, Decimal)
    assert money_str(sum((i.unit_price for i in result.items), Decimal(0))) == money_str(result.total)


def test_unreadable_block_leaves_a_warning():
    mail = mail_of((DATA / "broken_one_invalid_block.html").read_text(encoding="utf-8"))
    assert extract_schemaorg(mail) is not None
    assert any("JSON-LD" in w for w in mail.warnings)


def test_no_markup_no_result():
    assert extract_schemaorg(mail_of("<p>Order total: $12.00</p>")) is None
    assert extract_schemaorg(Email(original=Headers(), text="schema.org Order")) is None


def test_parcel_delivery_is_not_a_purchase_in_the_pipeline():
    html = (DATA / "parcel_delivery.html").read_text(encoding="utf-8")
    raw = ("From: Kettle & Bloom <orders@kettlebloom-shop.com>\nSubject: An update from Kettle & Bloom\n"
           "Date: Thu, 27 Mar 2025 08:00:00 +0000\nMIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n"
           + html).encode()
    data = run(raw).to_json()
    assert data["status"] == "not_purchase" and data["kind"] == "shipping" and data["items"] == []
