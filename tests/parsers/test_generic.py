"""The generic fallback on its own: totals by label in nine languages, label and amount on
consecutive lines, payment-method lines, two orders in one email, item rows, and what it
must NOT do - invent a purchase from a shipping notice, a newsletter or a notice that
charges nothing, take a distractor or one item's price for the total.

Whole emails live in fixtures/emails/_generic/ (checked by test_fixtures.py); these are
the small cases.
"""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from parsers.generic import candidate_amounts, explain, extract_generic
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


# --- the layout-aware reader: one test per failure shape, on emails built here ---------------

def cents(rng: random.Random, low: int, high: int) -> Decimal:
    """A random amount printed with its two decimals ("14.40", not "14.4")."""
    return (Decimal(rng.randint(low, high)) / 100).quantize(Decimal("0.01"))


SHOPS = ["Maison Pivert", "Kettle & Co", "Nordlicht", "Casa Brava", "Lumen Works"]


def card_receipt(rng: random.Random) -> tuple[str, Decimal]:
    """A breakdown of fare, fees, taxes and a negative membership discount, no Total label:
    the amount charged stands beside the payment method."""
    fare, fees, taxes = (cents(rng, 1000, 40000) for _ in range(3))
    member = cents(rng, 100, 900)
    total = fare + fees + taxes - member
    method = rng.choice(["Visa •••• 1234", "Mastercard ending in 9876", "PayPal", "Apple Pay", "Venmo"])
    rows = [("Fare", f"${fare}"), ("Booking fees", f"${fees}"), ("Taxes", f"${taxes}"),
            ("Membership discount", f"-${member}"), (method, f"${total}")]
    if rng.random() < 0.5:
        body = "".join(f"<tr><td>{a}</td><td>{b}</td></tr>" for a, b in rows)
        return f"<p>{rng.choice(SHOPS)}</p><table>{body}</table>", total
    return f"<p>{rng.choice(SHOPS)}</p>" + "".join(f"<div>{a}</div><div><b>{b}</b></div>" for a, b in rows), total


def test_no_total_label_the_payment_method_line_gives_the_total():
    rng = random.Random(3)
    for _ in range(20):
        body, total = card_receipt(rng)
        result = extract_generic(html_mail(body, subject="Your receipt"))
        assert result is not None and result.total == total and result.confidence >= 0.8


@pytest.mark.parametrize("label, amount, total", [
    ("Total in CHF", "53,00", Decimal("53.00")),
    ("Amount paid:", "$25.20", Decimal("25.20")),
    ("Gesamtbetrag", "44,20 €", Decimal("44.20")),
    ("Totale ordine", "18,40 €", Decimal("18.40")),
])
def test_label_and_amount_on_consecutive_lines(label: str, amount: str, total: Decimal):
    result = extract_generic(html_mail(f"<p>Thank you for your order</p><p>{label}</p><p>{amount}</p>"))
    assert result is not None and result.total == total
    result = extract_generic(text_mail(f"Thank you for your order\n{label}\n{amount}\n"))
    assert result is not None and result.total == total


@pytest.mark.parametrize("printed, total, currency", [
    ("546.80 USD", Decimal("546.80"), "USD"),
    ("CHF 26,70", Decimal("26.70"), "CHF"),
    ("Rs. 1,299.00", Decimal("1299.00"), None),  # no country to say which rupee
    ("₹ 499.00", Decimal("499.00"), "₹"),
    ("US$1,180.38", Decimal("1180.38"), "USD"),
    ("CA$12.99", Decimal("12.99"), "CAD"),
])
def test_currency_as_printed(printed: str, total: Decimal, currency: str):
    result = extract_generic(html_mail(f"<table><tr><td>Order total</td><td>{printed}</td></tr></table>"))
    assert result is not None and result.total == total and result.currency == currency


def test_rupees_from_the_senders_country():
    mail = html_mail("<p>Order total: Rs. 1,299.00</p>")
    mail.original.from_addr = "orders@shop.example.in"
    result = extract_generic(mail)
    assert result is not None and result.currency == "INR"


def _pipeline(body: str) -> dict:
    raw = ("From: Shop <orders@shop.example>\r\nSubject: Your order\r\nContent-Type: text/html; charset=utf-8"
           f"\r\n\r\n<html><body>{body}</body></html>").encode()
    return run(raw).to_json()


def test_bare_dollar_is_left_to_the_pipeline_which_assumes_usd_with_a_warning():
    assert extract_generic(html_mail("<p>Order total: $12.00</p>")).currency == "$"
    result = _pipeline("<p>Order total: $12.00</p>")
    assert result["currency"] == "USD" and result["total"] == "12"
    assert any("currency assumed" in w and "'$'" in w for w in result["warnings"])


def test_bare_dollar_and_canadian_tax_is_cad():
    result = _pipeline("<p>Subtotal: $10.00</p><p>HST: $1.30</p><p>Total: $11.30</p>")
    assert result["currency"] == "CAD" and result["tax"] == "1.30"


def test_two_orders_in_one_email_give_the_sum_charged():
    rng = random.Random(5)
    for _ in range(10):
        orders = []
        for _ in range(2):
            sub, ship = cents(rng, 500, 9000), cents(rng, 0, 900)
            orders.append((sub, ship, sub + ship))
        body = "".join(f"<h3>Order {n}</h3><table><tr><td>Subtotal</td><td>£{s}</td></tr>"
                       f"<tr><td>Postage</td><td>£{p}</td></tr><tr><td>Order total</td><td>£{t}</td></tr></table>"
                       for n, (s, p, t) in enumerate(orders, 1))
        result = extract_generic(html_mail(body))
        assert result is not None and result.total == orders[0][2] + orders[1][2]
        assert any("2 orders" in w for w in result.warnings)


def test_one_items_price_is_not_the_total_of_several():
    body = ("<p>Thank you for your order</p><table><tr><td>Linen scarf</td><td>$24.00</td></tr>"
            "<tr><td>Oak board</td><td>$31.00</td></tr><tr><td>Wool socks</td><td>$9.00</td></tr></table>"
            "<p>Amount</p><p>$24.00</p>")
    result = extract_generic(html_mail(body))
    assert result is None or result.total is None


@pytest.mark.parametrize("distractor", ["You saved $15.00", "Free shipping on orders over $50.00",
                                        "Points balance: $120.00", "Plans starting at $9.99 per month"])
def test_distractors_are_never_the_total(distractor: str):
    body = f"<p>{distractor}</p><p>Subtotal: $20.00</p><p>Shipping: $5.00</p><p>Total: $25.00</p><p>{distractor}</p>"
    result = extract_generic(html_mail(body))
    assert result is not None and result.total == Decimal("25.00") and result.shipping == Decimal("5.00")


def test_conflicting_totals_abstain_with_a_warning():
    body = "<p>Total: $12.00</p><p>Shipping: $4.00</p><p>Total: $19.00</p><table><tr><td>Lamp</td><td>$8.00</td></tr></table>"
    result = extract_generic(html_mail(body))
    assert result is None or (result.total is None and any("total not read" in w for w in result.warnings))


@pytest.mark.parametrize("body, reason", [
    ("<p>You received a payment of £3.41 from a buyer.</p><p>Total £3.41</p>", "a payment the user received"),
    ("<p>Trip summary. This is not a payment receipt.</p><p>Total $36.80</p>", "nothing was charged"),
    ("<p>Your plan will renew for $39.99/year on May 1.</p><p>Total: $39.99</p>", "a renewal reminder"),
])
def test_notices_that_charge_nothing(body: str, reason: str):
    result = _pipeline(body)  # parsers.classify.notice_reason, before any layer reads amounts
    assert result["status"] == "not_purchase" and reason in result["reason"], result


def test_explain_shows_candidates_runs_and_the_choice():
    mail = html_mail(RECEIPT_TABLE)
    text = explain(mail)
    assert "Order total" in text and "run 1:" in text and "closed True" in text
    assert "chosen: total 41.00" in text


def test_candidate_amounts_list_every_amount():
    assert sorted(candidate_amounts(html_mail(RECEIPT_TABLE))) == [
        Decimal("5.00"), Decimal("12.00"), Decimal("24.00"), Decimal("36.00"), Decimal("41.00")]


def test_random_languages_and_layouts():
    """Random shop, language, prices and layout: the total is read and the sum closes."""
    words = {"en": ("Subtotal", "Shipping", "Total"), "fr": ("Sous-total", "Frais de port", "Total TTC"),
             "de": ("Zwischensumme", "Versandkosten", "Gesamtsumme"), "es": ("Subtotal", "Gastos de envío", "Importe total"),
             "it": ("Subtotale", "Spedizione", "Totale ordine"), "nl": ("Subtotaal", "Verzendkosten", "Totaal"),
             "pt": ("Subtotal", "Portes", "Valor total"), "sv": ("Delsumma", "Frakt", "Att betala"),
             "pl": ("Suma częściowa", "Dostawa", "Do zapłaty")}
    rng = random.Random(9)
    for _ in range(40):
        lang = rng.choice(sorted(words))
        sub, ship = cents(rng, 100, 99999), cents(rng, 0, 1500)
        fmt = rng.choice([lambda a: f"{a} €".replace(".", ","), lambda a: f"€{a}", lambda a: f"{a} EUR"])
        rows = list(zip(words[lang], (sub, ship, sub + ship), strict=True))
        layout = rng.choice(["cells", "divs", "text"])
        if layout == "cells":
            mail = html_mail("<table>" + "".join(f"<tr><td>{w}</td><td>{fmt(a)}</td></tr>" for w, a in rows) + "</table>")
        elif layout == "divs":
            mail = html_mail("".join(f"<div>{w}:</div><div>{fmt(a)}</div>" for w, a in rows))
        else:
            mail = text_mail("\n".join(f"{w} {'.' * rng.randint(3, 9)} {fmt(a)}" for w, a in rows))
        result = extract_generic(mail)
        assert result is not None and result.total == sub + ship, (lang, layout)
        assert result.confidence >= 0.8


def test_explain_says_why_it_abstained():
    text = explain(text_mail("Total: $12.00\nShipping: $4.00\nTotal: $19.00\n"))
    assert "chosen: total None" in text and "warning: total not read" in text


def test_labelled_amount_for_other_layers():
    from parsers.generic import labelled_amount

    mail = text_mail("Blue teapot | $24.00\nPostage & packing | £3.50\nPromotion | -£2.00\nVAT | £4.10\n")
    assert labelled_amount(mail, "shipping") == Decimal("3.50")
    assert labelled_amount(mail, "discount") == Decimal("2.00") and labelled_amount(mail, "tax") == Decimal("4.10")
    assert isinstance(mail.cache["line_candidates"], list)  # the lines were read once for the three roles


def test_read_layout_reads_text_lines_such_as_a_pdfs():
    from parsers.generic import read_layout
    from parsers.layout import layout_from_lines

    lines = ["INVOICE 2025-118", "Consulting, March      1.200,00 €", "MwSt. 19 %      228,00 €",
             "Rechnungsbetrag      1.428,00 €"]
    chosen = read_layout(layout_from_lines(lines), []).selection
    assert chosen.total == Decimal("1428.00") and chosen.closed and chosen.tax == Decimal("228.00")


def test_a_stub_html_part_leaves_the_receipt_to_the_text_part():
    text = ("Thank you for your order.\n\nBlue teapot          $24.00\nTea towel            $12.00\n"
            "Subtotal             $36.00\nShipping              $5.00\nOrder total          $41.00\n")
    mail = Email(original=Headers(subject="Your order"), text=text,
                 html="<html><body><p>Your order</p><p>View it online</p></body></html>")
    assert mail.prefers_text and mail.body_text.startswith("Thank you for your order.")
    result = extract_generic(mail)
    assert result is not None and result.total == Decimal("41.00") and result.sum_checked
    full = Email(original=Headers(subject="Your order"), text="See the HTML version.",
                 html=f"<html><body>{RECEIPT_TABLE}</body></html>")
    assert not full.prefers_text  # a real HTML body is read, whatever the text part says


def test_unnamed_and_named_charges_between_fare_and_total_are_the_tax_line():
    """No fees field: 'tax' carries every charge between the fare and the total, the unnamed
    one too, so subtotal + tax - discount = total."""
    body = ("<table><tr><td>Total</td><td>$36.80</td></tr>"
            "<tr><td>Trip fare</td><td>$37.03</td></tr><tr><td>Congestion surcharge</td><td>$2.75</td></tr>"
            "<tr><td>State car fund</td><td>$0.75</td></tr><tr><td>Benefits surcharge</td><td>$0.33</td></tr>"
            "<tr><td>Sales tax</td><td>$2.76</td></tr><tr><td>Promotion</td><td>-$6.82</td></tr>"
            "<tr><td>Apple Pay Visa ••••2674</td><td>$36.80</td></tr></table>")
    result = extract_generic(html_mail(body))
    assert result is not None and result.total == Decimal("36.80")
    assert result.subtotal == Decimal("37.03") and result.discount == Decimal("6.82")
    assert result.tax == Decimal("6.59")
    assert result.subtotal + result.tax - result.discount == result.total
