"""What kind of email is this? Cheap signals first: subject, then sender, then body words.

Five languages (en, fr, de, es, it) plus Dutch where merchants use it. A newsletter or a
bare shipping notice is recognised here so that no parser invents items for it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

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


# --- Notices that name a price but charge nothing (vocabulary: vocab/notices.toml) -------
NOTICE_HEAD_CHARS = 1500  # a notice says what it is at the top; a receipt's renewal note sits below
_PURCHASE_BODY_CHARS = 60000
_NOTICES_FILE = Path(__file__).with_name("vocab") / "notices.toml"
# A subject naming a receipt or an invoice keeps the email a purchase unless the subject itself is a notice.
_RECEIPT_SUBJECT = re.compile(
    r"\breceipt\b|\breçu\b|quittung|\bbeleg\b|recibo|ricevuta|kvitto|paragon|\binvoice\b|facture|rechnung|"
    r"factura|fattura|factuur|fatura|faktura|payment (?:received|confirmation)|order confirm|"
    r"bestellbestätigung|confirmation de commande|bevestiging|bekräftelse|potwierdzenie"
)


@dataclass(frozen=True)
class _Notices:
    phrases: dict[str, tuple[tuple[str, re.Pattern[str]], ...]]  # stem -> (kind, phrase) with that stem
    by_head: dict[str, tuple[str, ...]]  # the stems by their first four letters
    reasons: dict[str, str]  # kind -> the reason shown
    unvetoed: frozenset[str]  # kinds that purchase phrases do not overrule (a seller's sale notice)
    purchase: re.Pattern[str]  # money was taken or an order stands


def _load_notices() -> _Notices:
    with open(_NOTICES_FILE, "rb") as handle:
        vocab = tomllib.load(handle)
    phrases: dict[str, tuple[tuple[str, re.Pattern[str]], ...]] = {}
    reasons, unvetoed = {}, set()
    for kind, entry in vocab["notice"].items():
        reasons[kind] = entry.pop("reason")
        if not entry.pop("vetoed_by_purchase", True):
            unvetoed.add(kind)
        for values in entry.values():
            for phrase in values:
                stem = phrase_stem(phrase)
                phrases[stem] = (*phrases.get(stem, ()), (kind, re.compile(phrase)))
    by_head: dict[str, tuple[str, ...]] = {}
    for stem in phrases:
        by_head[stem[:4]] = (*by_head.get(stem[:4], ()), stem)
    purchase = re.compile("|".join(phrase for values in vocab["purchase"].values() for phrase in values))
    return _Notices(phrases, by_head, reasons, frozenset(unvetoed), purchase)


_STEM_WORD = re.compile(r"(?<![^\s\x01])[^\W\d_]{4,}(?![?*{])", re.UNICODE)


def phrase_stem(phrase: str) -> str:
    """A word every match of `phrase` holds at a word start: its longest run of four or more
    letters outside any group or class, not made optional by a quantifier, after a space or
    after an optional group whose every branch ends in a space. Only the phrases whose stem
    starts a word of the text are tried (250 phrases on every email cost milliseconds)."""
    flat: list[str] = []
    depth, opened = 0, 0
    for index, char in enumerate(phrase):
        if char in "([":
            depth, opened = depth + 1, index if depth == 0 else opened
        flat.append(char if depth == 0 else "\x00")
        if char in ")]":
            depth -= 1
            if depth == 0 and char == ")" and _ends_in_space(phrase[opened + 1:index]):
                flat[-1] = "\x01"  # a group that always ends in a space: a word starts after it
    text = re.sub(r"\x01\?", "\x01", "".join(flat))
    words = _STEM_WORD.findall(text)
    if not words or "|" in text:
        raise ValueError(f"notice phrase needs a required word of four letters and no top-level |: {phrase!r}")
    return max(words, key=len)


def _ends_in_space(group: str) -> bool:
    """Each branch of a group body ('?:te |le ') ends in a space (nested groups: not known)."""
    body = group[2:] if group.startswith("?:") else group
    return "(" not in body and all(branch.endswith(" ") for branch in body.split("|"))


_NOTICES = _load_notices()
_WORDS = re.compile(r"\w{4,}")  # digits in a word do no harm: no stem starts with one


def _candidate_phrases(text: str) -> list[tuple[str, re.Pattern[str]]]:
    """The notice phrases whose stem starts one of the text's words, in vocabulary order."""
    by_head, stems = _NOTICES.by_head, set()
    for word in set(_WORDS.findall(text)):
        heads = by_head.get(word[:4])
        if heads:
            stems.update(stem for stem in heads if word.startswith(stem))
    if not stems:
        return []
    return [pair for stem in _NOTICES.phrases if stem in stems for pair in _NOTICES.phrases[stem]]


def _first_notice(text: str, phrases: list[tuple[str, re.Pattern[str]]]) -> str | None:
    return next((kind for kind, pattern in phrases if pattern.search(text)), None)


def notice_reason(mail: Email) -> str | None:
    """Why this email is a notice that charged nothing (renewal reminder, quote, abandoned
    cart...), or None. A notice phrase in the subject or the head of the body counts unless
    the email also says money was taken or an order stands ("amount charged", "thank you
    for your order") or, for a phrase in the body only, the subject names a receipt: a
    receipt that mentions its next renewal stays a receipt. A seller's sale notice is never
    a purchase, whatever else it says."""
    subject = (mail.original.subject or "")[:SUBJECT_CHARS].lower()
    head = mail.body_text[:NOTICE_HEAD_CHARS].lower()
    phrases = _candidate_phrases(f"{subject}\n{head}")
    if not phrases:
        return None
    kind = _first_notice(subject, phrases)
    in_subject = kind is not None
    if kind is None:
        kind = _first_notice(head, phrases)
        if kind is None:
            return None
    if kind in _NOTICES.unvetoed:
        return _NOTICES.reasons[kind]
    if not in_subject and _RECEIPT_SUBJECT.search(subject):
        return None  # "Your receipt": the body's notice phrase is a side note
    purchase = _NOTICES.purchase
    if purchase.search(subject) or purchase.search(mail.body_text[:_PURCHASE_BODY_CHARS].lower()):
        return None
    return _NOTICES.reasons[kind]
