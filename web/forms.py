"""Form handling shared by the owner's pages: reading fields, one clear message per bad field,
object ids from URLs, pagination. Amounts are Decimal, currencies ISO 4217, links http(s)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from typing import Annotated, Any, Protocol, TypeVar
from urllib.parse import urlsplit

import babel.numbers
from babel import Locale
from fastapi import Depends, Query, Request
from fastapi.responses import RedirectResponse
from sqlmodel import Session
from starlette.datastructures import FormData

from purchaseshare.models import User
from web.deps import not_found
from web.limits import read_form
from web.money import DEFAULT_LOCALE, AmountError, parse_amount

PAGE_SIZE = 20
CURRENCIES = frozenset(babel.numbers.list_currencies())
PageDep = Annotated[int, Query(ge=1, le=100_000)]


async def form_data(request: Request) -> FormData:
    """The submitted form (already read by the CSRF check; Starlette caches it)."""
    return await read_form(request)


FormDep = Annotated[FormData, Depends(form_data)]


def text_field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def typed_length(text: str) -> int:
    """Characters as the form counted them (maxlength): a line break is one, though sent as CR LF."""
    return len(text.replace("\r\n", "\n").strip())


def decoded_subject(text: str | None) -> str:
    """A stored Subject header as people read it (RFC 2047 words decoded)."""
    if not text:
        return "(no subject)"
    try:
        return str(make_header(decode_header(text)))
    except (HeaderParseError, LookupError, UnicodeDecodeError):
        return text


def see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


_ROW_ID = re.compile(r"[0-9]{1,15}")  # ASCII digits only: str.isdigit() also takes "²", which int() refuses


def parse_id(text: object) -> int | None:
    """A row id from a URL or form field; None for anything else (too long for the database too)."""
    return int(text) if isinstance(text, str) and _ROW_ID.fullmatch(text) else None


def object_id(text: str) -> int:
    """A row id from the URL, or the 404 that a missing (or someone else's) row gets."""
    found = parse_id(text)
    if found is None:
        raise not_found()
    return found


class _Owned(Protocol):
    user_id: Any


Owned = TypeVar("Owned", bound=_Owned)


def owned_or_404(db: Session, model: type[Owned], row_id: str, user: User) -> Owned:
    """The signed-in user's row with this id from the URL. A missing row and someone else's get
    the same 404: ids reveal nothing. The one lookup every owner-only route uses."""
    row = db.get(model, object_id(row_id))
    if row is None or row.user_id != user.id:
        raise not_found()
    return row


def object_ids(values: list) -> set[int]:
    """The valid row ids among a form's repeated field; the rest are ignored."""
    return {found for value in values if (found := parse_id(value)) is not None}


def paginate(db: Session, query, page: int) -> tuple[list, bool]:
    rows = list(db.exec(query.offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).all())
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


# --- validation (one clear message per bad field) ---------------------------------------------


class Invalid(ValueError):
    pass


def parse_money(text: str, label: str, *, negative: bool = False, locale: Locale = DEFAULT_LOCALE,
                currency: str | None = None) -> Decimal | None:
    """An amount in the visitor's notation, kept to the currency's minor units (web.money)."""
    try:
        return parse_amount(text, locale=locale, currency=currency, negative=negative)
    except AmountError as exc:
        raise Invalid(f"{label}: {exc}") from exc


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
    """Every message (listed at the top of the form) and, by field name, the one shown beside it."""

    messages: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)

    def add(self, message: str, at: str | None = None) -> None:
        self.messages.append(message)
        if at is not None:
            self.fields.setdefault(at, message)

    def check(self, fn, *args, **kwargs) -> Any:
        try:
            return fn(*args, **kwargs)
        except Invalid as exc:
            self.messages.append(str(exc))
            return None

    def at(self, name: str, fn, *args, **kwargs) -> Any:
        """`check`, remembering the message for the form field `name`."""
        try:
            return fn(*args, **kwargs)
        except Invalid as exc:
            self.add(str(exc), name)
            return None
