"""The fallback for merchants nobody wrote a parser for: layout -> candidates -> select.

Reads the email's layout (parsers.layout), takes every money span as a candidate labelled by
the words beside or above it (parsers.candidates), and chooses the total and its breakdown
jointly so that the arithmetic closes (parsers.select); where totals conflict and nothing
adds up it abstains with a warning. Items come from parsers.items, the order number and
date from their labels. Less sure than a merchant parser, and says so; `explain(mail)`
shows the whole decision.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

from parsers.candidates import Candidate, candidates_of
from parsers.classify import body_kind
from parsers.items import read_items, text_items
from parsers.itinerary import is_fare_label, is_transport_name, journey
from parsers.layout import Layout, layout_from_lines, layout_of
from parsers.message import Email
from parsers.model import Extraction, Item, Kind
from parsers.normalize import UNAMBIGUOUS_SIGNS, parse_date_text, territory_of_domain
from parsers.pdf import attachment_text
from parsers.select import Selection, select

ORDER_NUMBER = re.compile(
    r"(?:order|confirmation|booking|reservation|invoice|receipt)\s*(?:number|no\.?|n°|nr\.?|id|#|code|reference)"
    r"[\s:#|]*([A-Z0-9][A-Z0-9-]{3,})|"  # "Order number: | WB-481207" (label and value in two cells)
    r"(?:bestellnummer|auftragsnummer|num[ée]ro de commande|n° de commande|n[úu]mero de pedido|"
    r"numero (?:d'|dell')?ordine|bestelnummer)[\s:#|]*([A-Z0-9][A-Z0-9-]{3,})",
    re.IGNORECASE,
)
ORDER_DATE = re.compile(
    r"(?:order(?:ed)? (?:date|on|placed)|date (?:of (?:order|purchase)|de (?:la )?commande)|"
    r"bestelldatum|fecha del pedido|data (?:dell')?ordine|purchase date|invoice date|date)[\s:|]*"
    r"([^|\n]{6,40})",
    re.IGNORECASE,
)
# "Rs." is the rupee of several countries: the sender's country says which.
_RUPEES = {"IN": "INR", "PK": "PKR", "LK": "LKR", "NP": "NPR", "MU": "MUR", "SC": "SCR"}
# The prefixed dollars ("CA$", "US$") of normalize's one table of signs; "R$" is the real, not a dollar.
_DOLLAR_CODES = {sign: code for sign, code in UNAMBIGUOUS_SIGNS.items() if sign.endswith("$") and sign != "r$"}


@dataclass
class Reading:
    """Everything the generic reader looked at for one email (kept for `explain`)."""

    layout: Layout
    candidates: list[Candidate]
    items: list[Item]
    selection: Selection


def read(mail: Email) -> Reading:
    """Layout, candidates, items and the selection, computed once per email."""
    cached = mail.cache.get("generic_reading")
    if isinstance(cached, Reading):
        return cached
    reading = read_layout(layout_of(mail), read_items(mail))
    mail.cache["generic_reading"] = reading
    return reading


def read_layout(layout: Layout, items: list[Item]) -> Reading:
    """Candidates and the selection for any layout: an email's, or a PDF's text lines
    (`read_layout(layout_from_lines(lines), [])`)."""
    candidates = candidates_of(layout)
    totals = [i.line_total for i in items if i.line_total is not None]
    items_sum = sum(totals, Decimal(0)) if totals and len(totals) == len(items) else None
    return Reading(layout, candidates, items, select(candidates, items_sum, totals))


def extract_generic(mail: Email) -> Extraction | None:
    # A shipping notice or a newsletter lists products and prices too: never read those as a purchase.
    if body_kind(mail)[0] in (Kind.SHIPPING, Kind.NEWSLETTER):
        return None
    reading = read(mail)
    result = _from_reading(reading)
    if result is None or result.total is None or not result.items:
        # The body may only say "your invoice is attached": an attached PDF fills the gaps.
        result = _with_pdf(mail, result)
    if result is None:
        return None
    lines = reading.layout.lines  # built once: the journey, the order number and the date read them
    _name_the_journey(result, lines, reading)
    result.currency, warning = currency_hint(reading, mail)
    pdf = mail.cache.get("generic_pdf_reading")
    if result.currency is None and isinstance(pdf, Reading):
        result.currency, warning = currency_hint(pdf, mail)
    if warning:
        result.warnings.append(warning)
    text = "\n".join(lines)
    number = ORDER_NUMBER.search(text)
    if number:
        result.order_number = number.group(1) or number.group(2)
    when = ORDER_DATE.search(text)
    if when:
        result.order_date = parse_date_text(when.group(1), language=mail.language)
    return result


def _from_reading(reading: Reading) -> Extraction | None:
    """The purchase one reading states (an email body or a PDF's lines), or None."""
    chosen = reading.selection
    result = Extraction(parser="generic", confidence=chosen.confidence or 0.4)
    result.total, result.subtotal = chosen.total, chosen.subtotal
    result.shipping, result.discount = chosen.shipping, chosen.discount
    # A purchase has no fees field: taxes and fees are one line of the breakdown, so that
    # subtotal + shipping + tax - discount = total still holds for whoever checks it.
    if chosen.fees is not None:
        result.tax = (chosen.tax or Decimal(0)) + chosen.fees
    else:
        result.tax = chosen.tax
    states_payment = any(c.role in ("total", "subtotal", "paid_with") for c in reading.candidates)
    if states_payment:
        # Rows priced like items only count in an email that states what was paid.
        result.items = reading.items
    if not result.has_purchase_data:
        return None
    result.warnings += chosen.warnings
    result.sum_checked = chosen.closed
    return result


def _name_the_journey(result: Extraction, lines: list[str], reading: Reading) -> None:
    """A travel receipt: the fare's item says where it goes (parsers.itinerary). The one item
    named only "Flight" or "Ticket" is renamed; with no such item, the fare the breakdown
    states becomes one (per traveller when each traveller's fare was added up)."""
    route = journey(lines)
    if route is None:
        return
    transport = [item for item in result.items if is_transport_name(item.name)]
    if transport:
        if len(transport) == 1:  # several tickets: which one goes where is not said
            transport[0].name = route
        return
    fares = [c for c in reading.candidates if c.amount > 0 and is_fare_label(c.label)]
    if not fares or any(item.line_total in {c.amount for c in fares} for item in result.items):
        return
    used = {id(c) for run in reading.selection.chosen for c in run.used}
    added = [c for c in fares if id(c) in used] or fares[:1]  # a fare printed twice is one fare
    if len({c.amount for c in added}) == 1:
        unit, quantity = added[0].amount, len(added)
        result.items.insert(0, Item(name=route, quantity=quantity, unit_price=unit, line_total=unit * quantity))
    else:
        total = sum((c.amount for c in added), Decimal(0))
        result.items.insert(0, Item(name=route, quantity=1, unit_price=total, line_total=total))


def read_pdf(mail: Email) -> tuple[Reading | None, list[str]]:
    """The generic reading of the email's attached invoice PDFs (None: no readable PDF), and
    what went wrong reading them."""
    pdf = attachment_text(mail)
    if not pdf.lines:
        return None, pdf.warnings
    reading = read_layout(layout_from_lines(pdf.lines), text_items(pdf.lines))
    mail.cache["generic_pdf_reading"] = reading
    return reading, pdf.warnings


def _with_pdf(mail: Email, body: Extraction | None) -> Extraction | None:
    """The body's fields win where both speak; the PDF's reading fills the gaps."""
    reading, warnings = read_pdf(mail)
    found = _from_reading(reading) if reading is not None else None
    if found is None:
        if body is not None:
            body.warnings += warnings
        else:  # nothing read: the PDF's warnings (not read, encrypted...) still say why
            mail.warnings += [w for w in warnings if w not in mail.warnings]
        return body
    found.warnings += warnings
    if body is None:
        found.warnings.append("read from the attached PDF")
        return found
    if body.total is None and found.total is not None and (not body.items or found.sum_checked):
        body.total, body.sum_checked = found.total, found.sum_checked
        for name in ("subtotal", "shipping", "tax", "discount"):
            if getattr(body, name) is None:
                setattr(body, name, getattr(found, name))
        body.warnings.append("total read from the attached PDF")
    if not body.items and found.items and found.total == body.total:
        body.items = found.items
        body.warnings.append("items read from the attached PDF")
    body.warnings += warnings
    return body


def currency_hint(reading: Reading, mail: Email) -> tuple[str | None, str | None]:
    """The currency as printed beside the chosen total, made precise by the rest of the email:
    an ISO code or a prefixed dollar (US$, CA$) elsewhere says which dollar; a bare "$" is left
    to the pipeline, which weighs the email's countries (parsers.currency)."""
    chosen = [c for run in reading.selection.chosen for c in run.totals if c.currency]
    printed = [c.currency for c in reading.candidates if c.currency]
    if not printed:
        return None, None
    hint = chosen[0].currency if chosen else Counter(printed).most_common(1)[0][0]
    if hint.lower().rstrip(".") == "rs":
        # Rupees of India, Pakistan, Sri Lanka, Nepal...: only the sender's country tells which.
        territory = territory_of_domain(mail.sender_domain)
        code = _RUPEES.get(territory or "")
        return (code, None) if code else (None, f"currency not read: {hint!r} is the rupee of several countries")
    if hint != "$":
        return _DOLLAR_CODES.get(hint.lower(), hint), None
    # An ISO code or a prefixed dollar elsewhere in the email says which dollar.
    for other in printed:
        key = other.lower()
        if key in _DOLLAR_CODES:
            return _DOLLAR_CODES[key], None
        if len(other) == 3 and other.isupper() and other.endswith("D"):
            return other, None
    return "$", None  # the email's countries decide (parsers.currency, in the pipeline)


def labelled_amount(mail: Email, role: str) -> Decimal | None:
    """The first amount the vocabulary labels as `role` ("shipping", "tax", "discount") in the
    email's visible text lines; a discount is positive. For layers that only need one breakdown
    line. The lines are read once per email, whatever roles a caller asks about in turn."""
    found = mail.cache.get("line_candidates")
    if not isinstance(found, list):
        found = mail.cache["line_candidates"] = candidates_of(layout_from_lines(mail.body_text.split("\n")))
    for candidate in found:
        if candidate.role == role:
            return abs(candidate.amount) if role == "discount" else candidate.amount
    return None


def candidate_amounts(mail: Email) -> list[Decimal]:
    """Every money amount the reader saw (both signs): did the true total have a chance?"""
    return [abs(c.amount) for c in read(mail).candidates]


def explain(mail: Email) -> str:
    """The candidate table for one email: each amount, its label and neighbours, its score per
    role, the chosen assignment and whether the sum closed; then the same for attached PDFs."""
    out = _explain_reading(read(mail))
    pdf, warnings = read_pdf(mail)
    if pdf is not None or warnings:
        out += ["", "attached PDF:"] + [f"warning: {w}" for w in warnings]
    if pdf is not None:
        out += _explain_reading(pdf)
    return "\n".join(out)


def _explain_reading(reading: Reading) -> list[str]:
    chosen = reading.selection
    used = {id(c) for run in chosen.chosen for c in (*run.used, *run.totals)}
    out = [f"{'':2}{'amount':>12} {'cur':<5}{'role':<11}{'score':>6}  {'from':<6}label / line below"]
    for c in reading.candidates:
        roles = " ".join(f"{r}={s:.2f}" for r, s in sorted(c.roles.items(), key=lambda kv: -kv[1]))
        mark = "*" if id(c) in used else " "
        below = f"  / {c.below[:30]}" if c.below else ""
        out.append(f"{mark:2}{c.amount!s:>12} {c.currency or '':<5}{c.role or '-':<11}{c.score:6.2f}  "
                   f"{c.label_from or '-':<6}{c.label[:50]!r}{below}  [{roles}]")
    out.append("")
    for number, run in enumerate(chosen.runs, 1):
        parts = " + ".join(f"{c.role}:{c.amount}" for c in run.components[-8:])
        out.append(f"run {number}: {parts or '(no breakdown)'} -> "
                   f"{', '.join(str(c.amount) for c in run.totals)}; total {run.total}, "
                   f"closed {run.closed}{'; ' + run.note if run.note else ''}")
    out.append(f"chosen: total {chosen.total} subtotal {chosen.subtotal} shipping {chosen.shipping} "
               f"tax {chosen.tax} fees {chosen.fees} discount {chosen.discount}; closed {chosen.closed}; "
               f"confidence {chosen.confidence}")
    out.extend(f"warning: {w}" for w in chosen.warnings)
    out.append(f"items: {len(reading.items)}")
    return out
