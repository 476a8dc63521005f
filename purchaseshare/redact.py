"""Last line of defence for text that reaches a public surface: even an approved item name or a
caption must not carry an email address, a phone number, card digits or the order's number
(a parser can misread a line; an owner can paste one). Public views pass every string here.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

HIDDEN = "[hidden]"
# The patterns must stay linear on hostile text (an item name of 5 000 "x", a caption of digits):
# runs are taken whole (possessive: they cannot end inside themselves anyway), a masked card only
# starts where a mask run starts, and an address's local part is at most 64 characters (RFC 5321;
# an address behind a longer run is still hidden, with the run's last 64 characters).
EMAIL = re.compile(r"[\w.+'-]{1,64}+@[\w-]++(?:\.[\w-]++)+", re.UNICODE)
# 8+ digits, possibly grouped by spaces/dashes/dots: card numbers, phone numbers, account ids.
LONG_NUMBER = re.compile(r"(?<![\w])\+?\d(?:[\s().-]{0,2}\d){7,}(?![\w])")
# Masked card numbers as receipts print them: "**** 1234", "ending in 1234", "xxxx-1234".
MASKED_CARD = re.compile(r"(?<![*xX•])(?:[*xX•]{2,}+[\s-]?){1,4}+\d{2,4}"
                         r"|\b(?:ending|endet|finissant|terminant)\s+(?:in|mit|par|en)\s+\d{2,4}\b", re.IGNORECASE)
# Keys of product-page links that identify the product (kept); every other parameter is dropped.
PRODUCT_QUERY_KEYS = frozenset({"id", "item", "itemid", "p", "pid", "product", "productid", "sku", "asin", "v",
                                "variant", "item_id", "product_id", "pd_rd_i"})


# Public pages show the same strings on every request: the (pure) results are memoized per
# (text, secrets). The key is the input itself, so an edited string is simply a new key.
CACHE_SIZE = 1 << 15


def redact(text: str | None, secrets: tuple[str | None, ...] = ()) -> str | None:
    """The text with private-looking strings (and any of `secrets`, e.g. the order number) hidden."""
    if not text:
        return text
    return _redact(text, secrets)


@lru_cache(maxsize=CACHE_SIZE)
def _redact(text: str, secrets: tuple[str | None, ...]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = re.sub(re.escape(secret), HIDDEN, text, flags=re.IGNORECASE)
    text = EMAIL.sub(HIDDEN, text)
    text = MASKED_CARD.sub(HIDDEN, text)
    return LONG_NUMBER.sub(HIDDEN, text)


def public_url(url: str | None, secrets: tuple[str | None, ...] = ()) -> str | None:
    """A product/image link safe to publish: http(s) only, no credentials, no fragment, only
    product-identifying query parameters, no email address or order number in it."""
    if not url:
        return None
    return _public_url(url, secrets)


@lru_cache(maxsize=CACHE_SIZE)
def _public_url(url: str, secrets: tuple[str | None, ...]) -> str | None:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=False) if k.lower() in PRODUCT_QUERY_KEYS]
    cleaned = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
    # Product ids are long numbers (eBay, Walmart), so digits stay; an email or the order
    # number anywhere in the link drops the link.
    lowered = cleaned.lower()
    if EMAIL.search(cleaned) or any(s and len(s) >= 4 and s.lower() in lowered for s in secrets):
        return None
    return cleaned
