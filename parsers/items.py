"""Items of an order for the generic reader: repeated blocks in the HTML, priced lines in text.

HTML: the visible text is cut into LINES (one per block-level element, as a reader sees
it), each remembering the element that holds it, its emphasis and its link. Every price
that is not a summary amount (subtotal, shipping, tax, payment...) nor struck through
belongs to an item BLOCK: the lowest element around the price that also holds a name-like
line, widened while that adds no other price. Table rows and div "cards" both come out of
this, because sibling items stop each other from widening. In a block: the name is the most
prominent name-like line (link, bold, heading, larger font), quantity and variant
("Size: M") are read from labelled lines, link and image from the block.

Text (a plain-text body, or the HTML's visible text when its structure gave nothing):
lines with the price at the end, columns cut at tabs, runs of spaces or dotted leaders,
and an item line whose price stands alone on the next line.

Not products: recommendation blocks ("You might also like"), baggage fee and cancellation
cost sections, a payment section below the totals, the charge lines of a breakdown (fare,
taxes, fees: summary vocabulary), dates ("24.01.25"), measures ("5.48 miles"), a stray bare
number among amounts written with their currency, greetings, identifier lines and lone codes.
A price followed by "[ $9.54 + Taxes & fees $0.67 ]" is the item's price before tax. When no
block is priced, one product whose only price is the order's total ("Total : £8.89" under its
name) gets that total; a name the email cut ("...") is taken whole from its picture's alt text.

Everything is one pass over the tree or the lines (no item x row loops), capped at
MAX_ITEMS. The words it reads (summary labels, headings, quantity and variant labels... in en fr de
es it nl pt sv pl) are data: parsers/vocab/items.toml, compiled once at import.
"""

from __future__ import annotations

import re
import tomllib
from bisect import bisect_left
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from lxml import etree

from parsers.candidates import parse_amount
from parsers.message import Email, unquote_text
from parsers.model import Item

# Reading stops here: far beyond what a purchase keeps (pipeline.MAX_ITEMS, which warns how many
# were left out), and a bound on the work a crafted email can ask for.
MAX_ITEMS = 1000
_MAX_BLOCK_LINES = 30  # an "item" spanning more lines than this is a whole section, not an item
_MAX_NAME = 200
_MAX_LINE = 1000  # a longer line is prose, not an item or a price cell

# Items' own money pattern, not parsers.candidates.MONEY: that one also reads whole amounts with a
# sign ("$300"), apostrophe and no-break-space thousands and more currency signs, so the prices found
# here would change (on the corpus: "kapitał zakładowy: 228.604.000 PLN" reads 228604000, not this
# pattern's 228604.00). The number of a match is read by candidates.parse_amount: one reading of digits.
_CURRENCY = r"(?:[£€$¥₹]|[A-Z]{2}\$|US\$|kr\.?|CHF|zł|R\$|(?:USD|EUR|GBP|CAD|AUD|CHF|SEK|NOK|DKK|PLN|JPY)\b)"
_NUMBER = r"\d{1,3}(?:[.,\u202f ]\d{3})*[.,]\d{2}|\d+[.,]\d{2}"
MONEY = re.compile(rf"(-|−)?\s*(?:{_CURRENCY}\s?(?:{_NUMBER})|(?:{_NUMBER})\s?{_CURRENCY}|(?:{_NUMBER}))")
_NUMBER_RE = re.compile(_NUMBER)
_MARKED = re.compile(rf"{_CURRENCY}\s?\d|\d\s?{_CURRENCY}")  # an amount with its currency, in a sentence
_DATE_AROUND = re.compile(r"[./]\d")
_HAS_NUMBER = re.compile(r"\d[.,]\d\d")  # every MONEY match holds one: a cheap test first
_SPLIT_CENTS = re.compile(rf"^({_CURRENCY}) ?(\d{{1,6}}) (\d{{2}})$")

VOCAB_FILE = Path(__file__).with_name("vocab") / "items.toml"
LANGUAGES = ("en", "fr", "de", "es", "it", "nl", "pt", "sv", "pl")
_PARTS = (*LANGUAGES, "structure")  # "structure": the language-neutral entries (payment brands, codes)


def load_vocabulary(path: Path = VOCAB_FILE) -> dict[str, str]:
    """Each table of the file as one alternation ("a|b|c"), entries in the order of _PARTS, each once
    (an earlier alternative wins where two match, so the order is the file's). Every table must hold
    every language and nothing else: a vocabulary missing a language would silently read less."""
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    vocabulary: dict[str, str] = {}
    for name, table in data.items():
        if not isinstance(table, dict) or set(table) != set(_PARTS):
            raise ValueError(f"{path.name} [{name}]: needs exactly the arrays {' '.join(_PARTS)}")
        entries = [entry for part in _PARTS for entry in table[part]]
        if not entries or not all(isinstance(entry, str) and entry for entry in entries):
            raise ValueError(f"{path.name} [{name}]: needs entries, each a non-empty string")
        vocabulary[name] = "|".join(dict.fromkeys(entries))
    return vocabulary


VOCABULARY = load_vocabulary()  # once, at import (other readers use it too): every pattern below is compiled once


def _any(name: str) -> str:
    """One vocabulary as a group: any of its entries."""
    return f"(?:{VOCABULARY[name]})"


# The words of the patterns below (per language: en fr de es it nl pt sv pl) are data, one table per
# vocabulary in vocab/items.toml; the code holds the structure around them (anchors, separators, numbers).
# A summary line (subtotal, shipping, tax, payment...: not an item) starts with one of these.
_SUMMARY = re.compile(rf"^\W{{0,3}}{_any('summary')}\b", re.IGNORECASE)
# A short line with one of these words anywhere is a summary line too ("Trip total", "City tax").
_SUMMARY_ANY = re.compile(rf"\b{_any('summary_any')}\b", re.IGNORECASE)
# Lines of an item block that are never its name: seller, actions, renewal notes; a greeting ("Dear Sam,",
# "Hallo Sebastian!"); an identifier line ("Item No X0G0 1234", "Art.-Nr. 4711", "SKU 12-34").
_NOT_A_NAME = re.compile(
    rf"^{_any('not_a_name')}\b|"
    rf"^{_any('greeting')}\b[^,!]{{0,40}}[,!]$|"
    rf"^{_any('article_label')}[ .-]*{_any('number_label')}\s*:?\s*(?=.*\d)\S+(?: \S+){{0,3}}$|"
    rf"^{_any('product_code')}\b",
    re.IGNORECASE,
)
# Column headings and labels that are never a product's name; a section's title ("Booking details").
_HEADING = re.compile(rf"^(?:{VOCABULARY['heading']}|(?:[\w-]+ ){{0,2}}{_any('section_title')})\W*$", re.IGNORECASE)
# Headings of product suggestions, not bought: the block under them is skipped.
_RECOMMEND = re.compile(_any("recommend"), re.IGNORECASE)
# Headings of sections that list prices nobody bought: baggage fee schedules, cancellation costs.
_NOT_BOUGHT = re.compile(VOCABULARY["not_bought"], re.IGNORECASE)
_NOT_BOUGHT_HINT = re.compile(VOCABULARY["not_bought_hint"], re.IGNORECASE)  # cheap test first
# A payment section's heading, the whole line (fullmatch): below the totals it restates what was charged.
_PAYMENT_HEADING = re.compile(_any("payment_heading"), re.IGNORECASE)
_QTY_WORDS = VOCABULARY["qty"]
# "Qty 2", "Qty: 2", "Menge: 2", "2 x", "x2", "2x", "× 2"
_QTY_LABEL = re.compile(rf"\b(?:{_QTY_WORDS})\.?\s*:?\s*(\d{{1,3}})\b", re.IGNORECASE)
_QTY_ONLY = re.compile(r"^(?:[x×]\s*(\d{1,3})|(\d{1,3})\s*[x×]?)$", re.IGNORECASE)
_QTY_LEAD = re.compile(r"^(\d{1,3})\s*[x×]\s+(?=\S)", re.IGNORECASE)  # "3 x Salmon Maki"
_QTY_TAIL = re.compile(rf"\s*(?:[x×]\s*(\d{{1,3}})|\((?:{_QTY_WORDS})\.?\s*:?\s*(\d{{1,3}})\))$", re.IGNORECASE)
_QTY_PRICE = re.compile(rf"(\d{{1,3}})\s*[x×]\s*(?={MONEY.pattern})", re.IGNORECASE)  # "2 x 14,90 €"
# "$5.00 each", "2,50 € / Stück", "$5.00/ea": a unit price
_UNIT_HINT = re.compile(rf"\b{_any('unit_hint')}\b|@|/\s*{_any('per_unit')}", re.IGNORECASE)
_CODE_AFTER = re.compile(r"\(\s*[A-Z]{3}\s*\)")
_VARIANT = re.compile(rf"^{_any('variant')}\b\s*:?\s*\S", re.IGNORECASE)  # "Size: M", "Farbe: Blau"
# "Item number : 3223", "Invoice ID: 1510", "Seller: x", "Pickup location: 12 Main St": a label and its
# value, not a name
_LABELLED = re.compile(rf"^(?:[^:]{{1,30}}\s:\s|(?:[\w.#]+[ -]){{0,3}}{_any('label')}\s*:)", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]{3,}")
_REFERENCE = re.compile(r"(?:[^()]{0,40}\s)?#?\d{6,20}")
_CODE_ONLY = re.compile(r"[A-Z]{2,3}")  # "JFK", "XL", "GBP" alone: a code, not a product's name
_CLOCK = re.compile(r"(?<![\d:])\d{1,2}:\d{2}(?![\d:])")  # "until 11:59 PM", "zwischen 16:30 und 17:00": a time, not a name
_ISO = (r"(?-i:USD|EUR|GBP|CAD|AUD|NZD|CHF|SEK|NOK|DKK|PLN|CZK|HUF|RON|JPY|CNY|HKD|SGD|INR|BRL|MXN|ZAR|TRY)")
# "5.48 miles", "2.50 kg": a measure after a number (a word that is not a price word, currency or code)
_UNIT_AFTER = re.compile(rf"\s*(?:{VOCABULARY['measure']}|(?!(?:{VOCABULARY['price_word']}|{_ISO})\b)[^\W\d_]{{3,}})",
                         re.IGNORECASE)
# Words beside a price that do not make it part of a sentence: currency codes, tax notes, quantities.
_CODES = re.compile(rf"\b(?:{_ISO}|{VOCABULARY['tax_note']}|x\s*\d{{1,3}}|(?:{_QTY_WORDS})\.?\s*:?\s*\d{{0,3}})\b",
                    re.IGNORECASE)
_BLOCK_TAGS = frozenset((
    "p", "div", "tr", "td", "th", "li", "ul", "ol", "dl", "dt", "dd", "table", "tbody", "thead", "tfoot",
    "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "header", "footer", "blockquote", "pre",
    "hr", "br", "center", "form", "main", "aside", "nav", "body", "html",
))  # fmt: skip
_SKIP_TAGS = frozenset(("script", "style", "head", "title", "noscript", "template"))
_STRUCK_TAGS = frozenset(("s", "del", "strike"))
_BOLD_TAGS = frozenset(("b", "strong", "h1", "h2", "h3", "h4", "h5", "h6"))
_BOLD_STYLE = re.compile(r"font-weight\s*:\s*(?:bold|bolder|[6-9]00)", re.IGNORECASE)
_FONT_SIZE = re.compile(r"font-size\s*:\s*(\d+(?:\.\d+)?)\s*(px|pt)", re.IGNORECASE)
_HIDDEN = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden|max-height\s*:\s*0", re.IGNORECASE)
_COLUMNS = re.compile(r"(?<=\S)[ \t]*(?:\.{3,}|\t|[ ]{2,}|…{2,}| \| )[ \t]*(?=\S)")


def read_items(mail: Email) -> list[Item]:
    """The order's items, in the email's order (at most MAX_ITEMS)."""
    items: list[Item] = []
    if mail.tree is not None:
        items = _html_items(mail.tree)
        if not items and mail.html_text:
            items = text_items(mail.html_text.split("\n"))
    elif mail.text:
        items = text_items(unquote_text(mail.text).split("\n"))
    return _one_copy(items)[:MAX_ITEMS]


def _one_copy(items: list[Item]) -> list[Item]:
    """The list once when the email repeats it whole (a desktop and a mobile copy of the order)."""
    keys = [(i.name, i.quantity, i.line_total) for i in items]
    for copies in (2, 3):
        size = len(keys) // copies
        if size and len(keys) == size * copies and all(keys[n] == keys[n % size] for n in range(len(keys))):
            return items[:size]
    return items


# --- Money --------------------------------------------------------------------------------

def _amount(text: str) -> Decimal:
    """'1.234,56 €' -> Decimal('1234.56'): MONEY's numbers always end in a 2-digit decimal part."""
    digits = _NUMBER_RE.search(text)
    amount = parse_amount(digits.group(0)) if digits is not None else None
    assert amount is not None  # only called on MONEY matches
    return amount


def _prices(text: str) -> list[re.Match[str]]:
    """Positive amounts standing at an edge of the line, not inside a sentence ("You paid £5 to X"),
    and not negative (a "-5,00 €" is a discount)."""
    found: list[re.Match[str]] = []
    if len(text) > _MAX_LINE or not _HAS_NUMBER.search(text):
        return found
    for match in MONEY.finditer(text):
        if match.group(1) or _DATE_AROUND.match(text, match.end()) or (match.start() and text[match.start() - 1] in ".,/"):
            continue  # a discount; "24.01.25": a date
        if _NUMBER_RE.fullmatch(match.group(0).strip()) and _UNIT_AFTER.match(text, match.end()):
            continue  # "5.48 miles", "2.50 kg": a measure, not an amount
        # a window each side: the words next to the price decide, and long lines stay linear
        before = _filler(text[max(0, match.start() - 40):match.start()])
        after = _filler(text[match.end():match.end() + 40])
        if before and after:
            continue
        found.append(match)
    return found


def _filler(text: str) -> bool:
    """Words around a price that are more than a currency code, unit word or quantity."""
    text = MONEY.sub(" ", text)
    text = _CODES.sub(" ", _UNIT_HINT.sub(" ", text))
    return bool(_WORD.search(text))


def is_heading(text: str) -> bool:
    """A column heading or section title ("Unit price", "Order summary"), never a product's name."""
    return bool(_HEADING.match(text))


def _is_summary(text: str) -> bool:
    if len(text) > 80:
        return False
    if _SUMMARY.match(text):
        return True
    rest = _strip_prices(text)  # "[ $87.44 + Taxes & fees $31.16 ]" is short once its amounts are out
    return len(rest) <= 45 and bool(_SUMMARY_ANY.search(rest))


def _strip_prices(text: str) -> str:
    return (MONEY.sub(" ", text) if _HAS_NUMBER.search(text) else text).strip(" :|-–—•·,")


def _without_reference(text: str) -> str:
    """"Name (Reference Number: 0164306206467):" -> "Name"; any other text as it is."""
    if not text.endswith("):"):
        return text
    start = text.rfind("(")
    if start > 0 and _REFERENCE.fullmatch(text, start + 1, len(text) - 2) and _WORD.search(text, 0, start):
        return text[:start].strip()
    return text


def _name_like(text: str, recommend: bool | None = None) -> bool:
    """A line that could be a product name: words, not a price, quantity, label or heading.
    `recommend`: whether _RECOMMEND is in the text, when the caller already knows."""
    text = _without_reference(text)  # "Seat assignment (Reference Number: 0164306206467):" names what it costs
    if len(text) > 300 or not _WORD.search(text) or _HEADING.match(text) or _is_summary(text) \
            or (_RECOMMEND.search(text) if recommend is None else recommend) or _NOT_A_NAME.match(text):
        return False
    rest = _CODES.sub(" ", MONEY.sub(" ", text) if _HAS_NUMBER.search(text) else text).strip(" |-–—•·,")
    if rest.endswith(":") or not _WORD.search(rest) or _HEADING.match(rest):
        return False  # "Airfare:", "GBP": a label or a currency code beside a price
    if _LABELLED.match(text) or _CLOCK.search(text) or _CODE_ONLY.fullmatch(text):
        return False  # "Item number : 3223", "Seller : x": a label and its value; a time of day
    if len(text) > 60 and (_MARKED.search(text) or re.search(r"[^.][.!?]$", text)):
        return False  # a sentence ("This email confirms that you paid £5.00 to ..."), not a name
    return not _QTY_LABEL.fullmatch(rest) and not _VARIANT.match(text)


# --- HTML ---------------------------------------------------------------------------------

@dataclass
class _Line:
    text: str
    owner: int  # the block element holding it (index into _Page.parent)
    score: int = 0  # emphasis: link, bold, heading, large font
    href: str | None = None
    prices: list[Decimal] = field(default_factory=list)
    summary: bool = False
    name: bool = False  # could be a product name (_name_like), decided once
    bare: bool = False  # its amounts carry no currency sign ("5.00", "5.48 miles")
    skip: bool = False  # heads a section of things not bought (suggestions, baggage fees...)


@dataclass
class _Page:
    """The HTML as elements (pre-order indices) and visible lines, built in one walk."""

    parent: list[int] = field(default_factory=list)
    tag: list[str] = field(default_factory=list)
    first_line: list[int] = field(default_factory=list)  # lines [first_line, end_line) are inside
    end_line: list[int] = field(default_factory=list)
    end_element: list[int] = field(default_factory=list)  # the subtree is [index, end_element)
    previous: list[int] = field(default_factory=list)  # the previous sibling element, or -1
    lines: list[_Line] = field(default_factory=list)
    images: list[tuple[int, str, str]] = field(default_factory=list)  # (element, src, alt) in order


def _walk(tree: etree._Element) -> _Page:
    page = _Page()
    # Per open element: (index, is_block, struck, score, href)
    stack: list[tuple[int, bool, bool, int, str | None]] = []
    parts: list[str] = []
    state = {"score": 0, "href": None, "struck": False, "has_struck": False, "all_struck": True}

    def flush() -> None:
        if not parts:  # most block boundaries close no text (add() only keeps non-blank text)
            return
        text = " ".join(" ".join(parts).split())
        parts.clear()
        if len(text) < 16 and (cents := _SPLIT_CENTS.match(text)):  # "$<b>24</b><sup>29</sup>"
            text = f"{cents.group(1)}{cents.group(2)}.{cents.group(3)}"
        if text:
            owner = next((entry[0] for entry in reversed(stack) if entry[1]), 0)
            line = _Line(text, owner, score=state["score"], href=state["href"])
            if not (state["has_struck"] and state["all_struck"]):  # a struck-out old price is no price
                found = _prices(text)
                line.prices = [_amount(m.group(0)) for m in found]
                line.bare = bool(found) and all(_NUMBER_RE.fullmatch(m.group(0).strip()) for m in found)
            page.lines.append(line)
        state.update(score=0, href=None, has_struck=False, all_struck=True)

    def add(text: str | None) -> None:
        if text and text.strip():
            top = stack[-1] if stack else (0, True, False, 0, None)
            parts.append(text)
            state["score"] = max(state["score"], top[3])
            if top[4] and not state["href"]:
                state["href"] = top[4]
            if top[2]:
                state["has_struck"] = True
            else:
                state["all_struck"] = False

    skip_depth = 0
    last_child: list[int] = []  # per open element: its last child so far
    for event, el in etree.iterwalk(tree, events=("start", "end")):
        tag = el.tag if isinstance(el.tag, str) else ""
        if event == "start":
            if skip_depth:
                skip_depth += 1
                continue
            style = el.get("style") or ""
            if tag in _SKIP_TAGS or not tag or (style and _HIDDEN.search(style)) or el.get("hidden") is not None:
                skip_depth = 1
                continue
            block = tag in _BLOCK_TAGS
            if block:
                flush()
            index = len(page.parent)
            page.parent.append(stack[-1][0] if stack else -1)
            page.tag.append(tag)
            page.first_line.append(len(page.lines))
            page.end_line.append(len(page.lines))
            page.end_element.append(index + 1)
            page.previous.append(last_child[-1] if last_child else -1)
            if last_child:
                last_child[-1] = index
            last_child.append(-1)
            above = stack[-1] if stack else (0, True, False, 0, None)
            struck = above[2] or tag in _STRUCK_TAGS or "line-through" in style
            score = above[3]
            if tag in _BOLD_TAGS or (style and _BOLD_STYLE.search(style)):
                score = max(score, 2)
            if tag[:1] == "h" and tag[1:].isdigit():
                score = max(score, 3)
            if style and (size := _FONT_SIZE.search(style)):
                points = float(size.group(1)) * (0.75 if size.group(2).lower() == "px" else 1)
                score = max(score, 3 if points >= 13 else score)
            href = above[4]
            if tag == "a" and (el.get("href") or "").startswith(("http://", "https://")):
                href = el.get("href")
                score = max(score, 3)
            if tag == "img" and (el.get("src") or "").startswith(("http://", "https://")):
                page.images.append((index, el.get("src"), " ".join((el.get("alt") or "").split())))
            stack.append((index, block, struck, score, href))
            add(el.text)
        else:
            if skip_depth:
                skip_depth -= 1
                if skip_depth == 0 and stack:
                    add(el.tail)
                continue
            index, block, *_ = stack.pop()
            last_child.pop()
            if block:
                flush()
            page.end_line[index] = len(page.lines)
            page.end_element[index] = len(page.parent)
            if stack:
                add(el.tail)
    flush()
    return page


def _html_items(tree: etree._Element) -> list[Item]:
    page = _walk(tree)
    lines = page.lines
    if not lines:
        return []
    count = len(page.parent)
    _drop_bare_numbers(lines)
    _mark_summaries(page)
    _drop_recommendations(page)
    # Prices per element subtree, bottom-up (pre-order: a child's index is above its parent's).
    priced = [0] * count
    for line in lines:
        if line.prices and not line.summary:
            priced[line.owner] += len(line.prices)
    for index in range(count - 1, 0, -1):
        if page.parent[index] >= 0:
            priced[page.parent[index]] += priced[index]
    # Name-like and summary lines per subtree, the same way.
    named = [0] * count
    strong = [0] * count  # name-like lines set off as names are (link, bold, heading, large)
    summaries = [0] * count
    for line in lines:
        if line.summary:
            summaries[line.owner] += 1
        elif line.name:
            named[line.owner] += 1
            strong[line.owner] += line.score >= 2
    for index in range(count - 1, 0, -1):
        if page.parent[index] >= 0:
            named[page.parent[index]] += named[index]
            strong[page.parent[index]] += strong[index]
            summaries[page.parent[index]] += summaries[index]

    items: list[Item] = []
    seen: set[int] = set()
    group: list[Item] = []  # the items read since the last priced summary line
    before: set[Decimal | None] = set()  # the prices of the items read before the group
    for index, line in enumerate(lines):
        if line.prices and line.summary and group:
            if _details_an_item(group, line.prices[-1], before):
                del items[len(items) - len(group):]
            else:
                before.update(i.line_total for i in group)
            group = []
        if not line.prices or line.summary:
            continue
        block = _block_of(page, line.owner, priced, named, strong, summaries)
        if block is not None and block not in seen:
            seen.add(block)
            if (item := _block_item(page, block, index)) is not None:
                _take_out_tax(page, block, item)
                items.append(item)
                group.append(item)
                if len(items) == MAX_ITEMS:
                    break
    if not items:
        items = _single_item(page)
    _decide_unit_prices(items, [p for line in lines if line.summary for p in line.prices[-1:]])
    return items[:MAX_ITEMS]


def _details_an_item(group: list[Item], total: Decimal, before: set[Decimal | None]) -> bool:
    """Items that sum to the total below them when that total is the price of an item read before
    ("Seat selection $105.44", then per traveller and flight "Sam: 25E $22.96"... "Total $105.44"):
    the group details that item and adds nothing."""
    return len(group) >= 2 and total in before \
        and sum((i.line_total or Decimal(0) for i in group), Decimal(0)) == total


def _drop_bare_numbers(lines: list[_Line]) -> None:
    """An email writes its amounts one way: where nearly all carry a currency sign, a bare number is a
    rating, a distance or a count ("5.00", "5.48 miles"), not a price."""
    marked = sum(1 for line in lines if line.prices and not line.bare)
    bare = sum(1 for line in lines if line.bare)
    if bare and 4 * bare <= marked:  # a stray one among many
        for line in lines:
            if line.bare:
                line.prices = []


def _row_of(page: _Page, owner: int) -> int:
    """The table row holding an element, else its parent: where a label's amount sits beside it."""
    node = owner
    for _ in range(4):
        if page.tag[node] == "tr":
            return node
        if page.parent[node] < 0:
            break
        node = page.parent[node]
    return page.parent[owner] if page.parent[owner] >= 0 else owner


def _mark_summaries(page: _Page) -> None:
    """Summary lines ("Subtotal: 10,00 €"), and amounts in the same row as a summary label."""
    rows: set[int] = set()
    label = False  # the line before was a "Label:" (its value is not a product name)
    for line in page.lines:
        recommend = None
        if len(line.text) <= 80:  # a heading of things not bought? (each pattern searched once per line)
            recommend = bool(_RECOMMEND.search(line.text))
            line.skip = recommend or bool(_NOT_BOUGHT_HINT.search(line.text) and _NOT_BOUGHT.search(line.text))
        if not line.href and _is_summary(line.text):  # product names are links, labels are not
            line.summary = True
            rows.add(_row_of(page, line.owner))
        else:
            line.name = not label and _name_like(line.text, recommend)
        label = len(line.text) <= 40 and line.text.endswith(":") and not _HEADING.match(line.text)
    if rows:
        for line in page.lines:
            if line.prices and not line.summary and not line.name and _row_of(page, line.owner) in rows:
                line.summary = True


def _drop_recommendations(page: _Page) -> None:
    """From a suggestions heading (or a baggage fee, cancellation cost or, below the totals, a
    payment section's heading) to the end of the smallest section holding priced lines."""
    lines = page.lines
    before = [0]  # before[i]: priced lines among lines[:i], so "any price in a range" is O(1)
    for line in lines:
        before.append(before[-1] + bool(line.prices))
    done = 0  # lines up to here are already dropped (sections nest or follow each other)
    totalled = False  # a priced summary line came before (a payment section below it restates it)
    for start, line in enumerate(lines):
        if line.summary and line.prices:
            totalled = True
        if not (line.skip or (totalled and len(line.text) <= 80 and not line.prices
                              and _PAYMENT_HEADING.fullmatch(line.text))):
            continue
        node, end = line.owner, page.end_line[line.owner]
        while page.parent[node] >= 0 and before[end] == before[start + 1]:
            node = page.parent[node]
            end = page.end_line[node]
        if not line.skip and end - start > 12:
            continue  # a payment heading heads a few lines; more is the order itself (its items below)
        for other in lines[max(start, done):end]:
            other.prices = []
            other.summary = True
            other.name = False
        done = max(done, end)


_Block = tuple[int, int]  # its first element and the element past its last (pre-order range)


def _block_of(page: _Page, owner: int, priced: list[int], named: list[int], strong: list[int],
              summaries: list[int]) -> _Block | None:
    """The lowest element above a price that holds a name, widened while that adds no price,
    name or summary line (to take in the picture cell of the same item). When that element is
    a whole section, the price's own part and the named sibling just before it ("name row,
    then a row of quantity and price")."""
    node, part = owner, owner
    while not named[node]:
        part, node = node, page.parent[node]
        if node < 0:
            return None
    if priced[node] > 2 or page.end_line[node] - page.first_line[node] > _MAX_BLOCK_LINES \
            or page.tag[node] in ("body", "html"):
        return _name_before(page, part, priced, strong)
    while (up := page.parent[node]) >= 0 and page.tag[up] not in ("body", "html") and priced[up] == priced[node] \
            and named[up] == named[node] and summaries[up] == summaries[node]:
        node = up
    return node, page.end_element[node]


def _name_before(page: _Page, part: int, priced: list[int], strong: list[int]) -> _Block | None:
    """The price's part with the previous sibling when that one holds a name set off as one
    (a link, bold: an address or a note above is not a product) and no price."""
    before = page.previous[part]
    if part == 0 or before < 0 or priced[before] or not strong[before] or priced[part] > 2 \
            or page.end_line[part] - page.first_line[before] > _MAX_BLOCK_LINES:
        return None
    return before, page.end_element[part]


_PLUS_TAX = re.compile(rf"\+\s*\D{{0,20}}?\b{_any('plus_tax')}\b", re.IGNORECASE)
# The order's total ("Total", "Gesamtpreis"): beside a single product, that product's price.
_TOTAL_LABEL = re.compile(rf"^\W{{0,3}}{_any('total_label')}\b", re.IGNORECASE)


def _is_heading(text: str) -> bool:
    return len(text) <= 40 and bool(_HEADING.match(text))


def _take_out_tax(page: _Page, block: _Block, item: Item) -> None:
    """"$118.60" then "[ $87.44 + Taxes & fees $31.16 ]": the item costs 87.44, the rest is tax
    (which the email sums apart, as it sums every item before tax)."""
    end = _end_line(page, block)
    for line in page.lines[end:end + 3]:
        if not line.prices:
            continue
        if len(line.prices) == 2 and item.quantity == 1 and _PLUS_TAX.search(line.text) \
                and line.prices[0] + line.prices[1] == item.line_total:
            item.line_total = item.unit_price = line.prices[0]
        return


def _single_item(page: _Page) -> list[Item]:
    """One product block whose only price is the order's total ("name" / "Qty: 1" / "Total: 8,89 €"):
    that total is the product's. Only when the email holds exactly one such block."""
    lines = page.lines
    found: list[Item] = []
    for index, line in enumerate(lines):
        if not (line.summary and line.prices and _TOTAL_LABEL.match(line.text)):
            continue
        quantity = 1
        for back in range(index - 1, max(-1, index - 4), -1):
            other = lines[back]
            if other.prices:
                break
            if other.name and other.score >= 2 and len(other.text) <= _MAX_NAME \
                    and not re.search(r"[^.][.!?]$", other.text) and not _MARKED.search(other.text):
                node = other.owner  # the smallest element holding both: a small block, not the page
                while page.parent[node] >= 0 and page.end_line[node] <= index:
                    node = page.parent[node]
                if page.end_line[node] - page.first_line[node] <= 10:
                    name, in_name = _split_quantity(other.text)
                    image, name = _image(page, node, page.end_element[node], name)
                    found.append(Item(name=name, quantity=in_name or quantity, line_total=line.prices[-1],
                                      url=other.href, image=image))
                break
            qty = _QTY_LABEL.search(other.text)
            if qty:
                quantity = int(qty.group(1)) or 1
            elif not (_LABELLED.match(other.text) or _VARIANT.match(other.text)):
                break
        if len(found) > 1:
            return []
    return found


def _block_item(page: _Page, block: _Block, price_index: int) -> Item | None:
    start, end = block
    first, last = page.first_line[start], _end_line(page, block)
    lines = [ln for ln in page.lines[first:last] if not ln.summary]
    # A column-heading row ("Description | Qty | Amount") above the price: the name is below it.
    after = first
    for index in range(price_index - 1, first, -1):
        if _is_heading(page.lines[index].text) and _is_heading(page.lines[index - 1].text):
            after = index + 1
            break
    row = _row_of(page, page.lines[price_index].owner)
    in_row = range(row, page.end_element[row]) if page.tag[row] == "tr" else range(0, len(page.parent))
    # a table row's name is in the row or above it, never in a later section
    candidates = [ln for n, ln in enumerate(page.lines[after:last], after)
                  if ln.name and not ln.summary and (n < price_index or ln.owner in in_row)]
    if not candidates:
        return None
    # The most prominent name-like line; a line without a price beats one with it, then length.
    best = max(candidates, key=lambda ln: (ln.score, not _LABELLED.match(ln.text), not ln.prices,
                                           min(len(ln.text), 60) // 15))
    name = _without_reference(best.text)
    quantity, unit, total = _quantity_and_prices(lines)
    if best.prices:
        name = _strip_prices(name)
    name = re.sub(rf"(?:\s+{_ISO})+$", "", name) if best.prices else name  # "Widget GBP" from "Widget 5.00 GBP"
    name, in_name = _split_quantity(name)
    if in_name:
        quantity = in_name
    if not name or len(name) > _MAX_NAME or (total is None and unit is None):
        return None
    variants = [ln.text for ln in lines if _VARIANT.match(ln.text) and ln is not best]
    image, name = _image(page, start, end, name)
    return Item(name=name, quantity=quantity, unit_price=unit, line_total=total,
                url=best.href, image=image, variant=", ".join(variants) or None)


def _image(page: _Page, start: int, end: int, name: str) -> tuple[str | None, str]:
    """The block's first picture, and the name in full when the email cut it ("Bathroom Faucet
    Brushed Nickel On...") and a picture's alt text holds the whole of it."""
    i = bisect_left(page.images, (start, "", ""))
    if i == len(page.images) or page.images[i][0] >= end:
        return None, name
    if name.endswith(("...", "…")):
        stem = name.rstrip(".… ").casefold()
        for _, _, alt in page.images[i:i + 5]:
            if len(alt) > len(stem) and alt.casefold().startswith(stem) and len(alt) <= _MAX_NAME:
                return page.images[i][1], alt
    return page.images[i][1], name


def _end_line(page: _Page, block: _Block) -> int:
    """The line past the block's last: its last top element's (the range ends with a whole subtree)."""
    start, end = block
    if page.end_element[start] == end:
        return page.end_line[start]
    node = end - 1  # the last element of the block: climb to the top element whose subtree ends there
    while page.parent[node] >= 0 and page.end_element[page.parent[node]] == end and page.parent[node] > start:
        node = page.parent[node]
    return page.end_line[node]


def _quantity_and_prices(lines: list[_Line]) -> tuple[int, Decimal | None, Decimal | None]:
    """(quantity, unit price, line total) from a block's lines."""
    quantity: int | None = None
    unit: Decimal | None = None
    prices: list[Decimal] = []
    bare: list[int] = []
    for line in lines:
        text = line.text
        if line.prices:
            qty_price = _QTY_PRICE.search(text)
            if qty_price:  # "2 x 14,90 €": the unit price
                quantity = int(qty_price.group(1))
                unit = line.prices[0]
                prices.extend(line.prices[1:])
                continue
            if len(line.prices) == 1 and _UNIT_HINT.search(_strip_prices(text)) and unit is None:
                unit = line.prices[0]
                continue
            prices.extend(line.prices)
        found = _QTY_LABEL.search(text) or (_QTY_ONLY.match(text) if not line.prices else None)
        if found and quantity is None:
            value = int(next(g for g in found.groups() if g))
            if _QTY_ONLY.match(text) and not text.lower().startswith(("x", "×")) and "x" not in text.lower():
                bare.append(value)  # a bare number: a quantity column, if it is the only one
            else:
                quantity = value
    if quantity is None and len(bare) == 1 and 0 < bare[0] < 100:
        quantity = bare[0]
    quantity = quantity if quantity and quantity > 0 else 1
    total = prices[-1] if prices else None
    if unit is None and len(prices) >= 2 and (prices[0] * quantity == prices[-1] or prices[0] == prices[-1]):
        unit = prices[0]
    if unit is not None and total is None:
        total = unit * quantity
    return quantity, unit, total


def _split_quantity(name: str) -> tuple[str, int | None]:
    """'3 x Salmon Maki' / 'Salmon Maki x3' / 'Salmon Maki (Qty: 3)' -> ('Salmon Maki', 3)."""
    lead = _QTY_LEAD.match(name)
    if lead:
        return name[lead.end():].strip(), int(lead.group(1))
    tail = _QTY_TAIL.search(name)
    if tail and tail.start() > 0:
        return name[:tail.start()].strip(), int(tail.group(1) or tail.group(2))
    return name.strip(), None


def _decide_unit_prices(items: list[Item], summary_amounts: list[Decimal]) -> None:
    """One price and quantity > 1: a line total, unless price x quantity is what the email sums.

    The rule: if the prices times the quantities add up to a summary amount (subtotal or total)
    and the prices alone do not, the prices are unit prices."""
    unsure = [i for i in items if i.quantity > 1 and i.unit_price is None and i.line_total is not None]
    if not unsure or not summary_amounts:
        return
    as_totals = sum((i.line_total or Decimal(0) for i in items), Decimal(0))
    as_units = sum(((i.line_total or Decimal(0)) * (i.quantity if i in unsure else 1) for i in items), Decimal(0))
    amounts = set(summary_amounts)
    if as_units in amounts and as_totals not in amounts:
        for item in unsure:
            item.unit_price = item.line_total
            item.line_total = (item.unit_price or Decimal(0)) * item.quantity


# --- Text ---------------------------------------------------------------------------------

def text_items(raw_lines: list[str]) -> list[Item]:
    """Priced lines ("Name .... 12,95 €", "2 x Name | 2 x 4,50 € | 9,00 €") and a name line
    whose price stands alone on the next line ("3 x Salmon Maki 8 pcs." / "24,90 €")."""
    lines = [" ".join(_COLUMNS.sub(" | ", line).split()) for line in raw_lines]
    lines = [line.strip(" |") for line in lines if line.strip(" |")]
    items: list[Item] = []
    summaries: list[Decimal] = []
    index = 0
    while index < len(lines) and len(items) < MAX_ITEMS:
        line = lines[index]
        index += 1
        if len(line) <= 80 and (_RECOMMEND.search(line) or (summaries and (
                _NOT_BOUGHT.search(line) or _PAYMENT_HEADING.fullmatch(line)))):
            break  # suggestions, or below the totals a fee schedule or the payment: what was bought came before
        if _is_summary(line):
            prices = _prices(line)
            if prices:
                summaries.append(_amount(prices[-1].group(0)))
            elif index < len(lines) and _price_only(lines[index]):
                summaries.append(_amount(_prices(lines[index])[-1].group(0)))
                index += 1
            continue
        cells = [c.strip() for c in line.split(" | ") if c.strip()]
        if any(_is_summary(c) for c in cells[:-1]):
            continue  # a summary label in one of its columns ("Payment | Visa | Total | 99.99")
        if len(cells) >= 2 and _price_only(cells[-1]):
            item = _text_item(cells[:-1], cells[-1])
        elif len(cells) == 1 and _prices(line) and _price_at_end(line):
            head = line[:_prices(line)[-1].start()]
            item = _text_item([head], line[len(head):]) if _WORD.search(head) else None
        elif len(cells) >= 2 and _price_only(cells[0]) and not _prices(" ".join(cells[1:])):
            item = _text_item(cells[1:], cells[0])  # the price first: "$7.00 -- 500 Bits"
        elif not _prices(line) and index < len(lines) and _price_only(lines[index]) and _name_like(line):
            item = _text_item([line], lines[index])
            if item is not None:
                index += 1
        else:
            item = None
        if item is not None:
            items.append(item)
    _decide_unit_prices(items, summaries)
    return items


def _price_only(text: str) -> bool:
    """A cell or line that is a price and nothing else but a quantity ("2 x 14,90 €", "$5.00 each")."""
    prices = _prices(text)
    if not prices:
        return False
    rest = MONEY.sub(" ", text)
    rest = _QTY_PRICE.sub(" ", rest) if _QTY_PRICE.search(text) else re.sub(r"^\s*\d{1,3}\s*[x×]", " ", rest)
    rest = _UNIT_HINT.sub(" ", rest)
    rest = _CODE_AFTER.sub(" ", rest)  # "6,54 € (EUR)": the code repeats the sign
    return not re.search(r"\w", rest)


def _price_at_end(line: str) -> bool:
    last = _prices(line)[-1]
    return not line[last.end():].strip(" .:")


def _text_item(cells: list[str], price_cell: str) -> Item | None:
    names = [c for c in cells if _name_like(c) and not _price_only(c)]
    if not names:
        return None
    name, quantity = _split_quantity(_strip_prices(names[0]).strip(" -–:"))
    if not name or len(name) > _MAX_NAME or not _WORD.search(name):
        return None
    # The other columns as lines of a block: the same quantity and price reading as in HTML.
    others = [_Line(c, 0, prices=[_amount(m.group(0)) for m in _prices(c)])
              for c in [*cells, price_cell] if c != names[0]]
    found_qty, unit, total = _quantity_and_prices(others)
    if quantity is None:
        quantity = found_qty
    if total is None:
        return None
    if unit is not None and unit * quantity != total and unit != total:
        unit = None
    return Item(name=name, quantity=quantity, unit_price=unit, line_total=total)
