"""Every money span of an email as a typed candidate, with the words that label it.

A candidate's label is the text before it in its own block, else the nearest labelled block
to its left on the same line, else the block above it (a label on one line, its amount on
the next). The label words (parsers/vocab/<lang>.toml, all languages at once: an email's
language guess is not always right) give each candidate a score per role. The choice among
candidates is parsers.select's job.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path

from parsers.layout import Block, Layout

VOCAB_DIR = Path(__file__).parent / "vocab"
ROLES = ("total", "subtotal", "shipping", "tax", "fees", "discount", "paid_with", "distractor", "partial")
BREAKDOWN = ("subtotal", "shipping", "tax", "fees", "discount")
# Words that name an amount but say nothing about which one: a weak total.
WEAK_TOTAL = frozenset(("amount", "montant", "betrag", "importe", "importo", "bedrag", "valor", "belopp",
                        "kwota", "charged", "you sent", "summe", "summa", "suma"))

_CODES = ("USD|EUR|GBP|CAD|AUD|NZD|CHF|SEK|NOK|DKK|PLN|JPY|INR|BRL|MXN|HKD|SGD|CZK|HUF|RON|ZAR|TRY|ILS|"
          "CNY|KRW|THB|AED|SAR")
_SYMBOL = (r"(?:US\$|CA\$|C\$|A\$|AU\$|NZ\$|HK\$|S\$|MX\$|R\$|Rs\.?|INR|[£€$¥₹₩₽₺₪฿₫₱]|kr\.?|zł|Kč|Fr\.|"
           rf"(?:{_CODES})\b)")
_NUMBER = r"\d{1,3}(?:[.,\u202f\u00a0' ]\d{3})*[.,]\d{2}(?!\d)|\d+[.,]\d{2}(?!\d)"
_WHOLE = r"\d{1,3}(?:[,.\u202f' ]\d{3})+(?![.,]?\d)|\d+(?![.,]?\d)"  # "$300", "CHF 1'200": only with a symbol
MONEY = re.compile(
    rf"(?P<sign>[-−–]\s?)?(?:(?P<pre>{_SYMBOL})\s?(?P<sign2>-\s?)?(?P<n1>{_NUMBER}|{_WHOLE})"
    rf"|(?P<n2>{_NUMBER})(?:\s?(?P<post>{_SYMBOL}))?|(?P<n3>{_WHOLE})\s?(?P<post3>{_SYMBOL}))",
)
_LETTERS = re.compile(r"[^\W\d_]{2,}")
LABEL_MAX = 80  # a longer "label" is prose, not a label
# Far beyond any receipt; they keep a pathological email's reading linear and short.
MAX_PER_BLOCK = 40
MAX_CANDIDATES = 2000


@dataclass
class Candidate:
    """One money span and what stands around it."""

    amount: Decimal  # signed as printed
    currency: str | None  # as printed: "$", "CHF", "US$", "₹"
    block: Block
    text: str  # the span as printed
    label: str  # the words that label it ("" when none)
    label_from: str  # "same", "left", "above", "after", "" (none)
    below: str = ""  # the line under it (a payment method under the amount charged)
    roles: dict[str, float] = field(default_factory=dict)
    phrase: str = ""  # the vocabulary phrase that decided the role

    @property
    def position(self) -> int:
        return self.block.index

    @property
    def role(self) -> str | None:
        return max(self.roles, key=self.roles.__getitem__) if self.roles else None

    @property
    def score(self) -> float:
        return max(self.roles.values()) if self.roles else 0.0


@cache
def vocabulary() -> tuple[re.Pattern[str], dict[str, str], dict[str, str]]:
    """All languages' label phrases as one pattern (longest first), phrase -> role, and the
    phrases that count only as a whole label ("=paid": "Paid:", never "Paid seat")."""
    phrase_role: dict[str, str] = {}
    whole: dict[str, str] = {}
    for path in sorted(VOCAB_DIR.glob("??.toml"), key=lambda p: (p.stem != "en", p.stem)):  # languages only
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        for role in ROLES:
            for phrase in data.get(role, ()):
                if phrase.startswith("="):
                    whole.setdefault(phrase[1:].casefold(), role)
                else:
                    phrase_role.setdefault(phrase.casefold(), role)
    alternatives = "|".join(re.escape(p) for p in sorted(phrase_role, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)"), phrase_role, whole


def label_role(label: str) -> tuple[str | None, str]:
    """The role the label's longest vocabulary phrase names, and that phrase."""
    if not label:
        return None, ""
    pattern, phrase_role, whole = vocabulary()
    key = label.casefold()
    if key in whole:
        return whole[key], key
    matches = list(pattern.finditer(key.lstrip("+*- ")))
    if not matches:
        return None, ""
    # A qualifier makes any total a part of one ("Total per passenger"); otherwise the label's
    # head word decides ("Base fare and surcharges" is a fare), else the longest phrase.
    partial = [m.group(0) for m in matches if phrase_role[m.group(0)] == "partial"]
    head = [m.group(0) for m in matches if m.start() == 0]
    phrase = (partial or head or [max((m.group(0) for m in matches), key=len)])[0]
    role = phrase_role[phrase]
    return role, phrase


def parse_amount(number: str) -> Decimal | None:
    """'1,234.56', '1.234,56', '26,70', "1'200", '300' -> Decimal (never float)."""
    digits = number.replace("\u202f", "").replace("\u00a0", "").replace("'", "").replace(" ", "")
    tail = re.search(r"[.,](\d{2})$", digits)
    whole = digits[: tail.start()] if tail else digits
    digits = re.sub(r"[.,]", "", whole) + ("." + tail.group(1) if tail else "")
    try:
        return Decimal(digits)
    except InvalidOperation:
        return None


def _clean_label(text: str) -> str:
    """The words of a label, without amounts and separators."""
    text = MONEY.sub(" ", text)
    return " ".join(text.replace("|", " ").split()).strip(" :-–—=*\"'")


def _labelled(text: str) -> bool:
    return bool(_LETTERS.search(text)) and len(text) <= LABEL_MAX


def candidates_of(layout: Layout) -> list[Candidate]:
    """Every money span in reading order, labelled and scored (bounded: see the limits)."""
    found: list[Candidate] = []
    for block in layout.blocks:
        if not any(ch.isdigit() for ch in block.text):
            continue
        previous_end = 0
        matches = list(MONEY.finditer(block.text))
        if len(matches) > MAX_PER_BLOCK:
            continue  # a wall of prices in one block is a price list or garbage, not a label and its value
        if len(found) + len(matches) > MAX_CANDIDATES:
            break
        for number, match in enumerate(matches):
            # Text after an amount labels it only when no other amount follows (it is that one's label).
            stop = matches[number + 1].start() if number + 1 < len(matches) else len(block.text)
            candidate = _candidate(layout, block, match, previous_end, stop, last=number + 1 == len(matches))
            previous_end = match.end()
            if candidate is not None:
                found.append(candidate)
    return found


def _candidate(layout: Layout, block: Block, match: re.Match[str], start: int, stop: int,
               last: bool) -> Candidate | None:
    number = match.group("n1") or match.group("n2") or match.group("n3")
    amount = parse_amount(number)
    if amount is None:
        return None
    text = block.text
    # A bare number with no separator is a count, a year or an id, not money.
    symbol = match.group("pre") or match.group("post") or match.group("post3")
    if symbol is None and not re.search(r"[.,]\d{2}$", number):
        return None
    # "12.50" inside a longer number or a date ("2021.05.11", "1.234.567") is not money.
    before_char = text[match.start() - 1] if match.start() else ""
    after_char = text[match.end()] if match.end() < len(text) else ""
    after_next = text[match.end() + 1:match.end() + 2]
    if (before_char and (before_char.isdigit() or before_char in "./")) or (after_char and after_char in "/0123456789") \
            or (after_char in (".", ",") and after_next.isdigit()):
        return None
    # A bare number glued to letters or colons is part of an id ("PPC000928:1.12:bff4e3").
    if symbol is None and ((before_char and (before_char.isalpha() or before_char in ":_#=")) or
                           (after_char and (after_char.isalpha() or after_char in ":_#="))):
        return None
    if match.group("sign") or match.group("sign2") or (before_char == "(" and after_char == ")"):
        amount = -amount
    label, label_from = _label(layout, block, text[start:match.start()], text[match.end():stop] if last else "")
    below = layout.below(block)
    candidate = Candidate(amount=amount, currency=symbol, block=block, text=match.group(0).strip(),
                          label=label, label_from=label_from,
                          below=below.text if below is not None and not MONEY.search(below.text) else "")
    _score(candidate)
    return candidate


def _label(layout: Layout, block: Block, before: str, after: str) -> tuple[str, str]:
    own = _clean_label(before)
    if _labelled(own):
        return own, "same"
    for left in layout.left_of(block):
        words = _clean_label(left.text)
        if _labelled(words):
            return words, "left"
    above = layout.above(block)
    if above is not None and not MONEY.search(above.text):
        words = _clean_label(above.text)
        if _labelled(words):
            return words, "above"
    words = _clean_label(after)
    if _labelled(words):
        return words, "after"
    return "", ""


# How much a label's place says: beside the amount more than above it, after it least.
_PLACE = {"same": 1.0, "left": 1.0, "above": 0.85, "after": 0.6}


def _score(candidate: Candidate) -> None:
    role, phrase = label_role(candidate.label)
    candidate.phrase = phrase
    place = _PLACE.get(candidate.label_from, 0.0)
    if role is not None:
        weight = place
        if phrase == candidate.label.casefold():
            weight += 0.2  # the label is exactly the phrase: "Total", not a sentence naming one
        if role == "total":
            if phrase in WEAK_TOTAL:
                weight *= 0.5
            if candidate.block.emphasis:
                weight += 0.1
        candidate.roles[role] = round(weight, 2)
    # The payment method under an amount with no label of its own ("$12.99" / "Visa •••• 1234").
    if role is None and candidate.below:
        below_role, below_phrase = label_role(candidate.below)
        if below_role == "paid_with":
            candidate.roles["paid_with"] = 0.5
            candidate.phrase = below_phrase
    if not candidate.roles and candidate.label:
        candidate.roles["item"] = 0.3  # a named amount with no summary word: an item's price
