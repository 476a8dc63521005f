"""Last line of defence for text that reaches a public surface: even an approved item name or a
caption must not carry an email address, a phone number, card digits, the order's number or the
buyer's own name and address (a parser can misread a line; an owner can paste one). Public views
pass every string here, and every link through `public_url`.

Matching is done on FOLDED views of the text (Unicode compatibility forms, case, accents,
lookalike letters, zero-width and bidi characters and separators taken away), so that
"4111 / 1111 / 1111 / 1111", "Voucher_4111111111111111", fullwidth digits or an order number
typed with a U+2011 hyphen are the same string as the plain one; what is hidden is the matching
stretch of the ORIGINAL text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

HIDDEN = "[hidden]"
# The patterns must stay linear on hostile text (an item name of 5 000 "x", a caption of digits):
# runs are taken whole (possessive: they cannot end inside themselves anyway), a masked card only
# starts where a mask run starts, and an address's local part is at most 64 characters (RFC 5321;
# an address behind a longer run is still hidden, with the run's last 64 characters).
EMAIL = re.compile(r"[\w.+'-]{1,64}+@[\w-]++(?:\.[\w-]++)+", re.UNICODE)
# Masked card numbers as receipts print them: "**** 1234", "ending in 1234", "xxxx-1234".
MASKED_CARD = re.compile(r"(?<![*xX•])(?:[*xX•]{2,}+[\s-]?){1,4}+\d{2,4}"
                         r"|\b(?:ending|endet|finissant|terminant)\s+(?:in|mit|par|en)\s+\d{2,4}\b", re.IGNORECASE)
# Keys of product-page links that identify the product (kept); every other parameter is dropped.
PRODUCT_QUERY_KEYS = frozenset({"id", "item", "itemid", "p", "pid", "product", "productid", "sku", "asin", "v",
                                "variant", "item_id", "product_id", "pd_rd_i"})
# What a product id in a kept query value looks like; anything else (an "@", spaces, a long
# random token) drops the link.
PRODUCT_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
# Path segments that mark a link as the buyer's own page (tracking, account, order) or a mail
# tracker, not a product page: such a link is dropped.
PERSONAL_PATH_WORDS = frozenset({"track", "tracking", "click", "unsubscribe", "optout", "opt-out", "account",
                                 "my-account", "myaccount", "orders", "order", "order-status", "invoice",
                                 "receipt", "login", "signin", "sign-in", "reset", "verify", "confirm",
                                 "password", "wf", "ls"})
MIN_SECRET = 4  # folded characters: shorter values (a 3-letter name) would hide too much

# --- folding -------------------------------------------------------------------------------------
# Separators an obfuscator puts between digits or letters: whitespace, / \ . - _ ( ) + and every
# dash (U+2010-2015, U+2212, fullwidth forms fold to these first).
_SEPARATORS = frozenset("/\\.-_()+\u2212\u2044\u2215\u00b7\u2027\u2219\u30fb")
# Letters that look like Latin ones (Cyrillic, Greek): folded to the Latin letter.
_LOOKALIKES = str.maketrans("асеорхуіјѕԁкмтвнαεοςρτυνικ", "aceopxyijsdkmtbhaeocptuvik")
# Characters never shown publicly: C0/C1 controls (they also make XML invalid), bidi embedding,
# override and isolate controls (a name that reads backwards), and non-characters.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                     "\ufeff\ufff9-\ufffb\ufffe\uffff\ud800-\udfff]")


@lru_cache(maxsize=8192)
def _fold_char(char: str) -> str:
    """One character as matching sees it: "" for a separator or an invisible one, else its
    compatibility decomposition without accents, case-folded, digits as ASCII digits."""
    if char.isspace() or char in _SEPARATORS:
        return ""
    out = []
    for part in unicodedata.normalize("NFKD", char):
        category = unicodedata.category(part)
        if category in ("Mn", "Me", "Cf", "Cc") or part.isspace() or part in _SEPARATORS or category == "Pd":
            continue
        digit = unicodedata.decimal(part, None)
        out.append(str(digit) if digit is not None else part.casefold().translate(_LOOKALIKES))
    return "".join(out)


@lru_cache(maxsize=8192)
def _light_char(char: str) -> str:
    """A character for the email and masked-card patterns: compatibility form (fullwidth "＠"
    is "@"), invisible characters gone, other whitespace a space; separators are kept."""
    if _UNSAFE.match(char) or unicodedata.category(char) == "Cf":
        return ""
    if char.isspace():
        return " "
    folded = unicodedata.normalize("NFKC", char)
    digit = unicodedata.decimal(folded, None) if len(folded) == 1 else None
    return str(digit) if digit is not None else folded


class View:
    """A transformed copy of a text with, for each of its characters, the stretch of the
    original it came from (`starts[i]`..`ends[i]`). Most texts have nothing to hide, so for an
    ASCII text (one character in, at most one out) the stretches are worked out only when a
    match asks for them."""

    __slots__ = ("_ends", "_source", "_starts", "_table", "text")

    def __init__(self, text: str, starts: tuple[int, ...] | None = None, ends: tuple[int, ...] | None = None,
                 source: str = "", table: dict[int, str] | None = None) -> None:
        self.text, self._starts, self._ends, self._source, self._table = text, starts, ends, source, table

    @property
    def starts(self) -> tuple[int, ...]:
        self._map()
        return self._starts  # type: ignore[return-value]

    @property
    def ends(self) -> tuple[int, ...]:
        self._map()
        return self._ends  # type: ignore[return-value]

    def _map(self) -> None:
        """Each kept character of the ASCII source maps to itself (one in, at most one out)."""
        if self._starts is None:
            table = self._table or {}
            self._starts = tuple(index for index, char in enumerate(self._source) if table[ord(char)])
            self._ends = tuple(index + 1 for index in self._starts)

    def span(self, start: int, end: int) -> tuple[int, int]:
        return self.starts[start], self.ends[end - 1]


def _ascii_table(fold: Callable[[str], str]) -> dict[int, str] | None:
    """`fold` over the ASCII characters as a str.translate table, if it maps each to at most one
    character (then a text's view is one translate call; it is, for both folds below)."""
    table = {code: fold(chr(code)) for code in range(128)}
    return table if all(len(out) <= 1 for out in table.values()) else None


def _view(text: str, fold) -> View:
    table = _ASCII_TABLES.get(fold)
    if table is not None and text.isascii():
        return View(text.translate(table), source=text, table=table)
    return _view_by_character(text, fold)


def _view_by_character(text: str, fold) -> View:
    chars, starts, ends = [], [], []
    for index, char in enumerate(text):
        for out in fold(char):
            chars.append(out)
            starts.append(index)
            ends.append(index + 1)
    return View("".join(chars), tuple(starts), tuple(ends))


_ASCII_TABLES: dict[Callable[[str], str], dict[int, str] | None] = {}


def _substitute(view: View, pattern: re.Pattern[str], replace: str | Callable[[re.Match[str]], str]) -> View:
    """`view` with each match of `pattern` replaced, the replacement mapped to the match's stretch."""
    chars, starts, ends = [], [], []
    last = 0
    for found in pattern.finditer(view.text):
        if found.end() == found.start():
            continue
        chars.append(view.text[last:found.start()])
        starts.extend(view.starts[last:found.start()])
        ends.extend(view.ends[last:found.start()])
        begin, end = view.span(found.start(), found.end())
        replacement = replace if isinstance(replace, str) else replace(found)
        chars.append(replacement)
        starts.extend([begin] * len(replacement))
        ends.extend([end] * len(replacement))
        last = found.end()
    if not last:
        return view
    chars.append(view.text[last:])
    starts.extend(view.starts[last:])
    ends.extend(view.ends[last:])
    return View("".join(chars), tuple(starts), tuple(ends))


_ASCII_TABLES.update({fold: _ascii_table(fold) for fold in (_fold_char, _light_char)})


def fold(text: str) -> str:
    """The folded form matching compares (secrets are folded the same way)."""
    return "".join(_fold_char(char) for char in text)


# Obfuscated "@" and "." in addresses: "alice [at] mail [dot] test", "alice%40mail.test",
# "alice @ mail.test". Bounded runs: linear.
_AT = re.compile(r" {0,3}+(?:@|%40|[\[({<] {0,3}+at {0,3}+[\])}>]) {0,3}+", re.IGNORECASE)
_DOT = re.compile(r" {0,3}+(?:%2e|[\[({<] {0,3}+dot {0,3}+[\])}>]) {0,3}+| {1,3}+\. {0,3}+", re.IGNORECASE)
_PERCENT = re.compile(r"%[0-9a-f]{2}", re.IGNORECASE)  # "2026%2F004571" is "2026/004571"
_DIGIT_RUN = re.compile(r"\d{8,}+")
_LUHN_CANDIDATE = re.compile(r"\d{13,19}+")


def _folded_view(text: str) -> View:
    view = _view(text, _fold_char)
    if "%" in view.text:
        view = _substitute(view, _PERCENT, lambda found: _fold_char(chr(int(found.group(0)[1:], 16))))
    return view


def _email_view(text: str) -> View:
    return _substitute(_substitute(_view(text, _light_char), _AT, "@"), _DOT, ".")


# --- text ------------------------------------------------------------------------------------------


def redact(text: str | None, secrets: tuple[str | None, ...] = ()) -> str | None:
    """The text with private-looking strings (and any of `secrets`, e.g. the order number or the
    buyer's name and address as read from the email) hidden, and unsafe characters removed."""
    if not text:
        return text
    return _redact(text, secrets)


def safe_text(text: str) -> str:
    """`text` without control, bidi-control and non-characters (shown as is otherwise)."""
    return _UNSAFE.sub("", text)


@lru_cache(maxsize=4096)
def _folded_secrets(secrets: tuple[str | None, ...]) -> tuple[tuple[str, bool], ...]:
    """(folded secret, whether it is all letters) for the usable secrets, longest first."""
    out = {}
    for secret in secrets:
        folded = fold(secret) if secret else ""
        if len(folded) >= MIN_SECRET:
            out[folded] = folded.isalpha()
    return tuple(sorted(out.items(), key=lambda pair: -len(pair[0])))


def _secret_spans(text: str, view: View, secrets: tuple[str | None, ...]) -> list[tuple[int, int]]:
    spans = []
    for needle, letters in _folded_secrets(secrets):
        start = view.text.find(needle)
        while start != -1:
            end = start + len(needle)
            begin, finish = view.span(start, end)
            if _bounded(text, view, start, end, begin, finish, needle, letters):
                spans.append((begin, finish))
            start = view.text.find(needle, start + 1)
    return spans


def _bounded(text: str, view: View, start: int, end: int, begin: int, finish: int, needle: str,
             letters: bool) -> bool:
    """A short or all-letter secret counts only as a whole word or number: the buyer's surname
    "Brown" is not hidden inside "Brownie", the last four digits "4242" not inside "142420"."""
    if letters:
        before = text[begin - 1] if begin else " "
        after = text[finish] if finish < len(text) else " "
        return not (before.isalpha() or after.isalpha())
    if len(needle) >= 8:
        return True
    before_ok = not (needle[0].isdigit() and start and view.text[start - 1].isdigit())
    after_ok = not (needle[-1].isdigit() and end < len(view.text) and view.text[end].isdigit())
    return before_ok and after_ok


def _private_spans(text: str, secrets: tuple[str | None, ...], long_numbers: bool = True) -> list[tuple[int, int]]:
    """Stretches of `text` (original indices) that must not be published."""
    folded = _folded_view(text)
    spans = _secret_spans(text, folded, secrets)
    light = _email_view(text)
    for pattern in (EMAIL, MASKED_CARD):
        spans += [light.span(*found.span()) for found in pattern.finditer(light.text)]
    runs = _DIGIT_RUN if long_numbers else _LUHN_CANDIDATE
    for found in runs.finditer(folded.text):
        if long_numbers or _luhn(found.group(0)):
            spans.append(folded.span(*found.span()))
    return spans


@lru_cache(maxsize=1 << 15)
def _redact(text: str, secrets: tuple[str | None, ...]) -> str:
    text = safe_text(text)
    spans = _private_spans(text, secrets)
    if not spans:
        return text
    out, last = [], 0
    for begin, end in _merged(spans):
        out.append(text[last:begin])
        out.append(HIDDEN)
        last = end
    out.append(text[last:])
    return "".join(out)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for begin, end in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((begin, end))
    return merged


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


# --- links -----------------------------------------------------------------------------------------


def public_url(url: str | None, secrets: tuple[str | None, ...] = (), image: bool = False) -> str | None:
    """A product/image link safe to publish, or None: http(s) only, no credentials, no fragment;
    every host label, path segment and query value is checked DECODED (an "%40" is an "@"); query
    parameters are kept only for product ids; a link carrying an email address, card digits, one of
    `secrets` (the order number, the buyer's name, address or phone), a long random token, or a
    path to an account, order or tracking page is dropped whole. An `image` may have token-like
    segments: picture CDNs name files by content hash ("…/g/Tb4AAOSwc1lgF0Hq/s-l140.jpg")."""
    if not url:
        return None
    return _public_url(url, secrets, image)


def _decoded(value: str) -> str:
    """Percent-decoding until nothing changes (double-encoded "%2540" is an "@" too)."""
    for _ in range(4):
        decoded = unquote(value)
        if decoded == value:
            break
        value = decoded
    return value


def _personal(value: str, secrets: tuple[str | None, ...]) -> bool:
    """An email address, Luhn-valid card digits, a secret or an unsafe character in `value`.
    (Plain long numbers are product ids in links: eBay, Walmart.)"""
    return bool(_UNSAFE.search(value) or _private_spans(value, secrets, long_numbers=False))


_SCALE = re.compile(r"@[1-4](?:\.5)?x(?=[._-]|$)", re.IGNORECASE)  # "mug@2x.png" is no email address
_TOKEN_RUN = re.compile(r"[A-Za-z0-9]{16,}+")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def looks_like_token(value: str) -> bool:
    """A long random-looking run (letters AND digits, 16+ without a separator) or a UUID: a
    tracking or session token, not a product slug ("trail-mug-2024") or a numeric id."""
    if _UUID.search(value):
        return True
    for run in _TOKEN_RUN.findall(value):
        letters = sum(char.isalpha() for char in run)
        if letters >= 2 and len(run) - letters >= 2:
            return True
    return False


@lru_cache(maxsize=1 << 15)
def _public_url(url: str, secrets: tuple[str | None, ...], image: bool) -> str | None:
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host or "@" in parts.netloc:
        return None
    host = _decoded(host).lower()
    if not re.fullmatch(r"[\w.-]+", host) or any(_personal(label, secrets) for label in host.split(".")):
        return None
    segments = [_decoded(segment) for segment in parts.path.split("/")]
    whole_path = "/".join(segments)
    if (any(segment.lower() in PERSONAL_PATH_WORDS or (not image and looks_like_token(segment))
            for segment in segments) or _personal(_SCALE.sub("", whole_path), secrets)):
        return None
    query = []
    for key, value in parse_qsl(parts.query, keep_blank_values=False):
        key, value = _decoded(key), _decoded(value)
        if key.lower() not in PRODUCT_QUERY_KEYS:
            continue
        if not PRODUCT_VALUE.fullmatch(value) or (not image and looks_like_token(value)) or _personal(value, secrets):
            return None
        query.append((key, value))
    netloc = host + (f":{port}" if port else "")
    path = "/".join(quote(segment, safe="+!$&'()*,;=:@~") for segment in segments)  # "/" inside a segment stays encoded
    return urlunsplit((parts.scheme.lower(), netloc, path, urlencode(query), ""))
