"""`MerchantParser`: the base every file in `parsers/merchants/` fills in.

A merchant file declares `slug`, `display_name`, `domains` (the registrable sending
domains it owns) and maybe `match` filters, then overrides only the fields its emails
need (recipe-scrapers style). Every field defaults to what schema.org markup said, and a
field that cannot be read raises `FieldNotFound` - the base turns that into None.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cached_property, lru_cache, partial
from typing import ClassVar, Literal

from lxml import etree

from parsers.message import Email
from parsers.model import Extraction, Item, Kind
from parsers.normalize import parse_date_text, parse_money, registrable_domain

log = logging.getLogger(__name__)


class FieldNotFound(LookupError):
    """A field this email does not carry (the pipeline records None)."""


@dataclass(frozen=True)
class Match:
    """A cheap filter: a regex over the sender, the subject or the body.

    `scope="original"` reads the forwarded order email; `"envelope"` the message the
    user's mail client sent (rarely useful: auto-forwarding keeps the merchant's headers).
    """

    field: Literal["from", "subject", "body"]
    pattern: str
    scope: Literal["original", "envelope"] = "original"

    def hits(self, mail: Email) -> bool:
        headers = mail.original if self.scope == "original" else mail.envelope
        if self.field == "from":
            value = f"{headers.from_name or ''} <{headers.from_addr or ''}>"
        elif self.field == "subject":
            value = headers.subject or ""
        else:
            window = _match_window(mail)
            return any(found(window) for found in _body_searches(self.pattern))
        return re.search(self.pattern, value, re.IGNORECASE) is not None


class MerchantParser:
    slug: ClassVar[str]
    display_name: ClassVar[str]
    domains: ClassVar[tuple[str, ...]] = ()
    # With `domains`, a parser runs for mail from those domains when ANY `match` hits
    # (or always, when `match` is empty); mail with no known sender (a bare body) is
    # offered to every parser whose `match` hits.
    match: ClassVar[tuple[Match, ...]] = ()
    confidence: ClassVar[float] = 0.95
    # A symbol such as "$" is read with this storefront's country unless the email says otherwise.
    default_currency: ClassVar[str | None] = None
    # False: this merchant's emails print no amount, so no other layer is asked for a total.
    states_total: ClassVar[bool] = True

    def __init__(self, mail: Email) -> None:
        self.mail = mail
        self._currency_hint: str | None = None

    # --- dispatch -------------------------------------------------------------------
    @classmethod
    def accepts(cls, mail: Email) -> bool:
        domain = mail.sender_domain
        if domain and domain in cls.domains:
            return not cls.match or any(m.hits(mail) for m in cls.match)
        if domain and _is_known_elsewhere(domain):
            return False
        return any(m.hits(mail) for m in cls.match if m.field == "body")

    # --- helpers for subclasses ---------------------------------------------------------
    @property
    def html(self) -> etree._Element | None:
        return self.mail.tree

    @property
    def text(self) -> str:
        """Visible text, one block per line (HTML when present, else plain text)."""
        return self.mail.body_text

    @cached_property
    def schema(self) -> Extraction | None:
        from parsers.schemaorg import extract_schemaorg

        return extract_schemaorg(self.mail)

    def search_text(self, pattern: str, group: int | str = 1, *, flags: int = re.IGNORECASE,
                    text: str | None = None) -> str:
        found = re.search(pattern, self.text if text is None else text, flags)
        if not found or found.group(group) is None:
            raise FieldNotFound(pattern)
        return found.group(group).strip()

    def search_all(self, pattern: str, *, flags: int = re.IGNORECASE | re.MULTILINE) -> list[re.Match[str]]:
        return list(re.finditer(pattern, self.text, flags))

    def under_headings(self, pattern: str, heading: str) -> list[tuple[re.Match[str], str | None]]:
        """Each match of `pattern` (as search_all) with group 1 of the last `heading` match
        above it, None when there is none: flights listed under day headings."""
        headings = self.search_all(heading)
        starts = [m.start() for m in headings]
        found = []
        for m in self.search_all(pattern):
            above = bisect_left(starts, m.start())  # how many headings start before the match
            found.append((m, headings[above - 1][1] if above else None))
        return found

    def css(self, selector: str) -> list[etree._Element]:
        if self.html is None:
            return []
        return self.html.cssselect(selector)

    def css_text(self, selector: str) -> str:
        found = self.css(selector)
        if not found:
            raise FieldNotFound(selector)
        return element_text(found[0])

    def xpath(self, path: str) -> list:
        return [] if self.html is None else self.html.xpath(path)

    def money(self, text: str | None, *, decimal_separator: str | None = None) -> Decimal:
        """'£23.98' -> Decimal('23.98'); remembers the currency symbol it saw."""
        amount, currency = parse_money(text, decimal_separator=decimal_separator)
        if amount is None:
            raise FieldNotFound(f"no amount in {text!r}")
        if currency and not self._currency_hint:
            self._currency_hint = currency
        return amount

    def date(self, text: str | None) -> date:
        parsed = parse_date_text(text, language=self.mail.language)
        if parsed is None:
            raise FieldNotFound(f"no date in {text!r}")
        return parsed

    # --- fields: override what differs -------------------------------------------------
    def kind(self) -> Kind | None:
        """None: the classifier decides. Return a Kind where the merchant knows better."""
        return None

    def merchant_name(self) -> str:
        return self.display_name

    def merchant_domain(self) -> str | None:
        domain = self.mail.sender_domain
        if domain in self.domains:
            return domain
        return self.domains[0] if self.domains else None

    def order_number(self) -> str:
        return self._from_schema("order_number")

    def order_date(self) -> date:
        return self._from_schema("order_date")

    def items(self) -> list[Item]:
        return self._from_schema("items")

    def total(self) -> Decimal:
        return self._from_schema("total")

    def subtotal(self) -> Decimal:
        return self._from_schema("subtotal")

    def shipping(self) -> Decimal:
        return self._from_schema("shipping")

    def tax(self) -> Decimal:
        return self._from_schema("tax")

    def discount(self) -> Decimal:
        return self._from_schema("discount")

    def currency(self) -> str:
        try:
            return self._from_schema("currency")
        except FieldNotFound:
            if self._currency_hint:
                return self._currency_hint
            if self.default_currency:
                return self.default_currency
            raise

    def _from_schema(self, name: str):
        value = getattr(self.schema, name, None) if self.schema else None
        if value is None or value == []:
            raise FieldNotFound(name)
        return value

    # --- the run ------------------------------------------------------------------------
    def extract(self) -> Extraction:
        result = Extraction(parser=f"merchant:{self.slug}", confidence=self.confidence)
        result.kind = self.kind()
        # Money fields first so the currency hint is known when currency() runs.
        for name in ("items", "total", "subtotal", "shipping", "tax", "discount", "order_number",
                     "order_date", "merchant_name", "merchant_domain", "currency"):
            try:
                value = getattr(self, name)()
            except FieldNotFound:
                continue
            setattr(result, name, value if name != "items" else list(value))
        return result


def element_text(element: etree._Element) -> str:
    return re.sub(r"\s+", " ", element.text_content()).strip()


def _match_window(mail: Email) -> str:
    """The body text body filters search: all of it, or its head and tail when huge.

    Logos, links and footers that identify a merchant sit at either end; searching the
    middle of a megabyte digest once per merchant made dispatch the pipeline's top cost.
    """
    window = mail.cache.get("match_window")
    if window is None:
        body = mail.html or mail.text
        window = body if len(body) <= 200_000 else body[:150_000] + "\n" + body[-50_000:]
        window = window.lower()
        mail.cache["match_window"] = window
    return window  # type: ignore[return-value]


_LITERAL = re.compile(r"(?:[^\\.^$*+?{}\[\]|()]|\\[^A-Za-z0-9])+")  # no regex syntax but escaped punctuation


@lru_cache(maxsize=1024)
def _body_searches(pattern: str) -> tuple[Callable[[str], bool], ...]:
    """Case-insensitive search, fast: one test per top-level alternative of `pattern`,
    lowercased, over the lowercased body; a literal alternative is a substring test.

    The body is searched once per merchant, and re's IGNORECASE (or an alternation, which
    has no literal prefix to skip ahead with) is several times slower on long text.
    Escapes keep their case (\\S, \\W, \\D and \\B differ from \\s, \\w, \\d and \\b).
    """
    searches: list[Callable[[str], bool]] = []
    for alternative in _top_level_alternatives(pattern):
        lowered = re.sub(r"\\.|[^\\]+", lambda m: m.group(0) if m.group(0)[0] == "\\" else m.group(0).lower(),
                         alternative, flags=re.DOTALL)
        if _LITERAL.fullmatch(lowered):
            searches.append(partial(_has, re.sub(r"\\(.)", r"\1", lowered)))
        else:
            searches.append(partial(_hit, _required_literal(lowered), re.compile(lowered)))
    return tuple(searches)


def _has(literal: str, text: str) -> bool:
    return literal in text


def _hit(literal: str, pattern: re.Pattern[str], text: str) -> bool:
    return literal in text and pattern.search(text) is not None


def _required_literal(pattern: str) -> str:
    """The longest literal run every match of `pattern` (one alternative) contains: text
    outside groups and classes, not under a quantifier. A substring test rules most bodies
    out faster than the regex can ("://www.amazon." in 'https?://www\\.amazon\\.(?:com|de)').
    "" (no pre-test) when inline flags could change what the literal matches."""
    if re.search(r"\(\?[aiLmsux-]", pattern):
        return ""
    runs: list[str] = []
    run: list[str] = []
    depth = 0
    for _, token in _regex_tokens(pattern):
        literal: str | None = None
        if token[0] == "\\":
            escaped = token[1:]
            if escaped and not escaped.isalnum():
                literal = escaped  # "\\." is a ".", "\\d" a class
        elif token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
        elif token == "|" and depth == 0:
            return ""  # not one alternative: nothing is required
        elif token in "?*+" or (token[0] == "{" and len(token) > 1):  # "{2,3}" is one token
            if run:
                run.pop()  # the quantifier makes the run's last character optional
        elif token[0] != "[" and token not in ".^$|":
            literal = token
        if literal is not None and depth == 0:
            run.append(literal)
        else:
            runs.append("".join(run))
            run = []
    runs.append("".join(run))
    return max(runs, key=len)


def _top_level_alternatives(pattern: str) -> list[str]:
    """'a|b(c|d)' -> ['a', 'b(c|d)']: split at the "|" outside groups and classes."""
    if pattern.startswith("(?") and re.match(r"\(\?[aiLmsux]+\)", pattern):
        return [pattern]  # global flags apply to every alternative: keep it whole
    parts: list[str] = []
    depth, start = 0, 0
    for index, token in _regex_tokens(pattern):
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
        elif token == "|" and depth == 0:
            parts.append(pattern[start:index])
            start = index + 1
    parts.append(pattern[start:])
    return parts


_BOUND = re.compile(r"\{\d*(?:,\d*)?\}")  # "{2}", "{1,3}", "{,5}": a quantifier


def _regex_tokens(pattern: str) -> Iterator[tuple[int, str]]:
    """(start, token) for each piece of `pattern`: an escape ("\\."), a whole class
    ("[^]a-z]": a "]" first in a class is a literal), a bound ("{1,3}") or one character."""
    index = 0
    while index < len(pattern):
        char = pattern[index]
        end = index + 1
        if char == "\\":
            end += 1
        elif char == "[":
            for prefix in ("^]", "]", "^"):
                if pattern.startswith(prefix, end):
                    end += len(prefix)
                    break
            while end < len(pattern) and pattern[end] != "]":
                end += 2 if pattern[end] == "\\" else 1
            end += 1
        elif char == "{" and (bound := _BOUND.match(pattern, index)):
            end = bound.end()
        yield index, pattern[index:end]
        index = end


def _is_known_elsewhere(domain: str) -> bool:
    """Mail straight from another known merchant is that merchant's, whatever its body says."""
    from parsers.registry import BY_DOMAIN

    return domain in BY_DOMAIN


def route_name(segments: list[tuple[str, str, object, object]]) -> str:
    """Flight/train segments (origin, destination, departs, arrives) -> one trip name.

    'Seattle (SEA) → San Francisco (SFO) → Seattle (SEA)' for a round trip. A segment leaving
    where the previous one landed, on the same day, is a connection and drops out of the name.
    """
    legs: list[list] = []
    for origin, destination, departs, arrives in segments:
        if legs and legs[-1][1] == origin and legs[-1][2] == departs:
            legs[-1][1:] = [destination, arrives]
        else:
            legs.append([origin, destination, arrives])
    name = ""
    for i, (origin, destination, _) in enumerate(legs):
        joined = i and legs[i - 1][1] == origin
        name += f" → {destination}" if joined else f"{', ' if i else ''}{origin} → {destination}"
    return name


def fare_items(route: str, fares: list[Decimal]) -> list[Item]:
    """A trip's tickets: one item of N tickets when every fare is the same, else one per fare."""
    if len(set(fares)) == 1:
        return [Item(route, quantity=len(fares), unit_price=fares[0])]
    return [Item(route, unit_price=fare) for fare in fares]


__all__ = ["FieldNotFound", "Item", "Kind", "Match", "MerchantParser", "element_text",
           "registrable_domain"]
