"""The owner's side: the inbox of new (private) purchases, approving item by item, corrections
and manual entry.

Every object here is looked up by (id, owner): anyone else gets the same 404 as for an id that
does not exist. Nothing on these pages is public; the public view is purchaseshare.public.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from babel import Locale
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import defer
from sqlmodel import Session, col, func, select

from purchaseshare import learning, sharing
from purchaseshare.account import delete_purchase
from purchaseshare.clock import utcnow
from purchaseshare.item_images import queue_sync
from purchaseshare.limits import TEXT_MAX
from purchaseshare.models import Purchase, PurchaseItem, RawEmail, User
from purchaseshare.pipeline import MAX_ITEMS
from web.deps import CurrentUser, DbDep, flash, not_found, render
from web.forms import (
    Errors,
    FormDep,
    Invalid,
    PageDep,
    decoded_subject,
    object_id,
    object_ids,
    owned_or_404,
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
from web.money import request_locale
from web.reading import reading

router = APIRouter(include_in_schema=False)


# --- lookups ----------------------------------------------------------------------------------


def _items(db: Session, purchase_ids: list[int]) -> dict[int, list[PurchaseItem]]:
    """The first MAX_ITEMS items of each purchase, in order: a page stays small even for a purchase
    stored with more (before the cap existed)."""
    found: dict[int, list[PurchaseItem]] = {pid: [] for pid in purchase_ids}
    if purchase_ids:
        rank = func.row_number().over(partition_by=PurchaseItem.purchase_id,
                                      order_by=(PurchaseItem.position, PurchaseItem.id))
        first = (select(PurchaseItem.id, rank.label("rank"))
                 .where(col(PurchaseItem.purchase_id).in_(purchase_ids)).subquery())
        for item in db.exec(select(PurchaseItem).join(first, first.c.id == PurchaseItem.id)
                            .where(first.c.rank <= MAX_ITEMS)
                            .order_by(PurchaseItem.purchase_id, PurchaseItem.position, PurchaseItem.id)):
            found[item.purchase_id].append(item)
    return found


def _item_count(db: Session, purchase: Purchase) -> int:
    return db.exec(select(func.count()).select_from(PurchaseItem).where(PurchaseItem.purchase_id == purchase.id)).one()


def _purchase_list(request: Request, user: User, db: Session, page: int, template: str, *conditions):
    query = (select(Purchase).where(Purchase.user_id == user.id, *conditions)
             .order_by(col(Purchase.created_at).desc(), col(Purchase.id).desc()))
    purchases, has_more = paginate(db, query, page)
    items = _items(db, [p.id for p in purchases])
    return render(request, template, {"purchases": purchases, "items": items, "page": page, "has_more": has_more},
                  user=user, db=db)


def _saved(request: Request, db: Session, purchase: Purchase, message: str) -> RedirectResponse:
    """Commit, say what happened, and back to the purchase's page (post/redirect/get)."""
    db.commit()
    flash(request, message)
    return see_other(f"/purchases/{purchase.id}")


# --- approving (the rule itself is purchaseshare.sharing) --------------------------------------


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
        sharing.approve_all(purchase, items[purchase.id])
    db.commit()
    flash(request, f"Approved {len(purchases)} purchase{'s' if len(purchases) != 1 else ''}: now on your profile."
          if purchases else "Select the purchases to approve first.")
    return see_other("/inbox")


@router.get("/purchases")
def reviewed(request: Request, user: CurrentUser, db: DbDep, page: PageDep = 1):
    return _purchase_list(request, user, db, page, "owner/purchases.html", Purchase.review != "new")


# --- manual entry (before /purchases/{id} so "new" is not taken for an id) ---------------------

# "2 x Coffee beans @ 12.50": the price may be typed with a decimal comma and grouped ("1 234,50").
ITEM_LINE = re.compile(r"^(?:(?P<qty>\d{1,7})\s*[x×*]\s+)?(?P<name>.+?)"
                       r"(?:\s+@\s*(?P<price>[-\u2212]?\d[\d.,\s'’\u00a0\u202f]*))?$")
NEW_FIELDS = ("merchant_name", "order_date", "currency", "total", "discount", "items")


def parse_item_lines(text: str, errors: Errors, locale: Locale,
                     currency: str | None) -> list[tuple[str, int, Decimal | None]]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        errors.add("items: enter at least one item, one per line", "items")
    if len(lines) > MAX_ITEMS:
        errors.add(f"items: at most {MAX_ITEMS} lines", "items")
        return []
    parsed = []
    for number, line in enumerate(lines, 1):
        match = ITEM_LINE.match(line)
        if match is None:  # pragma: no cover - the name group matches any non-empty line
            errors.messages.append(f"item line {number}: write it as '2 x Coffee beans @ 12.50'")
            continue
        label = f"item line {number}"
        name = errors.at("items", parse_name, match["name"], f"{label} name", TEXT_MAX["item_name"])
        quantity = errors.at("items", parse_quantity, match["qty"] or "1", f"{label} quantity")
        price = errors.at("items", parse_item_price, match["price"] or "", f"{label} price", locale, currency)
        if name is not None and quantity is not None:
            parsed.append((name, quantity, price))
    return parsed


def parse_item_price(text: str, label: str, locale: Locale, currency: str | None) -> Decimal | None:
    """An item's unit price: never negative - a discount is its own line (the purchase's discount)."""
    try:
        return parse_money(text, label, locale=locale, currency=currency)
    except Invalid as exc:
        if str(exc).endswith("not negative"):
            raise Invalid(f"{label}: not negative (enter a discount as the purchase's discount, not as an item)") \
                from exc
        raise


@router.get("/purchases/new")
def new_purchase_form(request: Request, user: CurrentUser, db: DbDep):
    return render(request, "owner/new_purchase.html", {"values": dict.fromkeys(NEW_FIELDS, ""), "errors": [],
                                                       "field_errors": {}}, user=user, db=db)


@router.post("/purchases/new")
def new_purchase(request: Request, user: CurrentUser, db: DbDep, form: FormDep):
    values = {name: text_field(form, name) for name in NEW_FIELDS}
    locale = request_locale(request)
    errors = Errors()
    merchant = errors.at("merchant_name", parse_name, values["merchant_name"], "merchant", TEXT_MAX["merchant"])
    order_date = errors.at("order_date", parse_date, values["order_date"], "date")
    currency = errors.at("currency", parse_currency, values["currency"])
    total = errors.at("total", parse_money, values["total"], "total", locale=locale, currency=currency)
    discount = errors.at("discount", parse_money, values["discount"], "discount", locale=locale, currency=currency)
    lines = parse_item_lines(values["items"], errors, locale, currency)
    if errors.messages:
        return render(request, "owner/new_purchase.html", {"values": values, "errors": errors.messages,
                                                           "field_errors": errors.fields},
                      status_code=400, user=user, db=db)
    line_totals = [price * qty for _, qty, price in lines if price is not None]
    if total is None and lines and len(line_totals) == len(lines):
        total = max(sum(line_totals, Decimal(0)) - (discount or 0), Decimal(0))
    purchase = Purchase(user_id=user.id, merchant_name=merchant, order_date=order_date, currency=currency,
                        total=total, discount=discount, entered_by_hand=True)
    db.add(purchase)
    db.flush()
    items = [sharing.add_item(db, purchase, name, quantity, price, position=position)
             for position, (name, quantity, price) in enumerate(lines)]
    share = user.default_share_items
    if share:
        sharing.approve_all(purchase, items)
    return _saved(request, db, purchase,
                  "Purchase added." + ("" if share else " It is private until you approve its items."))


# --- one purchase -----------------------------------------------------------------------------


def _form_values(purchase: Purchase, items: list[PurchaseItem]) -> dict[str, str]:
    def text(value: Any) -> str:
        return "" if value is None else str(value)

    values = {"merchant_name": text(purchase.merchant_name), "currency": text(purchase.currency),
              "order_date": purchase.order_date.isoformat() if purchase.order_date else "",
              "total": text(purchase.total), "discount": text(purchase.discount)}
    for item in items:
        for name in ITEM_FIELDS:
            values[f"item-{item.id}-{name}"] = text(getattr(item, name))
    return values


def _purchase_page(request: Request, user: User, db: Session, purchase: Purchase,
                   errors: Errors | None = None, submitted: dict[str, str] | None = None, status_code: int = 200):
    items = _items(db, [purchase.id])[purchase.id]
    hidden = _item_count(db, purchase) - len(items) if len(items) >= MAX_ITEMS else 0
    source = db.exec(select(RawEmail).options(defer(RawEmail.raw)).where(RawEmail.purchase_id == purchase.id, RawEmail.user_id == user.id)
                     .order_by(RawEmail.id)).all()
    values = {**_form_values(purchase, items), **(submitted or {})}
    public = sharing.is_public(purchase, items)
    return render(request, "owner/purchase.html", {
        "purchase": purchase, "items": items, "hidden_items": hidden, "emails": source, "values": values,
        "errors": errors.messages if errors else [], "field_errors": errors.fields if errors else {},
        "max_items": MAX_ITEMS,
        "public_path": f"/u/{user.handle}/p/{purchase.public_id}" if public else None, "subject": decoded_subject,
        "read": reading(purchase),
    }, status_code=status_code, user=user, db=db)


@router.get("/purchases/{purchase_id}")
def purchase_page(request: Request, purchase_id: str, user: CurrentUser, db: DbDep):
    return _purchase_page(request, user, db, owned_or_404(db, Purchase, purchase_id, user))


@router.post("/purchases/{purchase_id}/approve")
def approve_all(request: Request, purchase_id: str, user: CurrentUser, db: DbDep):
    purchase = owned_or_404(db, Purchase, purchase_id, user)
    items = _items(db, [purchase.id])[purchase.id]
    sharing.approve_all(purchase, items)
    return _saved(request, db, purchase, "Approved: every item is on your profile." if items else "Marked as reviewed.")


@router.post("/purchases/{purchase_id}/items")
def approve_items(request: Request, purchase_id: str, user: CurrentUser, db: DbDep, form: FormDep):
    purchase = owned_or_404(db, Purchase, purchase_id, user)
    items = _items(db, [purchase.id])[purchase.id]
    chosen = object_ids(form.getlist("approved")) & {item.id for item in items}
    sharing.set_approved(purchase, items, chosen)
    return _saved(request, db, purchase, f"Saved: {len(chosen)} of {len(items)} items shared." if chosen
                  else "Saved: nothing of this purchase is shared; it is private.")


@router.post("/purchases/{purchase_id}/hide-prices")
def hide_prices(request: Request, purchase_id: str, user: CurrentUser, db: DbDep, form: FormDep):
    purchase = owned_or_404(db, Purchase, purchase_id, user)
    purchase.hide_prices = text_field(form, "hide_prices") in ("1", "on", "true")
    purchase.updated_at = utcnow()
    return _saved(request, db, purchase,
                  "Prices are hidden on public pages." if purchase.hide_prices else "Prices are shown.")


@router.post("/purchases/{purchase_id}/caption")
def caption(request: Request, purchase_id: str, user: CurrentUser, db: DbDep, form: FormDep):
    purchase = owned_or_404(db, Purchase, purchase_id, user)
    text = text_field(form, "caption").replace("\r\n", "\n")
    if len(text) > TEXT_MAX["caption"]:
        errors = Errors()
        errors.add(f"caption: at most {TEXT_MAX['caption']} characters (yours has {len(text)})", "caption")
        return _purchase_page(request, user, db, purchase, errors, {"caption": text}, status_code=400)
    purchase.caption = text or None
    purchase.updated_at = utcnow()
    return _saved(request, db, purchase, "Caption saved." if text else "Caption removed.")


# --- adding, correcting and removing items ----------------------------------------------------

ITEM_FIELDS = ("name", "quantity", "unit_price", "url", "image")


def _item_parsers(label: str, locale: Locale, currency: str | None,
                  stored_price: Decimal | None = None) -> dict[str, Callable[[str], Any]]:
    """One parser per item field (ITEM_FIELDS), its messages naming the item ("item 2 price: ...").
    A negative price is refused, except one read from the email and left as it was (a discount line
    some shops list among the items: the owner may still correct the rest of the purchase)."""
    def price(text: str) -> Decimal | None:
        if stored_price is not None and stored_price < 0 and text.strip() == str(stored_price):
            return stored_price
        return parse_item_price(text, f"{label} price", locale, currency)

    return {"name": lambda v: parse_name(v, f"{label} name", TEXT_MAX["item_name"]),
            "quantity": lambda v: parse_quantity(v, f"{label} quantity"),
            "unit_price": price,
            "url": lambda v: parse_url(v, f"{label} link"),
            "image": lambda v: parse_url(v, f"{label} image", https_only=True)}


@router.post("/purchases/{purchase_id}/add-item")
def add_item(request: Request, purchase_id: str, user: CurrentUser, db: DbDep, form: FormDep):
    purchase = owned_or_404(db, Purchase, purchase_id, user)
    submitted = {f"new-{name}": text_field(form, name) for name in ITEM_FIELDS}
    errors = Errors()
    parsers = _item_parsers("new item", request_locale(request), purchase.currency)
    found = {name: errors.at(f"new-{name}", parse, submitted[f"new-{name}"]) for name, parse in parsers.items()}
    if _item_count(db, purchase) >= MAX_ITEMS:
        errors.add(f"new item: a purchase holds at most {MAX_ITEMS} items; remove one first")
    if errors.messages:
        return _purchase_page(request, user, db, purchase, errors, submitted, status_code=400)
    item = sharing.add_item(db, purchase, **found)
    return _saved(request, db, purchase, f"Added “{item.name}”. It is private until you tick it under "
                                         "“What to share”.")


@router.post("/purchases/{purchase_id}/items/{item_id}/remove")
def remove_item(request: Request, purchase_id: str, item_id: str, user: CurrentUser, db: DbDep):
    purchase = owned_or_404(db, Purchase, purchase_id, user)
    item = db.get(PurchaseItem, object_id(item_id))
    if item is None or item.purchase_id != purchase.id:  # an item of another purchase: the same 404
        raise not_found()
    sharing.remove_item(db, purchase, item)
    return _saved(request, db, purchase, f"Removed “{item.name}”. It is no longer part of this purchase.")


@router.post("/purchases/{purchase_id}/edit")
def correct(request: Request, purchase_id: str, user: CurrentUser, db: DbDep, form: FormDep):
    purchase = owned_or_404(db, Purchase, purchase_id, user)
    items = _items(db, [purchase.id])[purchase.id]
    submitted = {key: text_field(form, key) for key in _form_values(purchase, items) if key in form}
    errors = Errors()
    locale = request_locale(request)
    changes: dict[str, Any] = {}
    if "merchant_name" in form:
        changes["merchant_name"] = errors.at("merchant_name", parse_name, submitted["merchant_name"], "merchant",
                                             TEXT_MAX["merchant"], required=False)
    if "order_date" in form:
        changes["order_date"] = errors.at("order_date", parse_date, submitted["order_date"], "order date")
    if "currency" in form:
        changes["currency"] = errors.at("currency", parse_currency, submitted["currency"])
    # Amounts are kept to the minor units of the currency they will have.
    currency = changes.get("currency") if "currency" in form else purchase.currency
    for name in ("total", "discount"):
        if name in form:
            changes[name] = errors.at(name, parse_money, submitted[name], name, locale=locale, currency=currency)
    item_changes: dict[int, dict[str, Any]] = {}
    for number, item in enumerate(items, 1):
        key = f"item-{item.id}-"
        parsers = _item_parsers(f"item {number}", locale, currency, item.unit_price)
        item_changes[item.id] = {name: errors.at(key + name, parse, submitted[key + name])
                                 for name, parse in parsers.items() if key + name in form}
    if errors.messages:
        return _purchase_page(request, user, db, purchase, errors, submitted, status_code=400)
    now = utcnow()
    if any(item_changes[item.id].get("image", item.image) != item.image for item in items):
        queue_sync(db, purchase.id)  # an image URL changed: the worker stores (or drops) it after the commit
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
    return _saved(request, db, purchase, "Corrections saved." + _learned(db, user, purchase))


def _learned(db: Session, user: User, purchase: Purchase) -> str:
    """Learn the email's layout from what the owner saved (purchaseshare.learning), read their
    other emails from that sender again, and say so."""
    lesson = learning.teach(db, user.id or 0, purchase)
    if lesson is None or lesson.template_id is None:
        return ""
    from workers.actors import reparse_email

    for raw_id in lesson.caught_up:  # after teach's commit: the workers see the template
        reparse_email.send(raw_id)
    again = (f" {len(lesson.caught_up)} of your other emails from this sender are being read again."
             if lesson.caught_up else "")
    return f" The next receipts laid out like this one will be read the same way.{again}"


@router.post("/purchases/{purchase_id}/reject")
def reject(request: Request, purchase_id: str, user: CurrentUser, db: DbDep):
    purchase = owned_or_404(db, Purchase, purchase_id, user)
    sharing.reject(purchase, _items(db, [purchase.id])[purchase.id])
    db.commit()
    flash(request, "Rejected: this purchase stays private and out of your inbox.")
    return see_other("/inbox")


@router.post("/purchases/{purchase_id}/delete")
def delete_purchase_route(request: Request, purchase_id: str, user: CurrentUser, db: DbDep):
    # The email stays (listed under Emails); it can be parsed again to bring the purchase back.
    delete_purchase(db, owned_or_404(db, Purchase, purchase_id, user))
    flash(request, "Purchase deleted. Its email is still listed under Emails.")
    return see_other("/inbox")
