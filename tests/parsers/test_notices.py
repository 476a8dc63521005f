"""Notices that name a price but charge nothing (renewal reminders, future charges, price
changes, quotes, abandoned carts, "this is not a receipt", sales) come out `not_purchase`
with the reason; receipts that merely mention a renewal stay purchases."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.classify import _NOTICES, _candidate_phrases, phrase_stem
from purchaseshare.pipeline import run

PRODUCTS = ("Cloud Locker", "Nimbus Pro", "Lantern Plus", "Atlas Music", "Orbit Photos", "Pine VPN")


def _raw(subject: str, body_html: str, sender: str = "billing@service-mail.example") -> bytes:
    return (f"From: Service <{sender}>\r\nTo: someone@example.org\r\nSubject: {subject}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            f"<html><body>{body_html}</body></html>").encode()


def _fill(template: str, seed: int) -> str:
    rng = random.Random(seed)
    return template.format(product=rng.choice(PRODUCTS), price=f"{rng.randint(3, 199)},{rng.randint(0, 99):02d}",
                           day=rng.randint(1, 28), number=rng.randint(10000, 99999))


# (language, subject, body): the subject alone often says "subscription" or "order", which
# the classifier reads as a purchase; the phrase is what tells the notice apart.
NOTICES = {
    "renewal": [
        ("en", "Your {product} subscription", "<p>Your {product} plan will automatically renew on May {day} "
         "for $39.99/year.</p><p>Payment method: Visa ending in 4242</p><p>Subtotal $39.99</p>"),
        ("fr", "Votre abonnement {product}", "<p>Votre abonnement sera renouvelé le {day} mars pour {price} €.</p>"
         "<p>Total {price} €</p><p>Votre commande n°{number}</p>"),
        ("de", "Ihr {product} Abonnement", "<p>Ihr Abo wird am {day}. Juni automatisch verlängert.</p>"
         "<p>Gesamtsumme {price} €</p><p>Ihre Bestellung {number}</p>"),
        ("es", "Tu suscripción a {product}", "<p>Tu suscripción se renovará el {day} de julio por {price} €.</p>"
         "<p>Importe total {price} €</p><p>Su pedido {number}</p>"),
        ("it", "Il tuo abbonamento {product}", "<p>Il tuo abbonamento verrà rinnovato il {day} agosto.</p>"
         "<p>Totale ordine {price} €</p><p>Il tuo ordine {number}</p>"),
        ("nl", "Je {product} abonnement", "<p>Je abonnement wordt automatisch verlengd op {day} mei.</p>"
         "<p>Totaal {price} €</p><p>Je bestelling {number}</p>"),
        ("pt", "A sua assinatura {product}", "<p>A sua assinatura será renovada em {day} de maio.</p>"
         "<p>Total {price} €</p><p>Seu pedido {number}</p>"),
        ("sv", "Din prenumeration på {product}", "<p>Din prenumeration kommer att förnyas den {day} maj.</p>"
         "<p>Summa {price} kr</p><p>Order {number}</p>"),
        ("pl", "Twoja subskrypcja {product}", "<p>Twoja subskrypcja zostanie odnowiona {day} maja.</p>"
         "<p>Razem {price} zł</p><p>Zamówienie {number}</p>"),
    ],
    "future charge": [
        ("en", "Your {product} order", "<p>Your card will be charged on June {day}.</p><p>Order total $12.00</p>"),
        ("pt", "A sua encomenda {product}", "<p>O valor será cobrado no dia {day}.</p><p>Total {price} €</p>"
         "<p>Seu pedido {number}</p>"),
        ("pl", "Twoje zamówienie {product}", "<p>Kwota zostanie pobrana {day} maja.</p><p>Razem {price} zł</p>"
         "<p>Zamówienie {number}</p>"),
    ],
    "price change": [
        ("en", "Your {product} subscription", "<p>An important price change: from July {day} your plan costs $14.99."
         "</p><p>Payment method: card on file</p>"),
        ("de", "Ihre Bestellung bei {product}", "<p>Preisänderung für Ihre nächste Lieferung.</p>"
         "<p>Gesamtsumme {price} €</p><p>Bestellnummer {number}</p>"),
    ],
    "quote": [
        ("fr", "Votre commande {product}", "<p>Voici votre devis n° {number}.</p><p>Total TTC {price} €</p>"),
        ("nl", "Uw bestelling {product}", "<p>Hierbij uw offerte {number}.</p><p>Totaal {price} €</p>"),
        ("en", "Order request {number}", "<p>Here is your quote for {product}.</p><p>Grand total $420.00</p>"),
    ],
    "abandoned cart": [
        ("en", "Complete your order", "<p>You left something in your cart: {product}.</p><p>Subtotal $19.99</p>"),
        ("es", "Tu pedido te espera", "<p>Todavía tienes artículos en tu carrito: {product}.</p>"
         "<p>Importe total {price} €</p><p>Su pedido</p>"),
        ("it", "Il tuo ordine", "<p>Hai dimenticato qualcosa nel carrello? {product}</p><p>Totale ordine {price} €</p>"),
    ],
    "not a receipt": [
        ("en", "Your trip with {product}", "<p>This is not a payment receipt.</p><p>Total $36.80</p>"
         "<p>Order number {number}</p>"),
    ],
    "sale": [
        ("en", "Notification of payment received", "<p>You received a payment of £3.41 GBP from a buyer.</p>"
         "<p>Order total £3.41</p>"),
        ("de", "Ihre Bestellung", "<p>Sie haben eine Zahlung von 12,00 € erhalten.</p><p>Gesamtsumme 12,00 €</p>"),
    ],
}
REASON_WORDS = {"renewal": "renewal", "future charge": "future charge", "price change": "price change",
                "quote": "quote", "abandoned cart": "abandoned cart", "not a receipt": "not a receipt",
                "sale": "sale"}
CASES = [(kind, lang, subject, body) for kind, rows in NOTICES.items() for lang, subject, body in rows]


@pytest.mark.parametrize(("kind", "lang", "subject", "body"), CASES,
                         ids=[f"{kind}-{lang}" for kind, lang, _, _ in CASES])
@pytest.mark.parametrize("seed", range(2))
def test_a_notice_is_not_a_purchase_and_says_why(kind, lang, subject, body, seed):
    result = run(_raw(_fill(subject, seed), _fill(body, seed)))
    assert result.status == "not_purchase", result.to_json()
    assert result.kind == "other"
    assert REASON_WORDS[kind] in result.reason
    assert result.total is None and result.items == []


def test_without_the_notice_phrase_the_same_email_is_a_purchase():
    """The control: the notices above are purchases to the classifier but for their phrase."""
    result = run(_raw("Your Nimbus Pro subscription", "<p>Thanks.</p><p>Payment method: Visa</p>"
                      "<table><tr><td>Nimbus Pro</td><td>$39.99</td></tr>"
                      "<tr><td>Order total</td><td>$39.99</td></tr></table>"))
    assert result.status == "purchase"


RECEIPTS = [
    # a footer that mentions the next renewal, beside the amount charged
    ("Your {product} subscription", "<p>Amount charged: $9.99</p><table><tr><td>{product} monthly</td>"
     "<td>$9.99</td></tr><tr><td>Total</td><td>$9.99</td></tr></table>"
     "<p>Your subscription will renew on June {day}. Cancel anytime.</p>"),
    # the renewal sentence high up, but the subject names a receipt
    ("Your receipt from {product}", "<p>Your plan will renew on July {day}.</p><table><tr><td>{product}</td>"
     "<td>$4.99</td></tr><tr><td>Total</td><td>$4.99</td></tr></table>"),
    # a pre-order: charged later, but an order stands
    ("Your order {number}", "<p>Thank you for your order! Your card will be charged on May {day} when it ships.</p>"
     "<table><tr><td>{product} box</td><td>$59.00</td></tr><tr><td>Order total</td><td>$59.00</td></tr></table>"),
    # German: "wird verlängert" in a receipt that thanks for the order
    ("Ihre Bestellung {number}", "<p>Vielen Dank für Ihre Bestellung.</p><table><tr><td>{product}</td>"
     "<td>19,99 €</td></tr><tr><td>Gesamtsumme</td><td>19,99 €</td></tr></table>"
     "<p>Ihr Abo wird automatisch verlängert.</p>"),
    # French: a receipt saying the amount was debited, with a renewal date
    ("Votre commande {product}", "<p>Le montant a été débité de votre carte.</p><p>Il sera renouvelé le {day} mai."
     "</p><table><tr><td>{product}</td><td>9,99 €</td></tr><tr><td>Total</td><td>9,99 €</td></tr></table>"),
    # Spanish: a booking confirmation whose payment is taken later
    ("Confirmación de tu pedido {number}", "<p>Gracias por tu pedido.</p><p>Se te cobrará el día {day}.</p>"
     "<table><tr><td>{product}</td><td>25,00 €</td></tr><tr><td>Importe total</td><td>25,00 €</td></tr></table>"),
]


@pytest.mark.parametrize("index", range(len(RECEIPTS)))
@pytest.mark.parametrize("seed", range(2))
def test_receipts_that_mention_a_renewal_stay_purchases(index, seed):
    subject, body = RECEIPTS[index]
    result = run(_raw(_fill(subject, seed), _fill(body, seed)))
    assert result.status == "purchase", result.to_json()
    assert result.total is not None


def test_a_renewal_far_down_a_long_email_is_not_read_as_a_notice():
    filler = "".join(f"<p>Line {n} about the {PRODUCTS[n % 6]} service and how it works.</p>" for n in range(60))
    result = run(_raw("Your Pine VPN subscription", "<table><tr><td>Pine VPN</td><td>$5.00</td></tr>"
                      f"<tr><td>Order total</td><td>$5.00</td></tr></table>{filler}"
                      "<p>Your subscription will renew next month.</p>"))
    assert result.status == "purchase"


def test_a_notice_in_a_newsletter_or_shipping_mail_keeps_its_kind():
    shipped = run(_raw("Your package has shipped", "<p>Your plan will renew soon.</p>"))
    assert shipped.kind == "shipping" and shipped.reason == "recognised as shipping, not a purchase"


@pytest.mark.parametrize(("phrase", "stem"), [
    ("will (?:be )?(?:auto(?:matically)?[- ]?)?renew", "will"),  # "autorenew": renew starts no word
    ("renews (?:soon|in \\d+ days?)", "renews"),
    ("sera (?:automatiquement )?renouvel[ée]", "renouvel"),
    ("items? in your (?:cart|basket)", "item"),
])
def test_a_phrase_stem_is_a_word_every_match_holds(phrase, stem):
    assert phrase_stem(phrase) == stem


@pytest.mark.parametrize("phrase", ["(?:je|uw) (?:kassabon|factuur)", "foo|barbaz", "(?:renewal)?"])
def test_a_phrase_with_no_required_word_is_refused(phrase):
    with pytest.raises(ValueError):
        phrase_stem(phrase)


ALL_PHRASES = [(kind, pattern) for pairs in _NOTICES.phrases.values() for kind, pattern in pairs]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_stem_prefilter_never_hides_a_phrase(data):
    """Any text a vocabulary phrase matches reaches that phrase: the prefilter only saves time."""
    kind, pattern = data.draw(st.sampled_from(ALL_PHRASES))
    alphabet = st.characters(codec="utf-8", exclude_categories=("Cs",))
    text = data.draw(st.from_regex(re.compile(pattern.pattern), fullmatch=True, alphabet=alphabet))
    assert (kind, pattern) in _candidate_phrases(f"Hello. {text} Thanks")
