"""Teach by pointing (issue 14, point 5): on an email nothing could read, or read wrong, the owner
points at the total and at each item's name, price and quantity in the email as the reader sees
it; saving stores the purchase and learns the sender's layout (purchaseshare.learning), so the
next receipt laid out the same way is read without help.

The clickable view is the reader's own layout model (text only, escaped like every page); the
original is beside it in a sandboxed iframe whose response forbids scripts and any remote load.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from decimal import Decimal

from fastapi import APIRouter, Request, Response
from sqlmodel import Session, select

from parsers.candidates import Candidate
from parsers.currency import currency_of
from parsers.generic import currency_hint
from parsers.generic import read as reading_of
from parsers.message import Email
from parsers.model import Item
from parsers.personal import personal_terms
from parsers.unwrap import unwrap
from purchaseshare import learning
from purchaseshare.clock import utcnow
from purchaseshare.limits import TEXT_MAX
from purchaseshare.models import Purchase, PurchaseItem, RawEmail, RawStatus
from purchaseshare.pipeline import MAX_ITEMS
from purchaseshare.processing import add_items
from web.deps import CurrentUser, DbDep, flash, render
from web.forms import FormDep, owned_or_404, see_other

router = APIRouter(include_in_schema=False)

MAX_BLOCKS = 1500  # shown to point at; a receipt's fields sit well inside
# The original, framed by our own page only: no script, nothing loaded from anywhere.
ORIGINAL_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                               "frame-ancestors 'self'; form-action 'none'; base-uri 'none'",
    "x-frame-options": "SAMEORIGIN", "cache-control": "private, no-store", "referrer-policy": "no-referrer",
}
_QUANTITY = re.compile(r"\d{1,3}")


@dataclass
class Shown:
    """One block of the email as the owner points at it."""

    index: int
    text: str
    amount: Decimal | None


def _mail(raw: RawEmail) -> Email | None:
    return unwrap(raw.raw) if raw.raw is not None else None


def _purged(request: Request):
    flash(request, "The original of this email was deleted (retention): there is nothing to point at.")
    return see_other("/emails")


@router.get("/emails/{raw_id}/teach")
def teach_page(request: Request, raw_id: str, user: CurrentUser, db: DbDep):
    raw = owned_or_404(db, RawEmail, raw_id, user)
    mail = _mail(raw)
    if mail is None:
        return _purged(request)
    reading = reading_of(mail)
    money = {id(c.block): c for c in reading.candidates}
    rows: list[list[Shown]] = []
    for row in reading.layout.rows:
        shown = [Shown(b.index, b.text, abs(money[id(b)].amount) if id(b) in money else None)
                 for b in row if b.index < MAX_BLOCKS]
        if shown:
            rows.append(shown)
    return render(request, "owner/teach.html", {"raw": raw, "rows": rows, "subject": mail.original.subject},
                  user=user, db=db)


@router.get("/emails/{raw_id}/original")
def original(raw_id: str, user: CurrentUser, db: DbDep) -> Response:
    raw = owned_or_404(db, RawEmail, raw_id, user)
    mail = _mail(raw)
    if mail is None:
        return Response("The original was deleted.", media_type="text/plain", headers=ORIGINAL_HEADERS)
    if mail.html:
        body = '<base target="_blank">' + mail.html  # a link could at most open a new tab (the sandbox has none)
    else:
        body = "<pre style='white-space:pre-wrap'>" + html.escape(mail.text, quote=False) + "</pre>"
    return Response(body, media_type="text/html; charset=utf-8", headers=ORIGINAL_HEADERS)


@router.post("/emails/{raw_id}/teach")
def teach(request: Request, raw_id: str, user: CurrentUser, db: DbDep, form: FormDep):
    raw = owned_or_404(db, RawEmail, raw_id, user)
    mail = _mail(raw)
    if mail is None:
        return _purged(request)
    reading = reading_of(mail)
    blocks = reading.layout.blocks
    money = {c.block.index: c for c in reading.candidates}
    problems: list[str] = []
    total = _amount(money, form.get("total"), "the total", problems)
    names, prices, quantities = (form.getlist(key) for key in ("item_name", "item_price", "item_qty"))
    items: list[Item] = []
    for number, (name_at, price_at) in enumerate(zip(names, prices, strict=False), 1):
        name = _block_text(blocks, name_at)
        price = _amount(money, price_at, f"item {number}'s price", problems)
        if not name:
            problems.append(f"item {number}: point at its name")
        if name and price is not None:
            quantity = _quantity(blocks, quantities[number - 1] if number <= len(quantities) else "")
            items.append(Item(name=name[:TEXT_MAX["item_name"]], quantity=quantity, line_total=price))
    if len(items) > MAX_ITEMS:
        problems.append(f"at most {MAX_ITEMS} items")
    if not items and not problems:
        problems.append("point at each item's name and price")
    purchase = db.get(Purchase, raw.purchase_id) if raw.purchase_id else None
    if purchase is not None and purchase.source_raw_id == raw.id and _any_shared(db, purchase):
        problems.append("some items of this purchase are shared: unshare them before teaching it again")
    if problems:
        flash(request, "Not saved: " + "; ".join(problems) + ".")
        return see_other(f"/emails/{raw.id}/teach")
    assert total is not None
    _price_items(items, total, {c.amount for c in reading.candidates})
    purchase = _store(db, raw, purchase, mail, total, items, reading.candidates)
    db.commit()
    lesson = learning.teach(db, user.id or 0, purchase, mail)  # the email read above, not a second parse
    from workers.actors import reparse_email

    for caught in lesson.caught_up if lesson else []:
        reparse_email.send(caught)
    message = f"Saved {len(items)} item{'s' if len(items) != 1 else ''} and the total."
    if lesson is not None and lesson.template_id is not None:
        message += " The next receipts laid out like this one will be read the same way."
        if lesson.caught_up:
            message += f" {len(lesson.caught_up)} of your other emails from this sender are being read again."
    flash(request, message)
    return see_other(f"/purchases/{purchase.id}")


def _block_text(blocks: list, at: str) -> str:
    index = _index(at)
    return blocks[index].text.strip() if index is not None and index < len(blocks) else ""


def _index(at: str | None) -> int | None:
    return int(at) if at and at.isdigit() and int(at) < MAX_BLOCKS else None


def _amount(money: dict[int, Candidate], at, what: str, problems: list[str]) -> Decimal | None:
    index = _index(at if isinstance(at, str) else None)
    if index is None or index not in money:
        problems.append(f"point at {what} (an amount)")
        return None
    return abs(money[index].amount)


def _quantity(blocks: list, at: str) -> int:
    found = _QUANTITY.search(_block_text(blocks, at))
    return max(1, int(found.group(0))) if found else 1


def _price_items(items: list[Item], total: Decimal, printed: set[Decimal]) -> None:
    """A pointed price is the line's total, unless prices times quantities make a printed sum
    (the subtotal, or the total) that the line totals do not: then it was the unit price."""
    as_units = sum((i.line_total * i.quantity for i in items if i.line_total is not None), Decimal(0))
    as_lines = sum((i.line_total for i in items if i.line_total is not None), Decimal(0))
    units = any(i.quantity > 1 for i in items) and as_units in printed | {total} and as_lines not in printed | {total}
    for item in items:
        assert item.line_total is not None
        if units:
            item.unit_price, item.line_total = item.line_total, item.line_total * item.quantity
        else:
            unit = item.line_total / item.quantity
            item.unit_price = unit if unit == unit.quantize(Decimal("0.01")) else None


def _any_shared(db: Session, purchase: Purchase) -> bool:
    return db.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == purchase.id,
                                              PurchaseItem.approved == True)).first() is not None  # noqa: E712


def _store(db: Session, raw: RawEmail, purchase: Purchase | None, mail: Email, total: Decimal, items: list[Item],
           candidates: list[Candidate]) -> Purchase:
    """The taught purchase: this email's own purchase updated, or a new one for an unread email."""
    now = utcnow()
    if purchase is None or purchase.source_raw_id != raw.id:
        known = json.loads(raw.result_json) if raw.result_json else {}
        merchant = known.get("merchant") or {}
        purchase = Purchase(user_id=raw.user_id or 0, source_raw_id=raw.id, kind="order",
                            merchant_name=merchant.get("name"), merchant_domain=merchant.get("domain"),
                            order_date=mail.original.date.date() if mail.original.date else None)
        db.add(purchase)
    else:
        for old in db.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == purchase.id)).all():
            db.delete(old)
    hint, _ = currency_hint(reading_of(mail), mail)
    purchase.currency = purchase.currency or currency_of(hint, mail, purchase.merchant_domain)[0]
    purchase.total, purchase.subtotal, purchase.shipping, purchase.tax = total, None, None, None
    purchase.parser, purchase.confidence, purchase.warnings = "taught", 1.0, None
    # The email's own personal values (name, address, card digits): public text is redacted
    # against them, as for every purchase the pipeline stores.
    terms = personal_terms(mail, purchase.order_number)
    purchase.personal_terms = json.dumps(terms, ensure_ascii=False) if terms else purchase.personal_terms
    purchase.updated_at = now
    db.flush()
    add_items(db, purchase.id or 0, items)
    raw.purchase_id, raw.status, raw.reason, raw.processed_at = purchase.id, RawStatus.PARSED.value, None, now
    return purchase
