"""Field-level merge across layers: a merchant parser that meets a new template and reads
only part of it is completed by the generic reader, never left with nulls - but amounts
are only borrowed with arithmetic behind them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from parsers import chain
from parsers.base import MerchantParser
from parsers.message import Email, Headers
from parsers.model import Extraction, Item, Kind

RECEIPT = """
<p>Thank you for your order.</p>
<table><tr><td>Blue teapot</td><td>1</td><td>$24.00</td></tr>
<tr><td>Tea towel</td><td>2</td><td>$12.00</td></tr></table>
<table><tr><td>Subtotal</td><td>$36.00</td></tr><tr><td>Shipping</td><td>$5.00</td></tr>
<tr><td>Order total</td><td>$41.00</td></tr></table>
"""


def mail() -> Email:
    return Email(original=Headers(subject="Your order", from_addr="orders@shop.example"),
                 html=f"<html><body>{RECEIPT}</body></html>")


def fake_parser(extraction: Extraction | Exception, prints_amounts: bool = True) -> type[MerchantParser]:
    class Fake(MerchantParser):
        slug = "fake"
        display_name = "Fake Shop"
        states_total = prints_amounts

        def extract(self) -> Extraction:
            if isinstance(extraction, Exception):
                raise extraction
            return extraction

    return Fake


@pytest.fixture
def merchant(monkeypatch):
    def use(extraction: Extraction | Exception, prints_amounts: bool = True) -> None:
        parser = fake_parser(extraction, prints_amounts)
        monkeypatch.setattr(chain, "candidates", lambda mail, disabled=frozenset(): [parser])
    return use


def test_a_merchant_parser_that_found_only_the_name_gets_the_generic_fields(merchant):
    merchant(Extraction(parser="merchant:fake", confidence=0.95, merchant_name="Fake Shop", kind=Kind.ORDER))
    result = chain.run_chain(mail())
    extraction = result.extraction
    assert extraction is not None and extraction.parser == "generic"
    assert extraction.merchant_name == "Fake Shop"
    assert extraction.total == Decimal("41.00")
    assert [i.name for i in extraction.items] == ["Blue teapot", "Tea towel"]


def test_a_merchant_parser_that_raises_loses_nothing(merchant):
    merchant(ValueError("new template"))
    result = chain.run_chain(mail())
    assert result.extraction is not None and result.extraction.total == Decimal("41.00")
    assert any("merchant:fake failed" in w for w in result.warnings)


def test_items_without_total_get_the_total_their_items_add_up_to(merchant):
    items = [Item("Blue teapot", 1, Decimal("24.00"), Decimal("24.00")),
             Item("Tea towel", 2, Decimal("6.00"), Decimal("12.00"))]
    merchant(Extraction(parser="merchant:fake", confidence=0.95, items=items, shipping=Decimal("5.00")))
    extraction = chain.run_chain(mail()).extraction
    assert extraction is not None and extraction.parser == "merchant:fake"
    assert extraction.total == Decimal("41.00")
    assert any("total read by the generic layer" in w for w in extraction.warnings)


def test_a_total_that_contradicts_the_merchant_items_is_not_borrowed(merchant):
    items = [Item("Blue teapot", 1, Decimal("99.00"), Decimal("99.00"))]
    merchant(Extraction(parser="merchant:fake", confidence=0.95, items=items))
    extraction = chain.run_chain(mail()).extraction
    assert extraction is not None and extraction.items == items
    assert extraction.total is None  # 41.00 is not what 99.00 adds up to, and nothing checked it


def test_items_are_borrowed_only_from_a_layer_that_read_the_same_total(merchant):
    merchant(Extraction(parser="merchant:fake", confidence=0.95, total=Decimal("77.00")))
    extraction = chain.run_chain(mail()).extraction
    assert extraction is not None and extraction.total == Decimal("77.00") and extraction.items == []


def test_a_checked_layer_fills_a_missing_total():
    winner = Extraction(parser="merchant:fake", confidence=0.95, items=[Item("Something")])
    checked = Extraction(parser="generic", confidence=0.6, total=Decimal("12.50"), tax=Decimal("1.00"),
                         sum_checked=True)
    chain.merge(winner, checked)
    assert winner.total == Decimal("12.50") and winner.tax == Decimal("1.00")
    unchecked = Extraction(parser="generic", confidence=0.5, total=Decimal("9.99"))
    other_winner = Extraction(parser="merchant:fake", confidence=0.95, items=[Item("Something")])
    chain.merge(other_winner, unchecked)
    assert other_winner.total is None


def test_a_merchant_whose_emails_print_no_amount_is_not_given_one(merchant):
    items = [Item("Boston → Portland", 1)]
    merchant(Extraction(parser="merchant:fake", confidence=0.95, items=items), prints_amounts=False)
    extraction = chain.run_chain(mail()).extraction
    assert extraction is not None and extraction.parser == "merchant:fake" and extraction.total is None
