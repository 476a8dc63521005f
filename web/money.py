"""Amounts as people type them: "12.50", "12,50", "1 234,50", "1.234,50" or "1,234.50", read with
the visitor's locale (babel) where a lone mark is ambiguous ("1,234": a thousand in English,
one and a bit in German), and kept to the currency's minor units (2 for EUR, 0 for JPY).
Decimal throughout; nothing is rounded: an amount with more decimals than its currency is refused.

And amounts as people read them (`format_money`): in the VIEWER's locale, "€14.90" in English,
"14,90 €" in French or German, "CA$12.00" for Canadian dollars seen from the US."""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache

import babel.numbers
from babel import Locale, UnknownLocaleError
from fastapi import Request

DEFAULT_LOCALE = Locale.parse("en")
MAX_INTEGER_DIGITS = 12
# Group separators people type: spaces (also no-break and narrow no-break) and apostrophes (de-CH).
_GROUPING_SPACES = re.compile(r"[\s\u00a0\u202f'’]")
_AMOUNT = re.compile(r"(-)?(\d[\d.,]*)")
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")


class AmountError(ValueError):
    """Why the text is not an amount (a sentence fragment, the field's label is added by the caller)."""


def request_locale(request: Request) -> Locale:
    """The visitor's first Accept-Language that babel knows (English when none)."""
    return header_locale(request.headers.get("accept-language", ""))


@lru_cache(maxsize=512)  # browsers send a handful of distinct headers; pages and the page cache ask per request
def header_locale(header: str) -> Locale:
    """The first language of an Accept-Language header that babel knows (English when none)."""
    header = header[:200]
    tags = []
    for index, part in enumerate(header.split(",")[:8]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        if _LANGUAGE_TAG.fullmatch(tag) and weight > 0:
            tags.append((-weight, index, tag))
    for _, _, tag in sorted(tags):
        try:
            return Locale.parse(tag, sep="-")
        except (UnknownLocaleError, ValueError):
            continue
    return DEFAULT_LOCALE


def minor_digits(currency: str | None) -> int:
    """Decimals of the currency's minor unit (babel's CLDR data); 2 while the currency is unknown."""
    return babel.numbers.get_currency_precision(currency) if currency else 2


def _grouped(text: str, mark: str) -> str | None:
    """Digits of `text` read as thousands groups split by `mark` ("1,234,567"), else None."""
    groups = text.split(mark)
    if not 1 <= len(groups[0]) <= 3 or groups[0].startswith("0") or any(len(g) != 3 for g in groups[1:]):
        return None
    return "".join(groups)


def _plain(digits: str, decimal_symbol: str) -> str | None:
    """A plain "1234.5" string for a typed number, or None when its marks cannot be read."""
    last = max(digits.rfind("."), digits.rfind(","))
    if last < 0:
        return digits
    mark, whole, fraction = digits[last], digits[:last], digits[last + 1:]
    other = "," if mark == "." else "."
    if mark in whole:  # the same mark twice: it groups thousands, there is no fraction
        return _grouped(digits, mark) if other not in digits else None
    if not fraction:
        return None
    if len(fraction) == 3 and other not in whole and mark != decimal_symbol:
        grouped = _grouped(digits, mark)  # "1,234" where the comma is not the decimal mark
        if grouped is not None:
            return grouped
    if other in whole:
        whole = _grouped(whole, other) or ""
        if not whole:
            return None
    return f"{whole}.{fraction}"


def parse_amount(text: str, *, locale: Locale = DEFAULT_LOCALE, currency: str | None = None,
                 negative: bool = False) -> Decimal | None:
    """The amount typed, quantized to the currency's minor units; None for an empty field.
    Raises AmountError for anything else (negative ones too, unless `negative`)."""
    text = _GROUPING_SPACES.sub("", text.strip()).replace("\u2212", "-")  # U+2212 MINUS SIGN
    if not text:
        return None
    found = _AMOUNT.fullmatch(text)
    plain = _plain(found.group(2), babel.numbers.get_decimal_symbol(locale)) if found else None
    if found is None or plain is None or len(plain.split(".")[0].lstrip("0")) > MAX_INTEGER_DIGITS:
        raise AmountError("enter an amount like 12.34 or 12,34")
    if found.group(1) and not negative:
        raise AmountError("not negative")
    value = Decimal(("-" if found.group(1) else "") + plain)
    digits = minor_digits(currency)
    exact = value.quantize(Decimal(1).scaleb(-digits))
    if exact != value:
        unit = f"{currency} amounts" if currency else "amounts"
        raise AmountError(f"{unit} have {'no decimals' if digits == 0 else f'at most {digits} decimals'}")
    return exact


def format_money(amount: Decimal, currency: str | None, locale: Locale = DEFAULT_LOCALE) -> str:
    """`amount` as the viewer's locale writes money: at least the currency's minor digits, and every
    digit the amount has beyond them (a 1.799 per litre price is not rounded to 1.80). An unknown
    currency is a plain number with two decimals."""
    if isinstance(amount, Decimal):  # memoized by its exact text: Decimal("1.5") == Decimal("1.50"), written apart
        return _format_money_text(str(amount), currency, locale)
    return _format_money(amount, currency, locale)


@lru_cache(maxsize=8192)  # pages write the same few prices again and again (babel takes ~15 µs each)
def _format_money_text(amount: str, currency: str | None, locale: Locale) -> str:
    return _format_money(Decimal(amount), currency, locale)


def _format_money(amount: Decimal, currency: str | None, locale: Locale) -> str:
    minor = Decimal(1).scaleb(-minor_digits(currency))
    if amount == amount.quantize(minor):  # "14.9000" as stored: only zeros beyond the minor unit
        amount = amount.quantize(minor)
    if currency:
        return babel.numbers.format_currency(amount, currency, locale=locale, decimal_quantization=False)
    return babel.numbers.format_decimal(amount, format="#,##0.00", locale=locale, decimal_quantization=False)
