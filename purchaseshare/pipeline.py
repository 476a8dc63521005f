"""The extraction pipeline: raw bytes -> one `ParseResult` (the CONTRACT's JSON object).

read bytes -> unwrap forwards (MIME parsed once) -> classify -> parser chain ->
normalize -> validate. Never raises: every failure becomes a status and a reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from parsers.chain import Templates, run_chain
from parsers.currency import currency_of
from parsers.merchant_evidence import is_payment_provider, merchant_from_body, payee
from parsers.message import Email
from parsers.model import Extraction, Item, Kind
from parsers.normalize import (
    money_str,
    normalize_items,
    reconcile,
    registrable_domain,
)
from parsers.personal import personal_terms
from parsers.templates import Template
from parsers.unwrap import unwrap
from parsers.whole_order import whole_order_item
from purchaseshare.memory import Budget, TooCostly

log = logging.getLogger(__name__)

MAX_BYTES = 50 * 1024 * 1024  # beyond this an email is refused, not parsed
# The reason an email over a worker's limits ends with (time: workers.actors; memory: here).
TOO_COSTLY = "too large/complex to read"
# Items kept per purchase: far beyond any real receipt; the rest is dropped with a warning (a
# 20 000-line "order" made an 11 MB page). Owners' add-item and manual entry stop here too.
MAX_ITEMS = 200
_CONTROL_BYTES = bytes([*range(9), *range(14, 32)])  # binary data, not text
# The layers that read any shop (not a merchant parser): prefixes of Extraction.parser.
_GENERAL_LAYERS = ("generic", "schema_org", "learned:")


@dataclass
class ParseResult:
    source: str | None
    status: str  # purchase | not_purchase | unparsed | error
    kind: str | None = None
    parser: str | None = None
    confidence: float | None = None
    forwarded: bool = False
    forwarded_by: str | None = None
    original: dict[str, str | None] = field(default_factory=lambda: {"from": None, "subject": None, "date": None})
    merchant: dict[str, str | None] = field(default_factory=lambda: {"name": None, "domain": None})
    order_number: str | None = None
    order_date: date | None = None
    currency: str | None = None
    total: Decimal | None = None
    subtotal: Decimal | None = None
    shipping: Decimal | None = None
    tax: Decimal | None = None
    discount: Decimal | None = None
    items: list[Item] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reason: str | None = None
    error: str | None = None
    message_id: str | None = None  # the ORIGINAL Message-ID: de-duplicates re-forwards
    # The email's own personal values (recipient's name, address lines, phone, card digits, order
    # numbers): stored privately with the purchase to redact its public text. Not in the CONTRACT.
    personal: list[str] = field(default_factory=list)
    # Learned templates that read this email, and those that matched it but did not add up
    # (their counters are the caller's to keep). Not in the CONTRACT.
    template_hits: list[Template] = field(default_factory=list, repr=False)
    template_misses: list[Template] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The CONTRACT's object: money as decimal strings, dates as ISO strings."""
        return {
            "source": self.source,
            "status": self.status,
            "kind": self.kind,
            "parser": self.parser,
            "confidence": self.confidence,
            "forwarded": self.forwarded,
            "forwarded_by": self.forwarded_by,
            "original": dict(self.original),
            "merchant": dict(self.merchant),
            "order_number": self.order_number,
            "order_date": self.order_date.isoformat() if self.order_date else None,
            "currency": self.currency,
            "total": money_str(self.total),
            "subtotal": money_str(self.subtotal),
            "shipping": money_str(self.shipping),
            "tax": money_str(self.tax),
            "discount": money_str(self.discount),
            "items": [
                {
                    "name": item.name,
                    "quantity": item.quantity,
                    "unit_price": money_str(item.unit_price),
                    "line_total": money_str(item.line_total),
                    "url": item.url,
                    "image": item.image,
                    "sku": item.sku,
                    # only when read: goldens written before the field stay valid
                    **({"variant": item.variant} if item.variant else {}),
                }
                for item in self.items
            ],
            "warnings": list(dict.fromkeys(self.warnings)),  # a cut noticed twice is said once
            "reason": self.reason,
            "error": self.error,
        }


def run(raw: bytes, source: str | None = None, disabled: frozenset[str] = frozenset(),
        templates: Templates = ()) -> ParseResult:
    """The whole pipeline on one email's bytes. Never raises.

    `disabled`: merchant parser slugs left out (parsers.registry.ALL_MERCHANTS: every one)."""
    problem = _refuse(raw)
    if problem:
        return ParseResult(source=source, status="error", error=problem, reason=problem)
    budget = Budget(len(raw))  # memory checked between steps (PURCHASESHARE_PARSE_MEMORY_MB)
    try:
        mail = unwrap(raw)
        budget.check("reading the MIME structure")
        return _parse(mail, source, disabled, templates, budget)
    except TooCostly as exc:
        return ParseResult(source=source, status="error", error=f"{TOO_COSTLY} ({exc})", reason=TOO_COSTLY)
    except RecursionError:
        return ParseResult(source=source, status="error", error="email structure nested too deeply to read")
    except MemoryError:
        return ParseResult(source=source, status="error", error="email too large to read in memory")
    except Exception as exc:  # the pipeline's promise: a status and a reason, never a crash
        log.exception("pipeline failed on %s", source)
        return ParseResult(source=source, status="error", error=f"{type(exc).__name__}: {exc}")


def _refuse(raw: bytes) -> str | None:
    if not raw or raw.isspace():  # not raw.strip(): that copies the whole email
        return "empty input: no email to read"
    if len(raw) > MAX_BYTES:
        return f"email larger than {MAX_BYTES // (1024 * 1024)} MB"
    head = raw[:8192]
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    if b"\x00" in head[:1024] or controls > len(head) * 0.05:
        return "not an email: binary data"
    return None


def _parse(mail: Email, source: str | None, disabled: frozenset[str], templates: Templates = (),
           budget: Budget | None = None) -> ParseResult:
    chain = run_chain(mail, disabled, templates)
    if budget is not None:
        budget.check("reading the body")
    original = mail.original
    result = ParseResult(
        source=source,
        status="not_purchase",
        kind=chain.kind.value,
        confidence=round(chain.confidence, 2),
        forwarded=mail.forwarded,
        forwarded_by=mail.forwarded_by,
        original={
            "from": original.from_addr or original.from_name,
            "subject": original.subject,
            "date": original.date.isoformat() if original.date else None,
        },
        warnings=[*mail.warnings, *chain.warnings],
        message_id=original.message_id,
        template_hits=chain.template_hits,
        template_misses=chain.template_misses,
    )
    extraction = chain.extraction
    claimed = extraction.merchant_domain if extraction else None  # "" = the parser knows there is none
    domain = registrable_domain(mail.sender_domain if claimed is None else claimed)
    name = (extraction.merchant_name if extraction else None) or _sender_name(mail)
    extracting = chain.kind in (Kind.ORDER, Kind.RECEIPT, Kind.REFUND, Kind.CANCELLATION)
    if extracting and claimed is None and domain is None and not (original.from_addr or original.from_name):
        guessed_name, domain = merchant_from_body(mail)  # a bare body, or a forward that lost its From
        name = name or guessed_name
    paid_to = None
    if extracting and is_payment_provider(name, domain) and (named := payee(mail)):
        name, domain = paid_to = named  # a payment provider's receipt: the payee is the merchant
    result.merchant = {"name": name, "domain": domain}
    if extraction is not None and extracting and extraction.parser.startswith(_GENERAL_LAYERS):
        _add_whole_order_item(extraction, mail, name, paid_to[0] if paid_to else None)
    if extraction is not None and extracting:
        _fill(result, extraction, mail, domain)
        result.personal = personal_terms(mail, result.order_number)
    if chain.kind.is_purchase:
        if extraction is not None and extraction.has_purchase_data:
            result.status = "purchase"
            result.parser = extraction.parser
        else:
            result.status = "unparsed"
            result.reason = "looks like an order or receipt, but no parser could read its items or total"
    else:
        result.parser = extraction.parser if extraction is not None and extracting else None
        result.reason = chain.reason or f"recognised as {chain.kind.value}, not a purchase"
    if result.order_date is None and result.status == "purchase" and original.date:
        result.order_date = original.date.date()
    return result


def _add_whole_order_item(extraction: Extraction, mail: Email, merchant: str | None, payee_name: str | None) -> None:
    """A general layer's reading with a total and no item rows: one item for the whole order
    when the email names what was bought (parsers/whole_order.py); a merchant parser's
    reading is left as its parser made it."""
    item = whole_order_item(extraction, mail.body_text, merchant=merchant, payee=payee_name, language=mail.language)
    if item is not None:
        extraction.items = [item]
        extraction.warnings.append("no item rows: one item stands for the whole order")


def _fill(result: ParseResult, extraction: Extraction, mail: Email, domain: str | None) -> None:
    items = normalize_items(extraction.items)
    extraction.items = items
    result.items = cap_items(items, result.warnings)
    result.order_number = extraction.order_number
    result.order_date = extraction.order_date
    result.total = extraction.total
    result.subtotal = extraction.subtotal
    result.shipping = extraction.shipping
    result.tax = extraction.tax
    result.discount = extraction.discount
    priced = extraction.total is not None or any(item.line_total is not None for item in items)
    if extraction.currency or priced:  # a currency matters only beside an amount
        result.currency, currency_warnings = currency_of(extraction.currency, mail, domain)
        result.warnings += currency_warnings
    result.warnings += extraction.warnings + reconcile(extraction)


def cap_items(items: list[Item], warnings: list[str]) -> list[Item]:
    """At most MAX_ITEMS items, in the email's order; a warning says how many were left out."""
    if len(items) <= MAX_ITEMS:
        return items
    warnings.append(f"only the first {MAX_ITEMS} of {len(items)} items were kept")
    return items[:MAX_ITEMS]


def _sender_name(mail: Email) -> str | None:
    name = mail.original.from_name
    if name and "@" not in name:
        return name
    domain = mail.sender_domain
    return domain.split(".")[0].capitalize() if domain else None


def parse_file(path: str, disabled: frozenset[str] = frozenset()) -> ParseResult:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        return ParseResult(source=path, status="error", error=f"cannot read file: {exc.strerror or exc}")
    return run(raw, source=path, disabled=disabled)
