"""Receipts that state what was paid but list no item rows: the payee of a payment provider's
receipt is the merchant, and one item stands for the whole order when the email names what was
bought (parsers/whole_order.py, parsers/merchant_evidence.payee). Emails built here."""

from __future__ import annotations

import random
from decimal import Decimal
from email.message import EmailMessage

import pytest

from parsers.normalize import clean_url
from purchaseshare.pipeline import run

SYLLABLES = ("ka", "lo", "mi", "ven", "dor", "sa", "tru", "bel", "no", "fin", "ra", "quo")
# language -> (payee label, total label, the item's name prefix, description label, quantity label)
LANGUAGES = {
    "en": ("Seller", "Total", "Payment to", "Description", "Quantity"),
    "fr": ("Vendeur", "Total", "Paiement à", "Description", "Quantité"),
    "de": ("Verkäufer", "Gesamtbetrag", "Zahlung an", "Beschreibung", "Anzahl"),
    "es": ("Vendedor", "Total", "Pago a", "Descripción", "Cantidad"),
    "it": ("Venditore", "Totale", "Pagamento a", "Descrizione", "Quantità"),
    "nl": ("Verkoper", "Totaal", "Betaling aan", "Omschrijving", "Aantal"),
    "pt": ("Vendedor", "Total", "Pagamento a", "Descrição", "Quantidade"),
    "sv": ("Säljare", "Totalt", "Betalning till", "Beskrivning", "Antal"),
    "pl": ("Sprzedawca", "Razem", "Płatność dla", "Opis", "Ilość"),
}
# A sentence per language, so that the email's language is detected as that one.
PROSE = {
    "en": "Thank you for your payment. It may take a few moments for this transaction to appear in your account.",
    "fr": "Merci pour votre paiement. Cette transaction peut prendre quelques instants avant d'apparaître sur votre compte.",
    "de": "Vielen Dank für deine Zahlung. Es kann einige Minuten dauern, bis diese Transaktion in deinem Konto erscheint.",
    "es": "Gracias por tu pago. Esta transacción puede tardar unos minutos en aparecer en tu cuenta.",
    "it": "Grazie per il tuo pagamento. Questa transazione potrebbe impiegare qualche minuto per comparire nel tuo conto.",
    "nl": "Bedankt voor je betaling. Het kan even duren voordat deze transactie in je rekening verschijnt.",
    "pt": "Obrigado pelo seu pagamento. Esta transação pode demorar alguns minutos a aparecer na sua conta.",
    "sv": "Tack för din betalning. Det kan ta en stund innan denna transaktion visas på ditt konto.",
    "pl": "Dziękujemy za płatność. Może minąć kilka minut, zanim ta transakcja pojawi się na Twoim koncie.",
}


def shop_name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(3)).capitalize()


def raw_email(sender: str, html: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "sam@example.net"
    message["Subject"] = "Receipt"
    message["Date"] = "Tue, 03 Nov 2026 10:00:00 +0000"
    message["Message-ID"] = f"<{random.random()}@mail.test>"
    message.set_content("See the HTML part.")
    message.add_alternative(html, subtype="html")
    return message.as_bytes()


def provider_receipt(lang: str, shop: str, contact: str, amount: str, extra: str = "") -> str:
    payee_label, total_label, *_ = LANGUAGES[lang]
    return (f"<html lang='{lang}'><body><p>{PROSE[lang]}</p><p>{payee_label}</p><p>{shop} Ltd</p><p>{contact}</p>{extra}"
            f"<table><tr><td>{total_label}</td><td>€{amount}</td></tr></table></body></html>")


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_a_payment_providers_receipt_names_the_payee_as_merchant_and_item(lang):
    rng = random.Random(lang)
    shop = shop_name(rng)
    amount = f"{rng.randint(3, 300)}.{rng.randint(10, 99)}"
    html = provider_receipt(lang, shop, f"help@{shop.lower()}-store.co.uk", amount)
    result = run(raw_email("Stripe <receipts@stripe.com>", html))
    assert result.status == "purchase"
    assert result.merchant == {"name": f"{shop} Ltd", "domain": f"{shop.lower()}-store.co.uk"}
    assert result.total == Decimal(amount)
    [item] = result.items
    assert item.name == f"{LANGUAGES[lang][2]} {shop} Ltd"
    assert (item.quantity, item.line_total) == (1, Decimal(amount))
    assert "no item rows: one item stands for the whole order" in result.warnings


def test_a_payee_at_a_mailbox_provider_gives_no_domain_unless_named_after_its_site():
    html = provider_receipt("en", "Kalomi", "kalomi.shop@gmail.com", "12.00")
    result = run(raw_email("Square <receipts@squareup.com>", html))
    assert result.merchant == {"name": "Kalomi Ltd", "domain": None}
    html = provider_receipt("en", "kalomi.co", "kalomi.shop@hotmail.co.uk", "12.00").replace("kalomi.co Ltd", "kalomi.co.uk")
    result = run(raw_email("Square <receipts@squareup.com>", html))
    assert result.merchant == {"name": "kalomi.co.uk", "domain": "kalomi.co.uk"}


def test_an_inline_payee_with_its_contact_in_brackets():
    html = ("<html><body><p>You sent a payment of €20.00 EUR to Venlo Bikes (shop@venlobikes.nl)</p>"
            "<table><tr><td>Total</td><td>€20.00 EUR</td></tr></table></body></html>")
    result = run(raw_email("Stripe <receipts@stripe.com>", html))
    assert result.merchant == {"name": "Venlo Bikes", "domain": "venlobikes.nl"}


def test_a_shops_own_seller_line_does_not_replace_the_shop():
    """Only a payment provider's payee is the merchant: a marketplace's "Seller" block is not."""
    html = provider_receipt("en", "Kalomi", "help@kalomi.com", "30.00")
    result = run(raw_email("Trubelno <orders@trubelno.com>", html))
    assert result.merchant["domain"] == "trubelno.com"
    assert result.merchant["name"] == "Trubelno"


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_a_labelled_description_names_the_item_and_the_quantity_splits_its_price(lang):
    rng = random.Random(f"describe-{lang}")
    _, total_label, _, description, quantity = LANGUAGES[lang]
    thing = f"{shop_name(rng)} {rng.choice(['Premium', 'Tier 2', 'Annual', 'Family'])}"
    unit = Decimal(f"{rng.randint(2, 40)}.50")
    html = (f"<html lang='{lang}-{lang.upper()}'><body><p>{PROSE[lang]}</p><p>{description}: {thing}</p><p>{quantity}: 2</p>"
            f"<table><tr><td>{total_label}</td><td>{unit * 2} €</td></tr></table></body></html>")
    result = run(raw_email(f"Shop <billing@{shop_name(rng).lower()}.eu>", html))
    [item] = result.items
    assert (item.name, item.quantity, item.unit_price, item.line_total) == (thing, 2, unit, unit * 2)


def test_the_items_price_is_the_subtotal_not_the_total_with_tax():
    html = ("<html><body><p>Description: Cloud storage 2 TB</p><table>"
            "<tr><td>Subtotal</td><td>$9.99</td></tr><tr><td>Tax</td><td>$0.80</td></tr>"
            "<tr><td>Total</td><td>$10.79</td></tr></table></body></html>")
    result = run(raw_email("Kalomi <billing@kalomi.com>", html))
    [item] = result.items
    assert (item.name, item.line_total, result.total) == ("Cloud storage 2 TB", Decimal("9.99"), Decimal("10.79"))


def test_a_column_heading_is_not_a_description():
    html = provider_receipt("en", "Kalomi", "help@kalomi.com", "10.00",
                            extra="<p>Description | Unit Price</p><p>Quantity</p>")
    result = run(raw_email("Stripe <receipts@stripe.com>", html))
    assert [item.name for item in result.items] == ["Payment to Kalomi Ltd"]


@pytest.mark.parametrize(("sentence", "store"), [
    ("We confirm your order at Ravello Pizza - Main Street (Dinner bag).", "Ravello Pizza - Main Street (Dinner bag)"),
    ("Wir bestätigen hiermit deine Bestellung bei Brotzeit! - Mitte (vegan).", "Brotzeit! - Mitte (vegan)"),
    ("Nous confirmons votre commande chez Boulangerie Sanlo, à retirer demain.", "Boulangerie Sanlo"),
])
def test_a_marketplace_order_at_a_store_is_one_item_named_after_the_store(sentence, store):
    html = (f"<html><body><p>{sentence}</p><p>Order ID: ab12cd34</p><p>Quantity: 2</p>"
            "<p>Total: 7,00 €</p></body></html>")
    result = run(raw_email("Kalomi <hello@kalomi.com>", html))
    [item] = result.items
    assert (item.name, item.quantity, item.unit_price, item.line_total) == (store, 2, Decimal("3.50"), Decimal("7.00"))


def test_an_order_at_the_merchant_itself_names_no_item():
    html = "<html><body><p>Thanks for your order from Kalomi.</p><p>Total: $25.00</p></body></html>"
    result = run(raw_email("Kalomi <hello@kalomi.com>", html))
    assert (result.status, result.total, result.items) == ("purchase", Decimal("25.00"), [])


def test_no_total_no_whole_order_item():
    html = "<html><body><p>Description: Garden chair</p><p>We will email you when it ships.</p></body></html>"
    result = run(raw_email("Kalomi <hello@kalomi.com>", html))
    assert result.items == []


def test_a_redirectors_location_parameter_is_unwrapped():
    wrapped = "https://click.example/rover/7?euid=1&loc=https%3A%2F%2Fwww.kalomi.co.uk%2Fitm%2F42&sojTags=a"
    assert clean_url(wrapped) == "https://www.kalomi.co.uk/itm/42"


def test_every_language_has_every_whole_order_word_and_a_payee_label():
    import tomllib

    from parsers.candidates import VOCAB_DIR
    from parsers.whole_order import LANGUAGES as READ_LANGUAGES
    from parsers.whole_order import VOCAB_FILE

    tables = tomllib.loads(VOCAB_FILE.read_text(encoding="utf-8"))
    assert set(tables) == {"description", "order_at", "payment_to"}  # quantity words: items.toml's
    for name, table in tables.items():
        assert set(table) == set(READ_LANGUAGES), name
        assert all(table[lang] for lang in READ_LANGUAGES), name
    for lang in READ_LANGUAGES:
        assert tomllib.loads((VOCAB_DIR / f"{lang}.toml").read_text(encoding="utf-8"))["payee"], lang


def test_an_order_with_us_names_no_store():
    html = "<html><body><p>Thank you for your order with us.</p><p>Total: $25.00</p></body></html>"
    assert run(raw_email("Kalomi <hello@kalomi.com>", html)).items == []


def test_a_shop_named_like_a_payment_provider_is_not_one():
    html = provider_receipt("en", "Kalomi", "help@kalomi.com", "30.00")
    result = run(raw_email("Square Pizza <orders@squarepizza.com>", html))
    assert result.merchant["domain"] == "squarepizza.com"
