"""Currency from evidence: a shared sign ("$", "kr") is narrowed by the email's countries,
conflicting evidence abstains, and a default that alone decided says so in a warning."""

from __future__ import annotations

import random

import pytest

import parsers.currency as currency
from parsers.currency import currency_of
from parsers.message import Email, Headers
from purchaseshare.pipeline import run

SHOP_WORDS = ("Maple", "Harbour", "Fjord", "Cedar", "Kettle", "Lumen", "Quill", "Tern")


def receipt(seed: int, *, address: list[str] = (), extra: str = "", lang: str | None = None,
            sign: str = "$") -> Email:
    """A small HTML receipt with an invented shop, item and price, and an address block."""
    rng = random.Random(seed)
    shop = f"{rng.choice(SHOP_WORDS)} {rng.choice(SHOP_WORDS)}"
    price = f"{rng.randint(2, 300)}.{rng.randint(0, 99):02d}"
    lang_attr = f' lang="{lang}"' if lang else ""
    lines = "".join(f"<div>{line}</div>" for line in address)
    html = (f"<html{lang_attr}><body><p>Thank you for shopping at {shop}.</p>"
            f"<table><tr><td>Item {rng.randint(100, 999)}</td><td>{sign}{price}</td></tr>"
            f"<tr><td>Order total</td><td>{sign}{price}</td></tr></table>"
            f"<p>Billing address</p>{lines}<p>{extra}</p></body></html>")
    return Email(original=Headers(subject="Your order"), html=html)


SEEDS = range(3)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_code_or_unambiguous_sign_decides_without_looking_further(seed, monkeypatch):
    def no_gathering(*args: object) -> list[object]:
        raise AssertionError("evidence gathered for an unambiguous currency")

    monkeypatch.setattr(currency, "gather", no_gathering)
    mail = receipt(seed)
    assert currency_of("EUR", mail, "shop.ca") == ("EUR", [])
    assert currency_of("£", mail, "shop.ca") == ("GBP", [])
    assert currency_of("CA$", mail, "shop.com") == ("CAD", [])


@pytest.mark.parametrize("seed", SEEDS)
def test_a_bare_dollar_from_a_ca_site_is_cad(seed):
    assert currency_of("$", receipt(seed), "maple-goods.ca") == ("CAD", [])


@pytest.mark.parametrize(("country", "expected"), [
    ("Canada", "CAD"), ("Australia", "AUD"), ("New Zealand", "NZD"), ("United States", "USD"),
    ("USA", "USD"), ("Singapore", "SGD"),
])
def test_the_billing_country_line_decides_the_dollar(country, expected):
    mail = receipt(7, address=["J. Doe", "12 Harbour Road", f"Springfield, {country}"])
    assert currency_of("$", mail, "shop.com") == (expected, [])


def test_country_names_are_read_in_the_emails_language():
    mail = receipt(3, address=["Max Muster", "Hauptstraße 5", "Kanada"], lang="de")
    assert currency_of("$", mail, "laden.com") == ("CAD", [])


def test_a_country_word_away_from_any_address_is_not_evidence():
    mail = receipt(4, extra="We ship worldwide, including to Canada and Australia")
    code, warnings = currency_of("$", mail, "shop.com")
    assert (code, len(warnings)) == ("USD", 1) and "assumed" in warnings[0]


@pytest.mark.parametrize(("postcode", "expected"), [
    ("Toronto, ON M5V 2T6", "CAD"), ("Portland, OR 97201", "USD"), ("Sydney NSW 2000", "AUD"),
])
def test_a_postal_code_names_the_country(postcode, expected):
    mail = receipt(5, address=["A. Person", "1 Main St", postcode])
    assert currency_of("$", mail, "shop.com") == (expected, [])


def test_canadian_tax_labels_mean_cad():
    mail = receipt(8, extra="GST/HST $1.30")
    assert currency_of("$", mail, "shop.com") == ("CAD", [])


def test_gst_alone_leaves_several_dollars_and_abstains():
    code, warnings = currency_of("$", receipt(9, extra="GST $1.30"), "shop.com")
    assert code is None
    assert "AUD" in warnings[0] and "CAD" in warnings[0] and "USD" not in warnings[0]


def test_gst_with_an_australian_phone_is_aud():
    mail = receipt(10, extra="GST $1.30. Questions? Call +61 2 9876 5432")
    assert currency_of("$", mail, "shop.com") == ("AUD", [])


def test_conflicting_strong_evidence_abstains_with_a_warning():
    mail = receipt(11, address=["J. Doe", "400 Pine St", "Seattle, WA 98101", "United States"])
    code, warnings = currency_of("$", mail, "shop.ca")
    assert code is None
    assert "conflicting" in warnings[0] and "CAD" in warnings[0] and "USD" in warnings[0]


def test_weak_evidence_never_overrides_the_strong():
    mail = receipt(12, lang="en-US", extra="Call us: +1 416 555 0100")
    assert currency_of("$", mail, "shop.ca") == ("CAD", [])


@pytest.mark.parametrize(("lang", "expected"), [("en-AU", "AUD"), ("en-CA", "CAD"), ("es-MX", "MXN")])
def test_a_declared_region_decides_when_nothing_stronger_speaks(lang, expected):
    assert currency_of("$", receipt(13, lang=lang), "shop.com") == (expected, [])


def test_a_shared_phone_prefix_leaves_a_choice_and_the_default_says_so():
    code, warnings = currency_of("$", receipt(14, extra="Call +1 800 555 0199"), "shop.com")
    assert code == "USD"
    assert "assumed" in warnings[0] and "CAD" in warnings[0]


@pytest.mark.parametrize("domain", ["shop.com", "shop.tv", "shop.io", None])
def test_a_dollar_with_no_country_is_assumed_usd_with_a_warning(domain):
    code, warnings = currency_of("$", receipt(15), domain)
    assert code == "USD"
    assert warnings == ["currency assumed from the '$' sign alone: USD"]


def test_kronor_need_a_country():
    assert currency_of("kr", receipt(16, sign="kr "), "butik.se") == ("SEK", [])
    assert currency_of("kr", receipt(16, sign="kr "), "butik.dk") == ("DKK", [])
    code, warnings = currency_of("kr", receipt(16, sign="kr "), "shop.com")
    assert code is None and "no country" in warnings[0]


def test_no_sign_takes_the_sender_countrys_currency_with_a_warning():
    code, warnings = currency_of(None, receipt(17, sign=""), "laden.de")
    assert code == "EUR"
    assert warnings and warnings[0].startswith("currency assumed from the sender's domain")


def test_no_sign_and_only_weak_evidence_says_nothing():
    assert currency_of(None, receipt(18, sign="", lang="en-GB"), "shop.com") == (None, [])


def _raw(sender: str, sign: str, body_extra: str = "") -> bytes:
    return (f"From: Shop <orders@{sender}>\r\nTo: me@example.org\r\nSubject: Your receipt\r\n"
            "Content-Type: text/html; charset=utf-8\r\n\r\n"
            f"<html><body><p>Thank you for your order.</p><table><tr><td>Blue kettle</td>"
            f"<td>{sign}42.50</td></tr><tr><td>Order total</td><td>{sign}42.50</td></tr></table>"
            f"<p>{body_extra}</p></body></html>").encode()


def test_the_pipeline_reads_a_ca_senders_dollar_as_cad():
    result = run(_raw("kettles.ca", "$"))
    assert result.status == "purchase" and result.currency == "CAD"
    assert not [w for w in result.warnings if "currency" in w]


def test_the_pipeline_shows_the_assumption_as_a_warning():
    result = run(_raw("kettles.com", "$"))
    assert result.currency == "USD"
    assert "currency assumed from the '$' sign alone: USD" in result.warnings


def test_the_pipeline_abstains_on_conflict():
    result = run(_raw("kettles.ca", "$", "Ship to: 1 Elm St<br>Austin, TX 78701<br>United States"))
    assert result.status == "purchase" and result.total is not None
    assert result.currency is None
    assert any("conflicting" in w for w in result.warnings)
