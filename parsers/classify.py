"""What kind of email is this? Cheap signals first: subject, then sender, then body words.

Five languages (en, fr, de, es, it) plus Dutch where merchants use it. A newsletter or a
bare shipping notice is recognised here so that no parser invents items for it.
"""

from __future__ import annotations

import re

from parsers.message import Email
from parsers.model import Kind


def _words(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(patterns), re.IGNORECASE)


# Subject patterns, checked in this order: the first kind that matches wins.
SUBJECT_RULES: tuple[tuple[Kind, re.Pattern[str]], ...] = (
    # Letter-mail notices (USPS Informed Delivery, Canada Post MyMail): post is coming, no purchase
    (Kind.OTHER, _words(r"\byou have mail\b", r"\byour mail (was|is|has)\b", r"\bdaily digest\b")),
    # "Ahorre dinero en su recibo de luz": advertising that merely names a receipt or an order
    (Kind.NEWSLETTER, _words(r"\bsave money\b", r"\bahorr[ae] dinero\b", r"\béconomisez\b")),
    (Kind.REFUND, _words(r"\brefund", r"rembours", r"erstattung", r"reembolso", r"rimborso",
                         r"terugbetaling")),
    (Kind.CANCELLATION, _words(r"\bcancel", r"\bannul", r"storn", r"cancelad", r"cancellat",
                               r"geannuleerd", r"stornierung")),
    (Kind.SHIPPING, _words(r"\bshipped\b", r"dispatched", r"on (its|the) way", r"out for delivery",
                           r"\bdelivered\b", r"\barriving\b", r"delivery (update|attempt|exception)",
                           r"\bpackage\b", r"\bparcel\b", r"tracking", r"in transit", r"ready for pickup",
                           r"exp[ée]di", r"livr[ée]", r"colis", r"versandt", r"versendet", r"zugestellt",
                           r"\bpaket", r"sendung", r"enviado", r"entregado", r"spedit", r"consegn",
                           r"verzonden", r"bezorgd", r"shipment", r"przesyłk", r"paczk")),
    (Kind.RECEIPT, _words(r"\breceipt\b", r"\breçu\b", r"quittung", r"\bbeleg\b", r"recibo",
                          r"ricevuta", r"payment (sent|received|confirmation)", r"you (sent|paid)",
                          r"your (payment|purchase)", r"\bpurchase\b", r"\binvoice\b", r"facture",
                          r"rechnung", r"factura", r"fattura", r"\bdonation\b", r"\bsubscription\b")),
    (Kind.ORDER, _words(r"\border", r"commande", r"bestell", r"pedido", r"ordine", r"\bbooking\b",
                        r"reservation", r"réservation", r"buchung", r"reserva", r"prenotazion",
                        r"confirm", r"bestätig", r"conferma", r"itinerary", r"e-?ticket", r"\btrip\b",
                        r"\bride\b", r"e-billet", r"\bbillet", r"abholung")),
    (Kind.NEWSLETTER, _words(r"newsletter", r"\d+ ?% off", r"\bsale\b", r"\bdeals?\b",
                             r"\boffers?\b", r"digest", r"\bweekly\b", r"promo")),
)

# A subject's words are in its head; a 100 kB folded subject would cost each rule a long scan.
SUBJECT_CHARS = 2000

_SENDER_SHIPPING = re.compile(r"ship|track|deliver|spedizion|versand|livraison|colis", re.I)
_SENDER_NEWSLETTER = re.compile(r"newsletter|news@|marketing|promo|deals@", re.I)

_BODY_PURCHASE = _words(
    r"order (total|summary|confirmation|number|#)", r"thank(s| you) for (your )?(order|purchase|shopping|booking)",
    r"grand total", r"total (paid|charged|ttc)", r"amount (paid|charged)", r"your receipt",
    r"payment method", r"récapitulatif", r"votre commande", r"gesamtsumme", r"ihre bestellung",
    r"bestellnummer", r"su pedido", r"importe total", r"il tuo ordine", r"totale (ordine|complessivo)",
    r"booking (number|confirmation)", r"confirmation (number|code)", r"subtotal", r"\bqty\b",
)
_BODY_SHIPPING = _words(
    r"has (been )?(shipped|dispatched|delivered)", r"out for delivery", r"was delivered",
    r"tracking number", r"track (your )?(package|parcel|shipment)", r"is on (its|the) way",
    r"ist unterwegs", r"a été expédi", r"è stato spedito", r"ha sido enviado",
    r"doręczymy", r"przesyłka (została )?(nadana|doręczona|wydana)",
)
_BODY_NEWSLETTER = _words(r"unsubscribe", r"se désabonner", r"abmelden", r"darse de baja",
                          r"annulla l'iscrizione", r"view (this|it) in (your )?browser")


# "Re:", "R:" (it), "AW:" (de), "RV:"/"RE:" (es), "SV:" (nordic), "Antw:" (nl), after any forward prefixes.
REPLY_SUBJECT = re.compile(r"^\s*(?:(?:fwd?|fw|tr|wg|i|enc|doorst)\s*:\s*)*(?:re|r|aw|sv|antw|odp|vs)\s*:", re.IGNORECASE)


def classify(mail: Email) -> tuple[Kind, float]:
    """The kind of the ORIGINAL message and how sure the signal is."""
    subject = (mail.original.subject or "")[:SUBJECT_CHARS]
    if REPLY_SUBJECT.match(subject):
        return Kind.OTHER, 0.6  # a conversation ("Re: Ordine"); merchants do not reply to themselves
    for kind, pattern in SUBJECT_RULES:
        if pattern.search(subject):
            return kind, 0.8
    sender = mail.original.from_addr or ""
    if _SENDER_SHIPPING.search(sender.split("@")[0]):
        return Kind.SHIPPING, 0.6
    if _SENDER_NEWSLETTER.search(sender):
        return Kind.NEWSLETTER, 0.6
    return body_kind(mail)


def body_kind(mail: Email) -> tuple[Kind, float]:
    """`classify_body` of this email's visible text, read once (the generic layer asks again)."""
    if "body_kind" not in mail.cache:
        mail.cache["body_kind"] = classify_body(mail.body_text)
    return mail.cache["body_kind"]


def _lowercase(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """The same words, lowercased, for lowercased text: IGNORECASE alternations are several
    times slower on a long body (the patterns have no class escape whose case matters)."""
    assert not re.search(r"\\[A-Z]", pattern.pattern), pattern.pattern
    return re.compile(pattern.pattern.lower())


_BODY_PURCHASE_LOWER = _lowercase(_BODY_PURCHASE)
_BODY_SHIPPING_LOWER = _lowercase(_BODY_SHIPPING)
_BODY_NEWSLETTER_LOWER = _lowercase(_BODY_NEWSLETTER)


def classify_body(text: str) -> tuple[Kind, float]:
    head = text[:30000].lower()
    purchase = len(_BODY_PURCHASE_LOWER.findall(head))
    shipping = len(_BODY_SHIPPING_LOWER.findall(head))
    if purchase and purchase >= shipping:
        return Kind.ORDER, 0.5
    if shipping:
        return Kind.SHIPPING, 0.5
    if _BODY_NEWSLETTER_LOWER.search(head):
        return Kind.NEWSLETTER, 0.4
    return Kind.OTHER, 0.3
