"""The owner's side: the inbox of new (private) purchases, approving item by item, corrections
and manual entry.

Every object here is looked up by (id, owner): anyone else gets the same 404 as for an id that
does not exist. Nothing on these pages is public; the public view is purchaseshare.public.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from sqlmodel import Session, col, select

from purchaseshare.account import delete_purchase
from purchaseshare.clock import utcnow
from purchaseshare.models import Purchase, PurchaseItem, RawEmail, User
from web.deps import CurrentUser, DbDep, flash, not_found, render
from web.forms import (
    Errors,
    FormDep,
    PageDep,
    decoded_subject,
    object_id,
    object_ids,
    paginate,
    parse_currency,
    parse_date,
    parse_money,
    parse_name,
    parse_quantity,
    parse_url,
    see_other,
    text_field,
)

router = APIRouter(include_in_schema=False)


# --- lookups ----------------------------------------------------------------------------------


def own_purchase(db: Session, user: User, purchase_id: str) -> Purchase:
    purchase = db.get(Purchase, object_id(purchase_id))
    if purchase is None or purchase.user_id != user.id:
        raise not_found()
    return purchase


def _items(db: Session, purchase_ids: list[int]) -> dict[int, list[PurchaseItem]]:
    found: dict[int, list[PurchaseItem]] = {pid: [] for pid in purchase_ids}
    if purchase_ids:
        for item in db.exec(select(PurchaseItem).where(col(PurchaseItem.purchase_id).in_(purchase_ids))
                            .order_by(PurchaseItem.purchase_id, PurchaseItem.position, PurchaseItem.id)):
            found[item.purchase_id].append(item)
    return found

def _purchase_list(request: Request, user: User, db: Session, page: int, template: str, *conditions):
    query = (select(Purchase).where(Purchase.user_id == user.id, *conditions)
             .order_by(col(Purchase.created_at).desc(), col(Purchase.id).desc()))
    purchases, has_more = paginate(db, query, page)
    items = _items(db, [p.id for p in purchases])
    return render(request, template, {"purchases": purchases, "items": items, "page": page, "has_more": has_more},
                  user=user, db=db)


# --- approving --------------------------------------------------------------------------------


def set_approved(purchase: Purchase, items: list[PurchaseItem], approved_ids: set[int]) -> None:
    """Share exactly these items; the purchase counts as reviewed, public once an item is shared."""
    now = utcnow()
    for item in items:
        wanted = item.id in approved_ids
        if wanted and not item.approved:
            item.approved, item.approved_at = True, now
        elif not wanted and item.approved:
            item.approved, item.approved_at = False, None
    purchase.review = "reviewed"
    if approved_ids and purchase.published_at is None:
        purchase.published_at = now  # the first time only: a later re-approval keeps its place
    purchase.updated_at = now


@router.get("/inbox")
def inbox(request: Request, user: CurrentUser, db: DbDep, page: PageDep = 1):
    return _purchase_list(request, user, db, page, "owner/inbox.html", Purchase.review == "new")


@router.post("/inbox/approve")
def bulk_approve(request: Request, user: CurrentUser, db: DbDep, form: FormDep):
    ids = object_ids(form.getlist("ids"))
    # Only the user's own purchases: other ids are ignored, exactly like ids that do not exist.
    purchases = db.exec(select(Purchase).where(col(Purchase.id).in_(ids), Purchase.user_id == user.id)).all() if ids else []
    items = _items(db, [p.id for p in purchases])
    for purchase in purchases:
        set_approved(purchase, items[purchase.id], {item.id for item in items[purchase.id]})
    db.commit()
    flash(request, f"Approved {len(purchases)} purchase{'s' if len(purchases) != 1 else ''}: now on your profile."
          if purchases else "Select the purchases to approve first.")
    return see_other("/inbox")


@router.get("/purchases")
def reviewed(request: Request, user: CurrentUser, db: DbDep, page: PageDep = 1):
    return _purchase_list(request, user, db, page, "owner/purchases.html", Purchase.review != "new")


# --- manual entry (before /purchases/{id} so "new" is not taken for an id) ---------------------

ITEM_LINE = re.compile(r"^(?:(?P<qty>\d{1,7})\s*[x×*]\s+)?(?P<name>.+?)(?:\s+@\s*(?P<price>-?[\d.,]+))?$")


def parse_item_lines(text: str, errors: Errors) -> list[tuple[str, int, Decimal | None]]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        errors.messages.append("items: enter at least one item, one per line")
    if len(lines) > 200:
        errors.messages.append("items: at most 200 lines")
        return []
    parsed = []
    for number, line in enumerate(lines, 1):
        match = ITEM_LINE.match(line)
        if match is None:  # pragma: no cover - the name group matches any non-empty line
            errors.messages.append(f"item line {number}: write it as '2 x Coffee beans @ 12.50'")
            continue
        label = f"item line {number}"
        name = errors.check(parse_name, match["name"], f"{label} name")
        quantity = errors.check(parse_quantity, match["qty"] or "1", f"{label} quantity")
        price = errors.check(parse_money, match["price"] or "", f"{label} price") if match["price"] else None
        if name is not None and quantity is not None:
            parsed.append((name, quantity, price))
    return parsed


@router.get("/purchases/new")
def new_purchase_form(request: Request, user: CurrentUser, db: DbDep):
    return render(request, "owner/new_purchase.html", {"values": {}, "errors": []}, user=user, db=db)


@router.post("/purchases/new")
def new_purchase(request: Request, user: CurrentUser, db: DbDep, form: FormDep):
    values = {name: text_field(form, name) for name in ("merchant_name", "order_date", "currency", "total", "items")}
    errors = Errors()
    merchant = errors.check(parse_name, values["merchant_name"], "merchant", 200)
    order_date = errors.check(parse_date, values["order_date"], "date")
    currency = errors.check(parse_currency, values["currency"])
    total = errors.check(parse_money, values["total"], "total")
    lines = parse_item_lines(values["items"], errors)
    if errors.messages:
        return render(request, "owner/new_purchase.html", {"values": values, "errors": errors.messages},
                      status_code=400, user=user, db=db)
    line_totals = [price * qty for _, qty, price in lines if price is not None]
    if total is None and lines and len(line_totals) == len(lines):
        total = sum(line_totals, Decimal(0))
    share, now = user.default_share_items, utcnow()
    purchase = Purchase(user_id=user.id, merchant_name=merchant, order_date=order_date, currency=currency,
                        total=total, entered_by_hand=True, review="reviewed" if share else "new",
                        published_at=now if share else None)
    db.add(purchase)
    db.flush()
    for position, (name, quantity, price) in enumerate(lines):
        db.add(PurchaseItem(purchase_id=purchase.id, position=position, name=name, quantity=quantity,
                            unit_price=price, line_total=price * quantity if price is not None else None,
                            approved=share, approved_at=now if share else None))
    db.commit()
    flash(request, "Purchase added." + ("" if share else " It is private until you approve its items."))
    return see_other(f"/purchases/{purchase.id}")


# --- one purchase -----------------------------------------------------------------------------


def _form_values(purchase: Purchase, items: list[PurchaseItem]) -> dict[str, str]:
    def text(value: Any) -> str:
        return "" if value is None else str(value)

    values = {"merchant_name": text(purchase.merchant_name), "currency": text(purchase.currency),
              "order_date": purchase.order_date.isoformat() if purchase.order_date else "",
              "total": text(purchase.total)}
    for item in items:
        for name in ("name", "quantity", "unit_price", "url", "image"):
            values[f"item-{item.id}-{name}"] = text(getattr(item, name))
    return values


def _purchase_page(request: Request, user: User, db: Session, purchase: Purchase,
                   errors: list[str] | None = None, submitted: dict[str, str] | None = None, status_code: int = 200):
    items = _items(db, [purchase.id])[purchase.id]
    source = db.exec(select(RawEmail).where(RawEmail.purchase_id == purchase.id, RawEmail.user_id == user.id)
                     .order_by(RawEmail.id)).all()
    values = {**_form_values(purchase, items), **(submitted or {})}
    public = purchase.review != "rejected" and purchase.published_at is not None and any(i.approved for i in items)
    return render(request, "owner/purchase.html", {
        "purchase": purchase, "items": items, "emails": source, "values": values, "errors": errors or [],
        "public_path": f"/u/{user.handle}/p/{purchase.public_id}" if public else None, "subject": decoded_subject,
    }, status_code=status_code, user=user, db=db)


@router.get("/purchases/{purchase_id}")
def purchase_page(request: Request, purchase_id: str, user: CurrentUser, db: DbDep):
    return _purchase_page(request, user, db, own_purchase(db, user, purchase_id))


@router.post("/purchases/{purchase_id}/approve")
def approve_all(request: Request, purchase_id: str, user: CurrentUser, db: DbDep):
    purchase = own_purchase(db, user, purchase_id)
    items = _items(db, [purchase.id])[purchase.id]
    set_approved(purchase, items, {item.id for item in items})
    db.commit()
    flash(request, "Approved: every item is on your profile." if items else "Marked as reviewed.")
    return see_other(f"/purchases/{purchase.id}")


@router.post("/purchases/{purchase_id}/items")
def approve_items(request: Request, purchase_id: str, user: CurrentUser, db: DbDep, form: FormDep):
    purchase = own_purchase(db, user, purchase_id)
    items = _items(db, [purchase.id])[purchase.id]
    own_ids = {item.id for item in items}
    chosen = object_ids(form.getlist("approved"))
    set_approved(purchase, items, chosen & own_ids)
    db.commit()
    shared = len(chosen & own_ids)
    flash(request, f"Saved: {shared} of {len(items)} items shared." if shared
          else "Saved: nothing of this purchase is shared; it is private.")
    return see_other(f"/purchases/{purchase.id}")


@router.post("/purchases/{purchase_id}/hide-prices")
def hide_prices(request: Request, purchase_id: str, user: CurrentUser, db: DbDep, form: FormDep):
    purchase = own_purchase(db, user, purchase_id)
    purchase.hide_prices = text_field(form, "hide_prices") in ("1", "on", "true")
    purchase.updated_at = utcnow()
    db.commit()
    flash(request, "Prices are hidden on public pages." if purchase.hide_prices else "Prices are shown.")
    return see_other(f"/purchases/{purchase.id}")


@router.post("/purchases/{purchase_id}/caption")
def caption(request: Request, purchase_id: str, user: CurrentUser, db: DbDep, form: FormDep):
    purchase = own_purchase(db, user, purchase_id)
    text = text_field(form, "caption")
    if len(text) > 1000:
        return _purchase_page(request, user, db, purchase, ["caption: at most 1000 characters"], status_code=400)
    purchase.caption = text or None
    purchase.updated_at = utcnow()
    db.commit()
    flash(request, "Caption saved." if text else "Caption removed.")
    return see_other(f"/purchases/{purchase.id}")


@router.post("/purchases/{purchase_id}/edit")
def correct(request: Request, purchase_id: str, user: CurrentUser, db: DbDep, form: FormDep):
    purchase = own_purchase(db, user, purchase_id)
    items = _items(db, [purchase.id])[purchase.id]
    submitted = {key: text_field(form, key) for key in _form_values(purchase, items) if key in form}
    errors = Errors()
    changes: dict[str, Any] = {}
    if "merchant_name" in form:
        changes["merchant_name"] = errors.check(parse_name, submitted["merchant_name"], "merchant", 200, required=False)
    if "order_date" in form:
        changes["order_date"] = errors.check(parse_date, submitted["order_date"], "order date")
    if "currency" in form:
        changes["currency"] = errors.check(parse_currency, submitted["currency"])
    if "total" in form:
        changes["total"] = errors.check(parse_money, submitted["total"], "total")
    item_changes: dict[int, dict[str, Any]] = {}
    for number, item in enumerate(items, 1):
        key, label, found = f"item-{item.id}-", f"item {number}", {}
        parsers = {"name": lambda v, lb: parse_name(v, f"{lb} name"),
                   "quantity": lambda v, lb: parse_quantity(v, f"{lb} quantity"),
                   "unit_price": lambda v, lb: parse_money(v, f"{lb} price", negative=True),
                   "url": lambda v, lb: parse_url(v, f"{lb} link"),
                   "image": lambda v, lb: parse_url(v, f"{lb} image", https_only=True)}
        for name, parse in parsers.items():
            if key + name in form:
                found[name] = errors.check(parse, submitted[key + name], label)
        item_changes[item.id] = found
    if errors.messages:
        return _purchase_page(request, user, db, purchase, errors.messages, submitted, status_code=400)
    now = utcnow()
    for name, value in changes.items():
        setattr(purchase, name, value)
    for item in items:
        found = item_changes[item.id]
        price_changed = ("unit_price" in found and found["unit_price"] != item.unit_price) or (
            "quantity" in found and found["quantity"] != item.quantity)
        for name, value in found.items():
            setattr(item, name, value)
        if price_changed:  # the parsed line total no longer holds
            item.line_total = item.unit_price * item.quantity if item.unit_price is not None else None
    purchase.updated_at = now
    db.commit()
    flash(request, "Corrections saved.")
    return see_other(f"/purchases/{purchase.id}")


@router.post("/purchases/{purchase_id}/reject")
def reject(request: Request, purchase_id: str, user: CurrentUser, db: DbDep):
    purchase = own_purchase(db, user, purchase_id)
    set_approved(purchase, _items(db, [purchase.id])[purchase.id], set())
    purchase.review = "rejected"  # never public, whatever its items say
    db.commit()
    flash(request, "Rejected: this purchase stays private and out of your inbox.")
    return see_other("/inbox")


@router.post("/purchases/{purchase_id}/delete")
def delete_purchase_route(request: Request, purchase_id: str, user: CurrentUser, db: DbDep):
    # The email stays (listed under Emails); it can be parsed again to bring the purchase back.
    delete_purchase(db, own_purchase(db, user, purchase_id))
    flash(request, "Purchase deleted. Its email is still listed under Emails.")
    return see_other("/inbox")
