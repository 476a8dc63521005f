"""A fingerprint of an email's template: the shape of its layout with the variable text taken out.

Two receipts of one template share it although their names, amounts, dates and number of item
rows differ; two templates of one sender (an old and a new receipt design) do not. Each block
becomes a shape - its DOM path and a class of its text: a label's own words ("Subtotal:",
stable in every email of the template), else money, a number, or text - runs of one shape
(repeated item rows) count once, and the signature is the set of hashed pairs of consecutive
shapes (a bottom-k sketch, so it stays small). Similar = Jaccard similarity of the sketches.
"""

from __future__ import annotations

import itertools
import re
import zlib

from parsers.candidates import label_role
from parsers.items import VOCABULARY
from parsers.layout import Layout

SKETCH_SIZE = 256  # hashes kept: the smallest ones (a bottom-k sketch of the shape pairs)
MATCH = 0.6  # the similarity at or above which two emails share a template (tests/parsers/test_signature.py)
_MAX_BLOCKS = 3000
_MONEY = re.compile(r"\d[\d.,]*\d|\d")
_CURRENCY_MARK = re.compile(r"[$€£¥₹]|\b[A-Z]{3}\b")
_LABEL_MAX = 40
_PHRASE_WORDS = 4
_NEAR_PRICE = 3  # blocks: an item card's name sits a few blocks from its price
_GREETING = re.compile(rf"^(?:{VOCABULARY['greeting']})\b", re.IGNORECASE)  # "Dear Sam": the name varies


def text_class(text: str, priced: bool = False) -> str:
    """What a block's text is, with its variable parts taken out: a label keeps its words
    ("Order ID: 123" -> "L:order id:9"), a short phrase too (headings, a notice's few words:
    they tell an invoice from a cancellation in one frame); longer text, money and numbers
    only say what they are, and so does a phrase beside a price (an item's name varies)."""
    has_digit = any(ch.isdigit() for ch in text)
    head, colon, value = text.partition(":")
    if colon and value.strip() and len(head) <= _LABEL_MAX and not any(ch.isdigit() for ch in head):
        return f"L:{_words(head)}:{text_class(value.strip())}"
    if not has_digit and len(text) <= _LABEL_MAX and (text.endswith(":") or label_role(text)[0] is not None):
        return "L:" + _words(text.rstrip(": "))
    if has_digit and _CURRENCY_MARK.search(text) and _MONEY.search(text):
        return "$"
    if has_digit:
        return "9"
    if _GREETING.match(text):
        return "G"
    if not priced and len(text) <= _LABEL_MAX and len(text.split()) <= _PHRASE_WORDS:
        return "S:" + _words(text)
    return "T"


def _words(text: str) -> str:
    return " ".join(text.casefold().split())


def shapes(layout: Layout) -> list[str]:
    """Each block's shape in reading order, runs of one shape counted once."""
    out: list[str] = []
    blocks = layout.blocks[:_MAX_BLOCKS]
    money = [text_class(block.text) == "$" for block in blocks]
    for number, block in enumerate(blocks):
        # beside a price: in its row, or a few blocks before or after it
        priced = any(money[max(0, number - _NEAR_PRICE):number + _NEAR_PRICE + 1])
        priced = priced or any(money[other.index] for other in layout.rows[block.row] if other.index < len(money))
        shape = f"{block.path}|{text_class(block.text, priced)}"
        if not out or out[-1] != shape:
            out.append(shape)
    return out


def signature(layout: Layout) -> str:
    """The template's fingerprint as text (hex hashes, space-separated, for a database column)."""
    found = shapes(layout)
    pairs = {zlib.crc32(f"{a}\n{b}".encode()) for a, b in itertools.pairwise(found)} or {
        zlib.crc32(shape.encode()) for shape in found}
    return " ".join(f"{value:08x}" for value in sorted(pairs)[:SKETCH_SIZE])


def similarity(first: str, second: str) -> float:
    """Jaccard similarity of two signatures, estimated on their bottom-k sketches."""
    a, b = set(first.split()), set(second.split())
    if not a or not b:
        return 0.0
    union = sorted(a | b)[:SKETCH_SIZE]
    return sum(1 for value in union if value in a and value in b) / len(union)


def same_template(first: str, second: str) -> bool:
    return similarity(first, second) >= MATCH
