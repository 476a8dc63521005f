"""The generic fallback on its own: totals by label in five languages, item rows, and
what it must NOT do - invent a purchase from a shipping notice or a newsletter.

Whole emails live in fixtures/emails/_generic/ (checked by test_fixtures.py); these are
the small cases.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from parsers.generic import extract_generic
from parsers.message import Email, Headers
from purchaseshare.pipeline import run
from tests.helpers import FIXTURES


def html_mail(body: str, subject: str = "") -> Email:
    return Email(original=Headers(subject=subject), html=f"<html><body>{body}</body></html>")


def text_mail(body: str) -> Email:
    return Email(original=Headers(), text=body)


RECEIPT_TABLE = """
<p>Thank you for your order. Order number: AB-12345</p>
<table><tr><td>Blue teapot</td><td>1</td><td>$24.00</td></tr>
<tr><td>Tea towel</td><td>2</td><td>$12.00</td></tr></table>
<table><tr><td>Subtotal</td><td>$36.00</td></tr><tr><td>Shipping</td><td>$5.00</td></tr>
<tr><td>Order total</td><td>$41.00</td></tr></table>
"""


def test_reads_a_table_receipt():
    result = extract_generic(html_mail(RECEIPT_TABLE))
    assert result is not None
    assert result.total == Decimal("41.00") and result.subtotal == Decimal("36.00")
    assert result.shipping == Decimal("5.00") and result.order_number == "AB-12345"
    assert [(i.name, i.quantity, i.line_total) for i in result.items] == [
        ("Blue teapot", 1, Decimal("24.00")), ("Tea towel", 2, Decimal("12.00"))]
    assert result.confidence > 0.5  # the items add up to the subtotal


@pytest.mark.parametrize("line, total", [
    ("Total TTC : 99,60 €", Decimal("99.60")),
    ("Gesamtsumme: 44,20 €", Decimal("44.20")),
    ("Importe total: 32,25 €", Decimal("32.25")),
    ("Totale ordine: 18,40 €", Decimal("18.40")),
    ("Grand Total (incl. VAT): £1,204.50", Decimal("1204.50")),
])
def test_total_labels_in_several_languages(line: str, total: Decimal):
    result = extract_generic(text_mail(f"Merci / Danke / Gracias / Grazie\n{line}\n"))
    assert result is not None and result.total == total


def test_plain_text_columns_become_items():
    body = ("Numero ordine: IT-5521\n\n"
            "2 x Taccuino in pelle ........ 38,00 €\n"
            "Matita HB          1,50 €\n\n"
            "Spedizione: 4,90 €\nTotale: 44,40 €\n")
    result = extract_generic(text_mail(body))
    assert result is not None and result.total == Decimal("44.40")
    assert [(i.name, i.quantity, i.line_total) for i in result.items] == [
        ("Taccuino in pelle", 2, Decimal("38.00")), ("Matita HB", 1, Decimal("1.50"))]


def test_labels_and_headings_are_not_items():
    body = """<table><tr><td>Item</td><td>Price</td></tr><tr><td>Price</td><td>$9.00</td></tr>
    <tr><td>Airport fee:</td><td>$3.00</td></tr><tr><td>Lamp</td><td>$9.00</td></tr></table>
    <p>Total: $12.00</p>"""
    result = extract_generic(html_mail(body))
    assert result is not None and [i.name for i in result.items] == ["Lamp"]


# --- what generic must never do ------------------------------------------------------------

SHIPPING_NOTICE = """
<h1>Your package is on its way</h1>
<table><tr><td>Blue teapot</td><td>1</td><td>$24.00</td></tr></table>
<p>Tracking number: 1Z999AA10123456784. Track your package at any time.</p>
<p>Your order has shipped and was delivered to the front door.</p>
"""

NEWSLETTER = """
<h1>Spring sale</h1>
<table><tr><td>Blue teapot</td><td>Was $30.00</td><td>$24.00</td></tr>
<tr><td>Tea towel</td><td>$6.00</td></tr></table>
<p>Total savings up to $50.00 this weekend.</p>
<p><a href="https://shop.example.com/unsubscribe">Unsubscribe</a> | View this in your browser</p>
"""


def test_no_items_from_a_shipping_notice():
    assert extract_generic(html_mail(SHIPPING_NOTICE)) is None


def test_no_items_from_a_newsletter():
    assert extract_generic(html_mail(NEWSLETTER)) is None


def test_no_items_without_a_stated_total():
    """Rows that look priced are not a purchase unless the email says what was paid."""
    body = "<table><tr><td>Blue teapot</td><td>$24.00</td></tr><tr><td>Tea towel</td><td>$6.00</td></tr></table>"
    assert extract_generic(html_mail(body)) is None


def test_savings_line_is_not_a_total():
    result = extract_generic(text_mail("Thank you for your order\nTotal savings up to $20.00\n"))
    assert result is None


@pytest.mark.parametrize("name", ["generic_5_shipping_notice.eml", "generic_6_newsletter.eml"])
def test_pipeline_keeps_notices_out(name: str):
    data = run((FIXTURES / "_generic" / name).read_bytes()).to_json()
    assert data["status"] == "not_purchase" and data["items"] == [] and data["total"] is None


def test_layer_fixtures_exist():
    assert len(list((FIXTURES / "_generic").glob("generic_*.eml"))) >= 4
    assert len(list((FIXTURES / "_schemaorg").glob("schemaorg_*.eml"))) >= 3
