"""The layout signature (parsers/signature.py): stable across two emails of one template,
different across templates - on emails built here and on the shared corpus's real ones."""

from __future__ import annotations

import random

import pytest

from parsers.layout import layout_of
from parsers.message import Email, Headers
from parsers.signature import MATCH, same_template, signature, similarity, text_class
from parsers.unwrap import unwrap
from tests.helpers import CORPUS, IN_CI

WORDS = ("lamp", "chair", "oak", "linen", "blue", "table", "mug", "stone", "wool", "desk", "vase", "rug")


def _order(rng: random.Random, *, layout: str) -> Email:
    """One shop's order email: a greeting, item rows, a breakdown; `layout` picks the template."""
    items = [(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4))).title(), rng.randint(1, 90))
             for _ in range(rng.randint(1, 6))]
    total = sum(price for _, price in items)
    name = rng.choice(["Sam", "Alex Doe", "Kim", "Jo Bloggs"])
    if layout == "table":
        rows = "".join(f"<tr><td><a href='#'><b>{n}</b></a></td><td>Qty 1</td><td>${p}.00</td></tr>" for n, p in items)
        html = (f"<html><body><h1>Thanks for your order</h1><p>Hi {name},</p><p>Order #{rng.randint(10**6, 10**7)}</p>"
                f"<table>{rows}<tr><td>Subtotal</td><td>${total}.00</td></tr><tr><td>Shipping</td><td>$0.00</td></tr>"
                f"<tr><td>Total</td><td>${total}.00</td></tr></table><footer>Questions? Reply to this email.</footer>"
                "</body></html>")
    else:
        cards = "".join(f"<div class='card'><img src='x.png'><div><span>{n}</span></div><div>Size: M</div>"
                        f"<div><strong>${p}.00</strong></div></div>" for n, p in items)
        html = (f"<html><body><div><p>Your receipt</p><p>Dear {name}</p></div><section>{cards}</section>"
                f"<div><p>Order total: ${total}.00</p><p>Paid with Visa ending in {rng.randint(1000, 9999)}</p></div>"
                "<div><p>Manage your account</p></div></body></html>")
    return Email(original=Headers(), html=html)


def _signature(mail: Email) -> str:
    return signature(layout_of(mail))


@pytest.mark.parametrize("seed", range(6))
def test_two_emails_of_one_template_match(seed):
    rng = random.Random(seed)
    for layout in ("table", "cards"):
        first, second = _signature(_order(rng, layout=layout)), _signature(_order(rng, layout=layout))
        assert same_template(first, second), (layout, similarity(first, second))


@pytest.mark.parametrize("seed", range(6))
def test_two_templates_of_one_sender_do_not(seed):
    rng = random.Random(seed)
    table, cards = _signature(_order(rng, layout="table")), _signature(_order(rng, layout="cards"))
    assert not same_template(table, cards), similarity(table, cards)


def test_the_words_of_a_notice_tell_two_notices_in_one_frame_apart():
    frame = "<html><body><table><tr><td><div>{}</div></td></tr><tr><td><p>Order {}</p></td></tr></table></body></html>"
    cancelled = _signature(Email(original=Headers(), html=frame.format("Your order was cancelled", 1234)))
    invoice = _signature(Email(original=Headers(), html=frame.format("Your invoice", 5678)))
    assert not same_template(cancelled, invoice)


@pytest.mark.parametrize(("text", "kind"), [
    ("Subtotal", "L:subtotal"), ("Order ID: 4711-AB", "L:order id:9"), ("$12.99", "$"), ("12 March 2026", "9"),
    ("Thanks for your order", "S:thanks for your order"),
    ("A long sentence that says a lot more than a label ever would", "T")])
def test_text_classes_keep_labels_and_drop_what_varies(text, kind):
    assert text_class(text) == kind


def test_a_signature_is_small_and_deterministic():
    mail = _order(random.Random(1), layout="table")
    assert _signature(mail) == _signature(_order(random.Random(1), layout="table"))
    assert len(_signature(mail).split()) <= 256


# Real emails: the same template seen twice, and a sender's different templates.
SAME = [
    ("steam/ruby-infex_doc1.html", "steam/ruby-infex_doc7.html"),
    ("steam/ruby-infex_doc2.html", "steam/ruby-infex_doc5.html"),
    ("tgtg/order_de_2020.eml", "tgtg/order_de_2021.eml"),
    ("tgtg/order_de_2023.eml", "tgtg/order_de_2023_encoding.eml"),
    ("amazon-uk/beancount_amazon-order-2021-11-24.html", "amazon-uk/beancount_amazon-order-2021-11-30.html"),
    ("booking/receipt-cad-toronto.eml", "booking/receipt-usd.eml"),
]
DIFFERENT = [
    ("apple/apple-receipt-5-applecare-reduced.eml", "apple/lunchmoney_example-2.eml"),  # new vs old receipt
    ("amazon-uk/beancount_amazon-order-2018-02-10.html", "amazon-uk/beancount_amazon-order-2021-11-24.html"),
    ("tgtg/order_de_2023.eml", "tgtg/cancellation_de_1.eml"),
    ("tgtg/order_de_2021.eml", "tgtg/order_de_2025.eml"),
    ("steam/lunchmoney_example-1.eml", "steam/ruby-infex_doc1.html"),
]


def _corpus_signature(path: str) -> str:
    if not (CORPUS / path).exists():
        if IN_CI:
            pytest.fail(f"CI=true but the corpus email is missing: {CORPUS / path}")
        pytest.skip(f"corpus absent at {CORPUS}")
    return signature(layout_of(unwrap((CORPUS / path).read_bytes())))


@pytest.mark.parametrize(("first", "second"), SAME)
def test_corpus_emails_of_one_template_match(first, second):
    assert similarity(_corpus_signature(first), _corpus_signature(second)) >= MATCH


@pytest.mark.parametrize(("first", "second"), DIFFERENT)
def test_corpus_templates_of_one_sender_do_not(first, second):
    assert similarity(_corpus_signature(first), _corpus_signature(second)) < MATCH
