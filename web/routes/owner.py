"""The owner's side: the inbox of new (private) purchases, approving item by item, corrections,
received emails and retries, manual entry, .eml upload, settings, export and account deletion.

Every object here is looked up by (id, owner): anyone else gets the same 404 as for an id that
does not exist. Nothing on these pages is public; the public view is purchaseshare.public.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from pathlib import PurePath
from typing import Annotated, Any
from urllib.parse import urlsplit

import babel.numbers
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func
from sqlmodel import Session, col, or_, select
from starlette.datastructures import FormData, UploadFile

from purchaseshare.account import delete_account, delete_purchase, export_zip
from purchaseshare.attribution import read_headers
from purchaseshare.clock import utcnow
from purchaseshare.mailstore import store_raw
from purchaseshare.models import OutboxMail, Purchase, PurchaseItem, RawEmail, RawStatus, User
from purchaseshare.pipeline import MAX_BYTES
from purchaseshare.users import HANDLE, get_by_handle
from web.deps import CurrentUser, DbDep, SettingsDep, flash, not_found, render
from web.security import check_password

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
MAX_UPLOAD_FILES = 20
CURRENCIES = frozenset(babel.numbers.list_currencies())
MONEY = re.compile(r"^-?\d{1,12}(?:\.\d{1,4})?$")
PageDep = Annotated[int, Query(ge=1, le=100_000)]
# Emails the owner should look at: nothing came out of them, or their purchase was deleted.
ATTENTION = (RawStatus.FAILED.value, RawStatus.UNPARSED.value, RawStatus.NOT_PURCHASE.value,
             RawStatus.RECEIVED.value)


async def form_data(request: Request) -> FormData:
    """The submitted form (already read by the CSRF check; Starlette caches it)."""
    return await request.form()


FormDep = Annotated[FormData, Depends(form_data)]


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def decoded_subject(text: str | None) -> str:
    """A stored Subject header as people read it (RFC 2047 words decoded)."""
    if not text:
        return "(no subject)"
    try:
        return str(make_header(decode_header(text)))
    except (HeaderParseError, LookupError, UnicodeDecodeError):
        return text


def _back(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


# --- validation (one clear message per bad field) ---------------------------------------------


class Invalid(ValueError):
    pass


def parse_money(text: str, label: str, *, negative: bool = False) -> Decimal | None:
    text = text.strip().replace(" ", "")
    if not text:
        return None
    if not MONEY.match(text) or (text.startswith("-") and not negative):
        raise Invalid(f"{label}: enter an amount like 12.34 (digits, a dot, up to 4 decimals"
                      f"{'' if negative else ', not negative'})")
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already checked it
        raise Invalid(f"{label}: not an amount") from exc


def parse_currency(text: str) -> str | None:
    code = text.strip().upper()
    if not code:
        return None
    if code not in CURRENCIES:
        raise Invalid(f"currency: {text.strip()!r} is not an ISO 4217 code (like EUR, USD, GBP)")
    return code


def parse_date(text: str, label: str = "date") -> date | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = date.fromisoformat(text)
    except ValueError as exc:
        raise Invalid(f"{label}: enter a date as YYYY-MM-DD") from exc
    if value.year < 1970 or value > date.today() + timedelta(days=366):
        raise Invalid(f"{label}: {value.isoformat()} is not a plausible purchase date")
    return value


def parse_quantity(text: str, label: str) -> int:
    text = text.strip() or "1"
    if not text.isdigit() or not 1 <= int(text) <= 1_000_000:
        raise Invalid(f"{label}: a whole number from 1")
    return int(text)


def parse_url(text: str, label: str, *, https_only: bool = False) -> str | None:
    text = text.strip()
    if not text:
        return None
    parts = urlsplit(text)
    schemes = ("https",) if https_only else ("http", "https")
    if parts.scheme.lower() not in schemes or not parts.netloc or any(c.isspace() for c in text) or len(text) > 2000:
        raise Invalid(f"{label}: enter a full {'https' if https_only else 'http(s)'} address, like https://example.com/…")
    return text


def parse_name(text: str, label: str, limit: int = 500, required: bool = True) -> str | None:
    text = " ".join(text.split())
    if not text:
        if required:
            raise Invalid(f"{label}: required")
        return None
    if len(text) > limit:
        raise Invalid(f"{label}: at most {limit} characters")
    return text


@dataclass
class Errors:
    messages: list[str] = field(default_factory=list)

    def check(self, fn, *args, **kwargs) -> Any:
        try:
            return fn(*args, **kwargs)
        except Invalid as exc:
            self.messages.append(str(exc))
            return None


# --- lookups ----------------------------------------------------------------------------------


def _id(text: str) -> int:
    if not text.isdigit() or len(text) > 15:
        raise not_found()
    return int(text)


def own_purchase(db: Session, user: User, purchase_id: str) -> Purchase:
    purchase = db.get(Purchase, _id(purchase_id))
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


def _page(db: Session, query, page: int) -> tuple[list, bool]:
    rows = list(db.exec(query.offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).all())
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def _purchase_list(request: Request, user: User, db: Session, page: int, template: str, *conditions):
    query = (select(Purchase).where(Purchase.user_id == user.id, *conditions)
             .order_by(col(Purchase.created_at).desc(), col(Purchase.id).desc()))
    purchases, has_more = _page(db, query, page)
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
    ids = {int(v) for v in form.getlist("ids") if isinstance(v, str) and v.isdigit() and len(v) <= 15}
    # Only the user's own purchases: other ids are ignored, exactly like ids that do not exist.
    purchases = db.exec(select(Purchase).where(col(Purchase.id).in_(ids), Purchase.user_id == user.id)).all() if ids else []
    items = _items(db, [p.id for p in purchases])
    for purchase in purchases:
        set_approved(purchase, items[purchase.id], {item.id for item in items[purchase.id]})
    db.commit()
    flash(request, f"Approved {len(purchases)} purchase{'s' if len(purchases) != 1 else ''}: now on your profile."
          if purchases else "Select the purchases to approve first.")
    return _back("/inbox")


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
    values = {name: _text(form, name) for name in ("merchant_name", "order_date", "currency", "total", "items")}
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
    return _back(f"/purchases/{purchase.id}")


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
    return _back(f"/purchases/{purchase.id}")


@router.post("/purchases/{purchase_id}/items")
def approve_items(request: Request, purchase_id: str, user: CurrentUser, db: DbDep, form: FormDep):
    purchase = own_purchase(db, user, purchase_id)
    items = _items(db, [purchase.id])[purchase.id]
    own_ids = {item.id for item in items}
    chosen = {int(v) for v in form.getlist("approved") if isinstance(v, str) and v.isdigit() and len(v) <= 15}
    set_approved(purchase, items, chosen & own_ids)
    db.commit()
    shared = len(chosen & own_ids)
    flash(request, f"Saved: {shared} of {len(items)} items shared." if shared
          else "Saved: nothing of this purchase is shared; it is private.")
    return _back(f"/purchases/{purchase.id}")


@router.post("/purchases/{purchase_id}/hide-prices")
def hide_prices(request: Request, purchase_id: str, user: CurrentUser, db: DbDep, form: FormDep):
    purchase = own_purchase(db, user, purchase_id)
    purchase.hide_prices = _text(form, "hide_prices") in ("1", "on", "true")
    purchase.updated_at = utcnow()
    db.commit()
    flash(request, "Prices are hidden on public pages." if purchase.hide_prices else "Prices are shown.")
    return _back(f"/purchases/{purchase.id}")


@router.post("/purchases/{purchase_id}/caption")
def caption(request: Request, purchase_id: str, user: CurrentUser, db: DbDep, form: FormDep):
    purchase = own_purchase(db, user, purchase_id)
    text = _text(form, "caption")
    if len(text) > 1000:
        return _purchase_page(request, user, db, purchase, ["caption: at most 1000 characters"], status_code=400)
    purchase.caption = text or None
    purchase.updated_at = utcnow()
    db.commit()
    flash(request, "Caption saved." if text else "Caption removed.")
    return _back(f"/purchases/{purchase.id}")


@router.post("/purchases/{purchase_id}/edit")
def correct(request: Request, purchase_id: str, user: CurrentUser, db: DbDep, form: FormDep):
    purchase = own_purchase(db, user, purchase_id)
    items = _items(db, [purchase.id])[purchase.id]
    submitted = {key: _text(form, key) for key in _form_values(purchase, items) if key in form}
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
    return _back(f"/purchases/{purchase.id}")


@router.post("/purchases/{purchase_id}/reject")
def reject(request: Request, purchase_id: str, user: CurrentUser, db: DbDep):
    purchase = own_purchase(db, user, purchase_id)
    set_approved(purchase, _items(db, [purchase.id])[purchase.id], set())
    purchase.review = "rejected"  # never public, whatever its items say
    db.commit()
    flash(request, "Rejected: this purchase stays private and out of your inbox.")
    return _back("/inbox")


@router.post("/purchases/{purchase_id}/delete")
def delete_purchase_route(request: Request, purchase_id: str, user: CurrentUser, db: DbDep):
    # The email stays (listed under Emails); it can be parsed again to bring the purchase back.
    delete_purchase(db, own_purchase(db, user, purchase_id))
    flash(request, "Purchase deleted. Its email is still listed under Emails.")
    return _back("/inbox")


# --- received emails --------------------------------------------------------------------------


@router.get("/emails")
def emails(request: Request, user: CurrentUser, db: DbDep, page: PageDep = 1):
    deleted = (RawEmail.status == RawStatus.PARSED.value) & col(RawEmail.purchase_id).is_(None)
    query = (select(RawEmail).where(RawEmail.user_id == user.id, or_(col(RawEmail.status).in_(ATTENTION), deleted))
             .order_by(col(RawEmail.received_at).desc(), col(RawEmail.id).desc()))
    rows, has_more = _page(db, query, page)
    return render(request, "owner/emails.html", {"emails": rows, "page": page, "has_more": has_more,
                                                 "subject": decoded_subject},
                  user=user, db=db)


def _queue_reparse(db: Session, raw: RawEmail) -> None:
    if raw.status in (RawStatus.PARSED.value, RawStatus.APPLIED.value) and raw.purchase_id is None:
        # Its purchase was deleted: parse it from scratch so the purchase comes back to the inbox.
        raw.status, raw.reason = RawStatus.RECEIVED.value, None
    raw.queued_at = utcnow()
    db.commit()
    from workers.actors import reparse_email

    reparse_email.send(raw.id)  # after the commit: the worker must see what we wrote


@router.post("/emails/{raw_id}/retry")
def retry_email(request: Request, raw_id: str, user: CurrentUser, db: DbDep):
    raw = db.get(RawEmail, _id(raw_id))
    if raw is None or raw.user_id != user.id:
        raise not_found()
    _queue_reparse(db, raw)
    flash(request, "Queued: this email will be read again in a moment.")
    return _back("/emails")


@router.get("/operator/quarantine")
def quarantine(request: Request, user: CurrentUser, db: DbDep, page: PageDep = 1):
    if not user.is_operator:
        raise not_found()
    query = (select(RawEmail).where(RawEmail.status == RawStatus.QUARANTINED.value)
             .order_by(col(RawEmail.received_at).desc(), col(RawEmail.id).desc()))
    rows, has_more = _page(db, query, page)
    return render(request, "owner/quarantine.html", {"emails": rows, "page": page, "has_more": has_more,
                                                     "subject": decoded_subject},
                  user=user, db=db)


@router.post("/operator/quarantine/{raw_id}/retry")
def quarantine_retry(request: Request, raw_id: str, user: CurrentUser, db: DbDep):
    raw = db.get(RawEmail, _id(raw_id))
    if not user.is_operator or raw is None or raw.status != RawStatus.QUARANTINED.value:
        raise not_found()
    _queue_reparse(db, raw)  # attributed again: the sender may have verified the address since
    flash(request, "Queued for attribution and parsing again.")
    return _back("/operator/quarantine")


@router.get("/operator/outbox")
def outbox(request: Request, user: CurrentUser, db: DbDep, settings: SettingsDep, page: PageDep = 1):
    """Every mail we sent or hold. With no SMTP_URL this is where it stays (and where the demo's
    verification and reset links are read): operators only, since it holds other people's links."""
    if not user.is_operator:
        raise not_found()
    query = select(OutboxMail).order_by(col(OutboxMail.created_at).desc(), col(OutboxMail.id).desc())
    rows, has_more = _page(db, query, page)
    return render(request, "owner/outbox.html", {"mails": rows, "page": page, "has_more": has_more,
                                                 "smtp": bool(settings.smtp_url)}, user=user, db=db)


# --- upload -----------------------------------------------------------------------------------


def looks_like_email(data: bytes) -> bool:
    """RFC 5322 header fields up front: a From plus one more of the usual ones."""
    if not data.strip() or b"\x00" in data[:8192]:
        return False
    headers = read_headers(data[:65536])
    names = {name.lower() for name in headers}
    return "from" in names and bool(names & {"subject", "date", "message-id", "to"})


@dataclass
class UploadResult:
    name: str
    status: str
    detail: str = ""
    raw_id: int | None = None


def _read_limited(upload: UploadFile, limit: int) -> bytes:
    upload.file.seek(0)
    return upload.file.read(limit + 1)


@router.get("/upload")
def upload_form(request: Request, user: CurrentUser, db: DbDep):
    return render(request, "owner/upload.html", {"results": [], "errors": [], "max_mb": MAX_BYTES // 2**20},
                  user=user, db=db)


@router.post("/upload")
def upload(request: Request, user: CurrentUser, db: DbDep, form: FormDep):
    files = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]
    errors: list[str] = []
    if not files:
        errors.append("Choose at least one .eml file.")
    elif len(files) > MAX_UPLOAD_FILES:
        errors.append(f"At most {MAX_UPLOAD_FILES} files at once.")
    results: list[UploadResult] = []
    queue: list[int] = []
    for upload_file in files if not errors else []:
        name = PurePath((upload_file.filename or "upload.eml").replace("\\", "/")).name[:200] or "upload.eml"
        data = _read_limited(upload_file, MAX_BYTES)
        if len(data) > MAX_BYTES:
            results.append(UploadResult(name, "rejected", f"larger than {MAX_BYTES // 2**20} MB"))
            continue
        if not looks_like_email(data):
            results.append(UploadResult(name, "rejected", "not an email: save the message as .eml "
                                                          "(\"Save as\" or \"Download message\" in your mail app)"))
            continue
        stored = store_raw(db, data, source=f"upload:{name}", user_id=user.id, attributed_by="upload")
        raw = stored.raw_email
        if stored.created:
            if raw.status == RawStatus.RECEIVED.value:
                queue.append(raw.id)
                results.append(UploadResult(name, "queued", "stored; it will be read in a moment", raw.id))
            else:
                results.append(UploadResult(name, raw.status, raw.reason or "", raw.id))
        elif raw.user_id == user.id:
            results.append(UploadResult(name, "duplicate", f"already received ({raw.status}); not added again", raw.id))
        elif raw.user_id is None and raw.status == RawStatus.QUARANTINED.value:
            # Nobody we knew sent it before; the user now hands it in themselves: it is theirs.
            raw.user_id, raw.attributed_by = user.id, "upload"
            raw.status, raw.reason, raw.attempts = RawStatus.RECEIVED.value, None, 0
            db.commit()
            queue.append(raw.id)
            results.append(UploadResult(name, "queued", "stored; it will be read in a moment", raw.id))
        else:  # someone else's email: say nothing about it
            results.append(UploadResult(name, "duplicate", "this email was already received; not added again"))
    if queue:
        from workers.actors import enqueue_parse

        enqueue_parse(db, queue)  # the same path as IMAP mail, after the commit
    status = 400 if errors or (results and all(r.status == "rejected" for r in results)) else 200
    return render(request, "owner/upload.html", {"results": results, "errors": errors,
                                                 "max_mb": MAX_BYTES // 2**20},
                  status_code=status, user=user, db=db)


# --- settings, export, delete -----------------------------------------------------------------


def _settings_values(user: User) -> dict[str, Any]:
    return {"handle": user.handle, "display_name": user.display_name, "avatar_url": user.avatar_url or "",
            "bio": user.bio, "default_share_items": user.default_share_items, "allow_indexing": user.allow_indexing,
            "raw_retention_days": "" if user.raw_retention_days is None else str(user.raw_retention_days)}


@router.get("/settings")
def settings_page(request: Request, user: CurrentUser, db: DbDep):
    return render(request, "owner/settings.html", {"values": _settings_values(user), "errors": []}, user=user, db=db)


@router.post("/settings")
def save_settings(request: Request, user: CurrentUser, db: DbDep, form: FormDep):
    values: dict[str, Any] = {name: _text(form, name) for name in
                              ("handle", "display_name", "avatar_url", "bio", "raw_retention_days")}
    values["default_share_items"] = "default_share_items" in form
    values["allow_indexing"] = "allow_indexing" in form
    errors = Errors()
    handle = values["handle"].lower()
    if handle != user.handle:
        if not HANDLE.match(handle):
            errors.messages.append("handle: 1-40 letters, digits, '-' or '_', starting and ending with a letter or digit")
        elif get_by_handle(db, handle) is not None:
            errors.messages.append(f"handle: {handle} is taken")
    display_name = errors.check(parse_name, values["display_name"], "display name", 80, required=False)
    avatar = errors.check(parse_url, values["avatar_url"], "avatar", https_only=True)
    if len(values["bio"]) > 2000:
        errors.messages.append("bio: at most 2000 characters")
    days_text, days = values["raw_retention_days"], None
    if days_text:
        if not days_text.isdigit() or not 1 <= int(days_text) <= 36500:
            errors.messages.append("raw-mail retention: a number of days from 1, or empty to keep until you delete")
        else:
            days = int(days_text)
    if errors.messages:
        return render(request, "owner/settings.html", {"values": values, "errors": errors.messages},
                      status_code=400, user=user, db=db)
    user.handle, user.display_name, user.avatar_url = handle, display_name or handle, avatar
    user.bio, user.raw_retention_days = values["bio"], days
    user.default_share_items, user.allow_indexing = values["default_share_items"], values["allow_indexing"]
    db.add(user)
    db.commit()
    flash(request, "Settings saved.")
    return _back("/settings")


@router.get("/settings/export")
def export(user: CurrentUser, db: DbDep):
    body = export_zip(db, user)
    name = f"purchaseshare-{user.handle}-{date.today().isoformat()}.zip"
    return Response(body, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/settings/delete")
def delete_form(request: Request, user: CurrentUser, db: DbDep):
    counts = {
        "purchases": db.exec(select(func.count()).select_from(Purchase).where(Purchase.user_id == user.id)).one(),
        "emails": db.exec(select(func.count()).select_from(RawEmail).where(RawEmail.user_id == user.id)).one(),
    }
    return render(request, "owner/delete.html", {"errors": [], "counts": counts}, user=user, db=db)


@router.post("/settings/delete")
def delete_everything(request: Request, user: CurrentUser, db: DbDep, form: FormDep):
    errors = []
    if _text(form, "handle").lower() != user.handle:
        errors.append("Type your handle exactly to confirm.")
    password = form.get("password")
    if not isinstance(password, str) or not check_password(user.password_hash, password):
        errors.append("The password is not right.")
    if errors:
        return render(request, "owner/delete.html", {"errors": errors, "counts": None}, status_code=400,
                      user=user, db=db)
    delete_account(db, user)
    request.session.clear()
    flash(request, "Your account and everything in it were deleted.")
    return _back("/")
