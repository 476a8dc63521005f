"""The parser chain: merchant parsers, then schema.org, then the generic reader.

The first layer that read a purchase wins; its gaps are filled field by field from the
layers that also spoke (KItinerary's merge), so a known merchant's new template degrades
to generic quality, never to null. Amounts are only borrowed with the arithmetic behind
them: a total that another layer checked, or one the winner's own items add up to. A
broken merchant parser is logged and skipped - it never loses the email.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from parsers.classify import classify, notice_reason
from parsers.generic import extract_generic
from parsers.layout import layout_of
from parsers.message import Email
from parsers.model import Extraction, Kind
from parsers.registry import candidates
from parsers.schemaorg import extract_schemaorg
from parsers.signature import same_template, signature, similarity
from parsers.templates import Template
from parsers.templates import read as read_template

log = logging.getLogger(__name__)

_FILLABLE = ("merchant_name", "merchant_domain", "order_number", "order_date", "currency")
_BREAKDOWN = ("subtotal", "shipping", "tax", "discount")
_EXTRACTABLE = (Kind.ORDER, Kind.RECEIPT, Kind.REFUND, Kind.CANCELLATION)


@dataclass
class ChainResult:
    kind: Kind
    confidence: float
    extraction: Extraction | None
    warnings: list[str] = field(default_factory=list)
    reason: str | None = None  # why a notice that names a price is not a purchase
    template_hits: list[Template] = field(default_factory=list)  # learned templates that read the email
    template_misses: list[Template] = field(default_factory=list)  # ...that matched it but did not add up


Templates = Sequence[Template] | Callable[[str | None], Sequence[Template]]


def _read_with_templates(mail: Email, templates: Templates, result: ChainResult) -> Extraction | None:
    """The first learned template of this sender whose layout signature matches reads the email;
    one that matches but does not add up is a miss (the next layers read the email)."""
    domain = mail.sender_domain
    if callable(templates):  # a loader: asked only now that the sender is known
        templates = templates(domain) if domain else ()
    mine = [t for t in templates if t.sender_domain == domain]
    if not mine:
        return None
    own = signature(layout_of(mail))
    for template in sorted(mine, key=lambda t: -similarity(t.signature, own)):
        if not same_template(template.signature, own):
            break
        extraction = read_template(template, mail)
        if extraction is not None:
            result.template_hits.append(template)
            return extraction
        result.template_misses.append(template)
    return None


def run_chain(mail: Email, disabled: frozenset[str] = frozenset(), templates: Templates = ()) -> ChainResult:
    """`templates`: layouts learned from corrections (parsers/templates.py) that may read this
    email - the caller passes only those its owner may use, or a loader that returns them for
    the email's sender domain."""
    kind, confidence = classify(mail)
    notice = notice_reason(mail) if kind in (Kind.ORDER, Kind.RECEIPT, Kind.OTHER) else None
    if notice is not None:  # a renewal reminder, a quote, an abandoned cart: nothing was charged
        kind, confidence = Kind.OTHER, 0.7
    spoken: list[Extraction] = []
    warnings: list[str] = []
    gaps = True  # what the merchant layer read leaves fields the next layers may fill

    for parser in candidates(mail, disabled):
        try:
            extraction = parser(mail).extract()
        except Exception as exc:  # one broken parser never loses an email
            log.exception("merchant parser %s failed", parser.slug)
            warnings.append(f"merchant:{parser.slug} failed: {type(exc).__name__}: {exc}")
            continue
        if extraction.kind is not None:
            kind, confidence = extraction.kind, extraction.confidence
        spoken.append(extraction)
        gaps = _has_gaps(extraction, parser.states_total)
        if extraction.has_purchase_data or extraction.kind is not None:
            break

    outcome = ChainResult(kind=kind, confidence=confidence, extraction=None)
    if gaps and templates and kind not in (Kind.SHIPPING, Kind.NEWSLETTER):
        learned = _read_with_templates(mail, templates, outcome)
        if learned is not None:
            spoken.append(learned)
            gaps = False
            if kind in (Kind.OTHER, Kind.NEWSLETTER) and notice is None:
                kind = Kind.ORDER  # the owner taught this layout as a purchase
            filler = extract_generic(mail)  # what was not taught (currency, date, order number)
            if filler is not None:
                spoken.append(filler)
    if gaps:
        # Nothing read yet, or a merchant parser left gaps: the next layers may fill them.
        if kind not in (Kind.SHIPPING, Kind.NEWSLETTER):
            schema = extract_schemaorg(mail)
            if schema is not None:
                spoken.append(schema)
                if schema.kind == Kind.SHIPPING and not spoken[0].kind:
                    kind = Kind.SHIPPING
                elif schema.has_purchase_data and kind in (Kind.OTHER, Kind.NEWSLETTER) and notice is None:
                    kind = Kind.ORDER
        if kind in _EXTRACTABLE and not any(_complete(e) for e in spoken):
            generic = extract_generic(mail)
            if generic is not None:
                spoken.append(generic)

    winner = next((e for e in spoken if e.has_purchase_data), spoken[0] if spoken else None)
    if winner is not None:
        if kind == Kind.OTHER and winner.has_purchase_data and winner.parser.startswith("merchant:"):
            kind = Kind.ORDER  # the merchant's own parser read a purchase: trust it
        for other in spoken:
            if other is not winner:
                merge(winner, other)
        confidence = winner.confidence if winner.has_purchase_data else confidence
        if mail.cut:
            _read_in_part(winner, spoken)
    reason = notice if kind == Kind.OTHER else None  # a merchant parser may have read a purchase after all
    return ChainResult(kind=kind, confidence=confidence, extraction=winner, warnings=warnings, reason=reason,
                       template_hits=outcome.template_hits, template_misses=outcome.template_misses)


def _read_in_part(winner: Extraction, spoken: list[Extraction]) -> None:
    """The email was cut (parsers.bounded): only part of it was read. A total stands only with
    arithmetic behind it (a closed breakdown, or items that add up to it): the one line labelled
    total may be another order's, or the real one may be in what was left out. The items are
    those of the part that was read."""
    total = winner.total
    checked = winner.sum_checked or any(e.sum_checked and e.total == total for e in spoken)
    if total is not None and not checked and not _adds_up(winner, total):
        winner.warnings.append(f"total {total} not kept: the email was cut, and nothing read adds up to it")
        winner.total = None
        for name in _BREAKDOWN:
            setattr(winner, name, None)
    if winner.items:
        winner.warnings.append("the email was cut: it may list more items than those read")


def _has_gaps(extraction: Extraction, states_total: bool) -> bool:
    """A merchant's reading leaves gaps when it has no purchase data, or no total although the
    merchant's emails state one. A total it read stands with or without items (its template
    may list none; another layer's items would have to show the same total anyway)."""
    if not extraction.has_purchase_data:
        return True
    return extraction.total is None and states_total


def _complete(extraction: Extraction) -> bool:
    return bool(extraction.items) and extraction.total is not None


def merge(winner: Extraction, other: Extraction) -> None:
    """Fill the winner's empty fields from a layer that also read the email."""
    for name in _FILLABLE:
        if getattr(winner, name) is None and getattr(other, name) is not None:
            setattr(winner, name, getattr(other, name))
    borrowed: list[str] = []
    if not winner.items and other.items and _agrees(other, winner.total):
        winner.items = other.items
        borrowed.append("items")
    if winner.total is None and other.total is not None and (
            _adds_up(winner, other.total) or "items" in borrowed
            or (other.sum_checked and not _priced(winner))):  # a checked total no priced item contradicts
        winner.total = other.total
        borrowed.append("total")
    if "total" in borrowed or (other.sum_checked and other.total == winner.total):
        for name in _BREAKDOWN:
            if getattr(winner, name) is None and getattr(other, name) is not None:
                setattr(winner, name, getattr(other, name))
    if borrowed:
        winner.warnings.append(f"{' and '.join(borrowed)} read by the {_layer_name(other)}")


def _agrees(other: Extraction, total: Decimal | None) -> bool:
    """Another layer's items may be taken when the winner has no total to contradict them,
    or when that layer read the very same total."""
    return total is None or other.total == total


def _priced(extraction: Extraction) -> bool:
    return bool(extraction.items) and all(item.line_total is not None for item in extraction.items)


def _adds_up(winner: Extraction, total: Decimal) -> bool:
    """The winner's own items (and breakdown) add up to this total."""
    if not _priced(winner):
        return False
    items = sum((item.line_total for item in winner.items), Decimal(0))  # type: ignore[misc]
    extras = (winner.shipping or 0) + (winner.tax or 0) - (winner.discount or 0)
    return total in (items, items + extras)


def _layer_name(extraction: Extraction) -> str:
    if extraction.parser == "schema_org":
        return "schema.org layer"
    return f"{extraction.parser} layer" if not extraction.parser.startswith("merchant:") else extraction.parser
