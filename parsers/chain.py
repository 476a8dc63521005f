"""The parser chain: merchant parsers, then schema.org, then the generic fallback.

First confident answer wins; the winner's gaps (merchant, order number, date, currency)
are filled from the layers that also spoke (KItinerary's merge). A broken merchant
parser is logged and skipped - it never loses the email.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from parsers.classify import classify, notice_reason
from parsers.generic import extract_generic
from parsers.message import Email
from parsers.model import Extraction, Kind
from parsers.registry import candidates
from parsers.schemaorg import extract_schemaorg

log = logging.getLogger(__name__)

_FILLABLE = ("merchant_name", "merchant_domain", "order_number", "order_date", "currency")
_EXTRACTABLE = (Kind.ORDER, Kind.RECEIPT, Kind.REFUND, Kind.CANCELLATION)


@dataclass
class ChainResult:
    kind: Kind
    confidence: float
    extraction: Extraction | None
    warnings: list[str] = field(default_factory=list)
    reason: str | None = None  # why a notice that names a price is not a purchase


def run_chain(mail: Email, disabled: frozenset[str] = frozenset()) -> ChainResult:
    kind, confidence = classify(mail)
    notice = notice_reason(mail) if kind in (Kind.ORDER, Kind.RECEIPT, Kind.OTHER) else None
    if notice is not None:  # a renewal reminder, a quote, an abandoned cart: nothing was charged
        kind, confidence = Kind.OTHER, 0.7
    spoken: list[Extraction] = []
    warnings: list[str] = []

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
        if extraction.has_purchase_data or extraction.kind is not None:
            break

    if not any(e.has_purchase_data for e in spoken) and kind not in (Kind.SHIPPING, Kind.NEWSLETTER):
        schema = extract_schemaorg(mail)
        if schema is not None:
            spoken.append(schema)
            if schema.kind == Kind.SHIPPING and not spoken[0].kind:
                kind = Kind.SHIPPING
            elif schema.has_purchase_data and kind in (Kind.OTHER, Kind.NEWSLETTER) and notice is None:
                kind = Kind.ORDER

    if not any(e.has_purchase_data for e in spoken) and kind in _EXTRACTABLE:
        generic = extract_generic(mail)
        if generic is not None:
            spoken.append(generic)

    winner = next((e for e in spoken if e.has_purchase_data), spoken[0] if spoken else None)
    if winner is not None:
        if kind == Kind.OTHER and winner.has_purchase_data and winner.parser.startswith("merchant:"):
            kind = Kind.ORDER  # the merchant's own parser read a purchase: trust it
        for other in spoken:
            for name in _FILLABLE:
                if getattr(winner, name) is None and getattr(other, name) is not None:
                    setattr(winner, name, getattr(other, name))
        confidence = winner.confidence if winner.has_purchase_data else confidence
    reason = notice if kind == Kind.OTHER else None  # a merchant parser may have read a purchase after all
    return ChainResult(kind=kind, confidence=confidence, extraction=winner, warnings=warnings, reason=reason)
