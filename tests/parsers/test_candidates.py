"""Money candidates: every amount as printed (sign, currency hint), the label beside, left of
or above it, and its role from the language vocabularies."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from parsers.candidates import Candidate, candidates_of, label_role, parse_amount, vocabulary
from parsers.layout import layout_from_lines


def only(lines: list[str]) -> list[Candidate]:
    return candidates_of(layout_from_lines(lines))


@pytest.mark.parametrize("text, amount, currency", [
    ("546.80 USD", "546.80", "USD"),
    ("CHF 26,70", "26.70", "CHF"),
    ("Rs. 1,299.00", "1299.00", "Rs."),
    ("₹ 499.00", "499.00", "₹"),
    ("CA$12.99", "12.99", "CA$"),
    ("US$1,180.38", "1180.38", "US$"),
    ("A$ 45.10", "45.10", "A$"),
    ("$25.20", "25.20", "$"),
    ("1.234,56 €", "1234.56", "€"),
    ("-$300.00", "-300.00", "$"),
    ("- £2.50", "-2.50", "£"),
    ("€35", "35", "€"),
    ("CHF 1'200.00", "1200.00", "CHF"),
    ("12,95", "12.95", None),
])
def test_money_as_printed(text: str, amount: str, currency: str | None):
    found = only([f"Total {text}"])
    assert [(c.amount, c.currency) for c in found] == [(Decimal(amount), currency)]


@pytest.mark.parametrize("text", ["Order 2021", "Call 555 1234", "Date 2021.05.11", "Seat 25E", "12/05/2024"])
def test_numbers_that_are_not_money(text: str):
    assert only([text]) == []


def test_parse_amount_is_decimal():
    assert parse_amount("1 234,50") == Decimal("1234.50") and parse_amount("300") == Decimal("300")


def test_labels_beside_left_above_and_after():
    found = only(["Subtotal: $10.00", "Shipping | $2.00", "Total in CHF", "53,00", "$1.50 tax"])
    assert [(c.label, c.label_from, c.role) for c in found] == [
        ("Subtotal", "same", "subtotal"), ("Shipping", "left", "shipping"), ("Total in CHF", "above", "total"),
        ("tax", "after", "tax")]


def test_payment_method_under_an_unlabelled_amount():
    found = only(["$12.99", "Visa •••• 1234"])
    assert found[0].role == "paid_with"


@pytest.mark.parametrize("label, role", [
    ("Grand Total", "total"), ("Total TTC", "total"), ("Gesamtsumme", "total"), ("Importe total", "total"),
    ("Totale ordine", "total"), ("Totaal", "total"), ("Valor total", "total"), ("Att betala", "total"),
    ("Do zapłaty", "total"), ("Sous-total", "subtotal"), ("Zwischensumme", "subtotal"),
    ("Frais de port", "shipping"), ("Versandkosten", "shipping"), ("Gastos de envío", "shipping"),
    ("MwSt.", "tax"), ("TVA", "tax"), ("BTW", "tax"), ("Moms", "tax"), ("Rabatt", "discount"),
    ("Korting", "discount"), ("Gift card", "discount"), ("Service fee", "fees"), ("You saved", "distractor"),
    ("Free shipping on orders over", "distractor"), ("Points balance", "distractor"),
    ("Starting at", "distractor"), ("Per-person total", "partial"), ("Paid", "total"),
    ("Paid seat (SFO-DFW)", None), ("Visa ending in 1234", "paid_with"), ("Apple Pay", "paid_with"),
    ("Total savings", "distractor"), ("Base fare and surcharges", "subtotal"), ("Total per passenger", "partial"),
    ("+ Taxes & carrier-imposed fees", "tax"),
])
def test_vocabulary_roles(label: str, role: str | None):
    assert label_role(label)[0] == role


def test_every_language_file_has_every_field():
    _, phrase_role, _ = vocabulary()
    roles = set(phrase_role.values())
    assert {"total", "subtotal", "shipping", "tax", "fees", "discount", "paid_with", "distractor"} <= roles


def test_every_amount_of_a_random_receipt_is_a_candidate():
    """Candidate recall: whatever the layout, each printed amount is found once, with its sign."""
    rng = random.Random(11)
    for _ in range(50):
        amounts = [Decimal(rng.randint(1, 99999)) / 100 for _ in range(rng.randint(1, 8))]
        lines = []
        for number, amount in enumerate(amounts):
            label = rng.choice(["Item", "Subtotal", "Tax", "Total", "Widget"]) + f" {number}"
            shape = rng.choice(["{l}: ${a}", "{l} | ${a}", "{l}\n${a}", "{l}  {a} USD", "{l}\t€{a}"])
            lines += shape.format(l=label, a=f"{amount:.2f}").split("\n")
        assert [c.amount for c in only(lines)] == amounts


@pytest.mark.parametrize("text", ["PayPal PPC000928:1.12:bff4e353", "ref A12.50", "v2.10b"])
def test_numbers_inside_ids_are_not_money(text: str):
    assert only([text]) == []
