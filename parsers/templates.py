"""Templates learned from one correction: where a sender's layout puts each field, never the values.

`learn(mail, corrected)` locates each corrected value in the email's layout model (the generic
reader's blocks and money candidates) and records an ANCHOR for it: for an amount, the static
label beside or above it and which occurrence of that label it is (or, unlabelled, the nearest
static text before it and how many blocks after); for items, the repeated block that holds them
(the name's DOM path and where its price and quantity sit from it). A template keeps no text of
the email: labels and landmarks are kept as one-way digests, compared with the next email's.

`read(template, mail)` reads another email of the same template (same sender, same layout
signature) with those anchors, and only returns a reading whose arithmetic closes (items ->
subtotal -> total); anything else is a miss and the next layer reads the email.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal

from parsers.candidates import Candidate
from parsers.generic import currency_hint
from parsers.generic import read as generic_reading
from parsers.layout import Block, Layout
from parsers.message import Email
from parsers.model import Extraction, Item, Kind
from parsers.signature import signature, text_class

AMOUNT_FIELDS = ("total", "subtotal", "shipping", "tax", "discount")
_PRICE_WINDOW = 12  # blocks from an item's name to its price
_QTY = re.compile(r"^\D{0,12}?(\d{1,3})\D{0,8}$")  # "3 pcs", "Qty: 2", "x1": one small number, few letters
_CENT = Decimal("0.01")
_CHARGES_CONSIDERED = 30  # amounts looked at for the charges the owner did not name (3 of 30: 4 525 sums)


@dataclass
class AmountAnchor:
    label: str = ""  # a digest of the static label beside or above the amount (never its words)
    occurrence: int = 0  # which of the amounts with that label (0: the first)
    landmark: str = ""  # unlabelled: a digest of the nearest static block before it
    offset: int = 0  # blocks from the landmark to the amount
    adds_to: str = ""  # a charge the owner did not name, found by the arithmetic: "shipping" or "tax"


@dataclass
class ItemAnchor:
    name_path: str  # the DOM path of an item's name block
    price_offset: int  # blocks from the name to its price
    price_path: str = ""  # the DOM path of the price block
    price_is_line_total: bool = True
    quantity_offset: int | None = None  # blocks from the name to its quantity, when it was taught


@dataclass
class Template:
    sender_domain: str
    signature: str
    amounts: dict[str, AmountAnchor] = field(default_factory=dict)
    items: ItemAnchor | None = None
    id: int | None = field(default=None, compare=False)  # its database row, when it has one

    def anchors_json(self) -> str:
        return json.dumps({"amounts": {k: asdict(v) for k, v in self.amounts.items()},
                           "items": asdict(self.items) if self.items else None}, sort_keys=True)

    @classmethod
    def from_json(cls, sender_domain: str, signature_text: str, anchors: str) -> Template:
        data = json.loads(anchors)
        items = data.get("items")
        return cls(sender_domain, signature_text, {k: AmountAnchor(**v) for k, v in data.get("amounts", {}).items()},
                   ItemAnchor(**items) if items else None)


@dataclass
class Correction:
    """What the owner says the email holds (the values saved on the purchase)."""

    total: Decimal | None = None
    subtotal: Decimal | None = None
    shipping: Decimal | None = None
    tax: Decimal | None = None
    discount: Decimal | None = None
    items: list[Item] = field(default_factory=list)


@dataclass
class Learned:
    template: Template | None
    unplaced: list[str]  # corrected fields not found in the email (not learned)


def learn(mail: Email, corrected: Correction, sender_domain: str) -> Learned:
    """The template of this email, with an anchor for every corrected value found in it."""
    reading = generic_reading(mail)
    layout, candidates = reading.layout, reading.candidates
    template = Template(sender_domain, signature(layout))
    unplaced: list[str] = []
    used: set[int] = set()
    for name in AMOUNT_FIELDS:
        value = getattr(corrected, name)
        if value is None:
            continue
        anchor = _amount_anchor(layout, candidates, name, value, used)
        if anchor is None:
            unplaced.append(name)
        else:
            template.amounts[name] = anchor
    if corrected.items:
        template.items = _item_anchor(layout, candidates, corrected.items)
        if template.items is None:
            unplaced.append("items")
        else:
            _learn_charges(layout, candidates, corrected, template, used)
    if not template.amounts and template.items is None:
        return Learned(None, unplaced)
    return Learned(template, unplaced)


def _learn_charges(layout: Layout, candidates: list[Candidate], corrected: Correction, template: Template,
                   used: set[int]) -> None:
    """What the owner did not name but the arithmetic needs: the printed sum of the items (a
    subtotal), and the charges between it and the total ("Carriage", "Duty" in a shop's own
    words) - at most three amounts after the items that make up exactly the difference."""
    priced = [item.line_total for item in corrected.items]
    if corrected.total is None or any(price is None for price in priced):
        return
    items_sum = sum(priced, Decimal(0))  # type: ignore[arg-type]
    prices = set(priced)
    free = [c for c in candidates if id(c) not in used and c.amount > 0 and c.amount not in prices]
    if corrected.subtotal is None:
        printed = next((c for c in free if c.amount == items_sum), None)
        if printed is not None and (anchor := _amount_anchor(layout, candidates, "subtotal", items_sum, used)):
            template.amounts["subtotal"] = anchor
            free = [c for c in free if id(c) not in used]
    known = (corrected.shipping or 0) + (corrected.tax or 0) - (corrected.discount or 0)
    gap = corrected.total - items_sum - known
    if gap <= 0 or (corrected.shipping is not None and corrected.tax is not None):
        return
    free = [c for c in free if c.amount < corrected.total][:_CHARGES_CONSIDERED]
    for size in (1, 2, 3):
        for combination in itertools.combinations(free, size):
            if sum((c.amount for c in combination), Decimal(0)) == gap:
                for number, candidate in enumerate(combination, 1):
                    anchor = _amount_anchor(layout, candidates, "charge", candidate.amount, used)
                    if anchor is None:
                        return
                    anchor.adds_to = "shipping" if candidate.role == "shipping" else "tax"
                    template.amounts[f"charge {number}"] = anchor
                return


def _label_key(candidate: Candidate) -> str:
    """The label's digest ("" when none, or when it holds a figure and so varies)."""
    label = candidate.label.strip()
    return "" if not label or any(ch.isdigit() for ch in label) else _digest(label.casefold().rstrip(": "))


def _digest(text: str) -> str:
    """A short one-way digest: a template compares labels and landmarks, it never keeps their
    words (a label beside an amount could be a name or a product in some layouts)."""
    return hashlib.blake2b(" ".join(text.split()).encode(), digest_size=8).hexdigest()


def _amount_anchor(layout: Layout, candidates: list[Candidate], name: str, value: Decimal,
                   used: set[int]) -> AmountAnchor | None:
    matching = [c for c in candidates if abs(c.amount) == value and id(c) not in used]
    if not matching:
        return None
    # The amount the vocabulary already labels as this field, else the first one printed.
    found = next((c for c in matching if c.role == name), matching[0])
    used.add(id(found))
    label = _label_key(found)
    if label:
        same = [c for c in candidates if _label_key(c) == label]
        return AmountAnchor(label=label, occurrence=same.index(found))
    landmark = _landmark_before(layout, found.block)
    if landmark is None:
        return None
    return AmountAnchor(landmark=_digest(text_class(landmark.text)), offset=found.block.index - landmark.index)


def _landmark_before(layout: Layout, block: Block) -> Block | None:
    """The nearest block before it whose text is the same in every email (a label, a heading)."""
    for index in range(block.index - 1, max(block.index - 30, -1), -1):
        other = layout.blocks[index]
        if text_class(other.text).startswith(("L:", "S:")):
            return other
    return None


def _item_anchor(layout: Layout, candidates: list[Candidate], items: list[Item]) -> ItemAnchor | None:
    """The repeated block the items sit in: the most common (name path, price offset) over the
    corrected items found in the layout."""
    by_block = {id(c.block): c for c in candidates}
    shapes: Counter[tuple[str, int, str, bool, int | None]] = Counter()
    for item in items:
        name_block = _block_named(layout, item.name)
        if name_block is None:
            continue
        for step in range(0, _PRICE_WINDOW + 1):
            block = layout.block(name_block.index + step)
            candidate = by_block.get(id(block)) if block is not None else None
            if candidate is None:
                continue
            amount = abs(candidate.amount)
            if amount in (item.line_total, item.unit_price):
                is_total = amount == item.line_total and item.line_total is not None
                quantity_at = _quantity_offset(layout, name_block, step, item)
                shapes[(name_block.path, step, candidate.block.path, is_total, quantity_at)] += 1
                break
    if not shapes:
        return None
    (path, offset, price_path, is_total, qty_offset), _ = shapes.most_common(1)[0]
    return ItemAnchor(path, offset, price_path, is_total, qty_offset)


def _block_named(layout: Layout, name: str) -> Block | None:
    key = " ".join(name.casefold().split())
    for block in layout.blocks:
        if " ".join(block.text.casefold().split()) == key:
            return block
    for block in layout.blocks:  # a name the owner shortened, or cut with "…" (never a sentence around it)
        text = " ".join(block.text.casefold().split())
        if len(key) >= 4 and (key in text or text.rstrip("…. ") in key) and len(text) <= 1.5 * len(key) + 10:
            return block
    return None


def _quantity_offset(layout: Layout, name_block: Block, price_step: int, item: Item) -> int | None:
    for step in (*range(1, price_step + 3), -1, -2):  # after the name first, in reading order
        block = layout.block(name_block.index + step)
        if block is not None and step != price_step and step != 0 and text_class(block.text) != "$":
            found = _QTY.search(block.text)
            if found and int(found.group(1)) == item.quantity and len(block.text) <= 20:
                return step
    return None


def read(template: Template, mail: Email, parser_name: str | None = None) -> Extraction | None:
    """The purchase this template reads in the email, or None when its arithmetic does not close."""
    reading = generic_reading(mail)
    layout, candidates = reading.layout, reading.candidates
    result = Extraction(parser=parser_name or f"learned:{template.sender_domain}", confidence=0.9, kind=Kind.ORDER)
    for name, anchor in template.amounts.items():
        amount = _read_amount(layout, candidates, anchor)
        if amount is None:
            return None  # a taught field is missing: this email is not what the template knows
        if anchor.adds_to:  # a charge found by the arithmetic: taxes and fees are one line, as in the generic reader
            setattr(result, anchor.adds_to, (getattr(result, anchor.adds_to) or Decimal(0)) + amount)
        else:
            setattr(result, name, abs(amount) if name == "discount" else amount)
    if template.items is not None:
        result.items = _read_items(layout, candidates, template.items)
        if not result.items:
            return None
    if not _closes(result):
        return None
    result.sum_checked = True
    result.currency, _ = currency_hint(reading, mail)  # as printed; the pipeline weighs a bare "$"
    return result


def _read_amount(layout: Layout, candidates: list[Candidate], anchor: AmountAnchor) -> Decimal | None:
    if anchor.label:
        same = [c for c in candidates if _label_key(c) == anchor.label]
        return same[anchor.occurrence].amount if anchor.occurrence < len(same) else None
    by_block = {id(c.block): c for c in candidates}
    for block in layout.blocks:
        if _digest(text_class(block.text)) == anchor.landmark:
            target = layout.block(block.index + anchor.offset)
            candidate = by_block.get(id(target)) if target is not None else None
            if candidate is not None:
                return candidate.amount
    return None


def _read_items(layout: Layout, candidates: list[Candidate], anchor: ItemAnchor) -> list[Item]:
    by_block = {id(c.block): c for c in candidates}
    items = []
    for block in layout.blocks:
        if block.path != anchor.name_path or id(block) in by_block or text_class(block.text).startswith("L:"):
            continue
        price_block = layout.block(block.index + anchor.price_offset)
        candidate = by_block.get(id(price_block)) if price_block is not None else None
        if candidate is None or candidate.amount <= 0 or price_block.path != anchor.price_path:
            continue
        quantity = 1
        if anchor.quantity_offset is not None:
            quantity_block = layout.block(block.index + anchor.quantity_offset)
            found = _QTY.search(quantity_block.text) if quantity_block is not None else None
            quantity = int(found.group(1)) if found and int(found.group(1)) > 0 else 1
        if anchor.price_is_line_total:
            line_total = candidate.amount
            unit = (line_total / quantity).quantize(_CENT) if quantity > 1 else line_total
        else:
            unit = candidate.amount
            line_total = unit * quantity
        items.append(Item(name=block.text, quantity=quantity, unit_price=unit, line_total=line_total))
    return items


def _closes(result: Extraction) -> bool:
    """Items add up to the subtotal (or, without one, with the breakdown to the total), and the
    breakdown adds up to the total: within a cent per line."""
    if result.total is None:
        return False
    extras = (result.shipping or 0) + (result.tax or 0) - (result.discount or 0)
    if result.items:
        items = sum((item.line_total or Decimal(0) for item in result.items), Decimal(0))
        tolerance = _CENT * len(result.items)
        if result.subtotal is not None:
            return abs(items - result.subtotal) <= tolerance and abs(result.subtotal + extras - result.total) <= _CENT
        return abs(items + extras - result.total) <= tolerance
    if result.subtotal is not None:
        return abs(result.subtotal + extras - result.total) <= _CENT
    return True  # a total alone was taught: nothing to add up
