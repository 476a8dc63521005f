"""Learning a sender's layout from one correction (parsers/templates.py) and reading the next
email of that layout with it (the learned layer of parsers/chain.py). Emails built here: a shop
whose labels no vocabulary knows, so the generic reader alone cannot read it."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from parsers.model import Item
from parsers.templates import Correction, Template, learn
from parsers.unwrap import unwrap
from purchaseshare.pipeline import run
from tests.parsers.test_whole_order import raw_email

WORDS = ("Ember", "Quill", "Harbor", "Linen", "Moss", "Cobalt", "Fable", "Tide", "Orchid", "Slate", "Wren", "Dune")
CENT = Decimal("0.01")
SENDER = "Kalomi Goods <orders@kalomi-goods.com>"


def _order(rng: random.Random, *, odd_layout: bool = True, tamper: bool = False) -> tuple[bytes, Correction]:
    """A receipt in the shop's own words: "Goods", "Carriage", "Duty", "Settled" (no vocabulary
    has them), item cards with a code line between the name and the price. `tamper`: the first
    card shows a price that does not add up."""
    items = []
    for _ in range(rng.randint(2, 4)):
        quantity = rng.randint(1, 3)
        unit = (Decimal(rng.randint(300, 9000)) / 100).quantize(CENT)
        items.append(Item(name=f"{rng.choice(WORDS)} {rng.choice(WORDS)} set", quantity=quantity, unit_price=unit,
                          line_total=unit * quantity))
    goods = sum((i.line_total for i in items), Decimal(0))
    carriage = (Decimal(rng.randint(0, 900)) / 100).quantize(CENT)  # 0.00 too
    duty = (goods * Decimal("0.08")).quantize(Decimal("0.01"))
    settled = goods + carriage + duty
    if odd_layout:
        cards = "".join(f"<div class='c'><div class='n'>{i.name}</div><div class='k'>Ref K-{rng.randint(100, 999)}</div>"
                        f"<div class='q'>{i.quantity} pcs</div><div class='p'>EUR {shown}</div></div>"
                        for n, i in enumerate(items) if (shown := "1.00" if tamper and n == 0 else i.line_total))
        html = (f"<html><body><div class='top'>Kalomi Goods</div><div class='hi'>Ahoy {rng.choice(WORDS)}</div>"
                f"<section>{cards}</section><table>"
                f"<tr><td>Goods</td><td>EUR {goods}</td></tr><tr><td>Carriage</td><td>EUR {carriage}</td></tr>"
                f"<tr><td>Duty</td><td>EUR {duty}</td></tr><tr><td>Settled</td><td>EUR {settled}</td></tr></table>"
                f"<div class='foot'>Kalomi Goods, Harbour Road</div></body></html>")
    else:  # the shop's other template: a plain table with ordinary labels
        rows = "".join(f"<tr><td>{i.name}</td><td>{i.quantity}</td><td>€{i.line_total}</td></tr>" for i in items)
        html = (f"<html><body><h1>Receipt</h1><p>Thank you for shopping</p><table>{rows}"
                f"<tr><td>Subtotal</td><td>€{goods}</td></tr><tr><td>Shipping</td><td>€{carriage}</td></tr>"
                f"<tr><td>VAT</td><td>€{duty}</td></tr><tr><td>Total</td><td>€{settled}</td></tr></table></body></html>")
    return raw_email(SENDER, html), Correction(total=settled, subtotal=goods, shipping=carriage, tax=duty, items=items)


def _taught(seed: int) -> Template:
    raw, correction = _order(random.Random(seed))
    lesson = learn(unwrap(raw), correction, "kalomi-goods.com")
    assert lesson.unplaced == [] and lesson.template is not None
    return lesson.template


def _same(result, correction: Correction) -> None:
    assert (result.total, result.subtotal, result.shipping, result.tax) == (
        correction.total, correction.subtotal, correction.shipping, correction.tax)
    assert [(i.name, i.quantity, i.line_total) for i in result.items] == [
        (i.name, i.quantity, i.line_total) for i in correction.items]


@pytest.mark.parametrize("seed", range(5))
def test_one_correction_teaches_the_layout_the_generic_reader_cannot_read(seed):
    template = _taught(seed)
    raw, truth = _order(random.Random(1000 + seed))
    alone = run(raw)
    assert alone.total != truth.total or [i.name for i in alone.items] != [i.name for i in truth.items]
    result = run(raw, templates=[template])
    assert result.parser == "learned:kalomi-goods.com"
    assert result.status == "purchase" and result.currency == "EUR"
    _same(result, truth)
    assert result.template_hits == [template] and result.template_misses == []


def test_the_senders_other_template_is_not_read_with_it():
    template = _taught(1)
    raw, _ = _order(random.Random(7), odd_layout=False)
    result = run(raw, templates=[template])
    assert result.parser == "generic"
    assert result.template_hits == [] and result.template_misses == []


def test_another_senders_email_is_not_read_with_it():
    template = _taught(2)
    raw, _ = _order(random.Random(8))
    stranger = raw.replace(b"orders@kalomi-goods.com", b"orders@other-shop.com")
    assert run(stranger, templates=[template]).template_hits == []


def test_a_template_whose_anchors_do_not_add_up_is_a_miss_and_the_next_layer_reads():
    template = _taught(3)
    # the same layout, but one card's price no longer matches the goods line (a changed template)
    broken, _ = _order(random.Random(9), tamper=True)
    result = run(broken, templates=[template])
    assert result.template_misses == [template] and result.template_hits == []
    assert not (result.parser or "").startswith("learned:")


def test_a_template_keeps_no_value_of_the_email_it_was_learned_from():
    raw, correction = _order(random.Random(4))
    template = learn(unwrap(raw), correction, "kalomi-goods.com").template
    assert template is not None
    stored = template.anchors_json() + template.signature
    for item in correction.items:
        assert item.name.casefold() not in stored.casefold()
        assert str(item.line_total) not in stored
    for amount in (correction.total, correction.subtotal, correction.shipping, correction.tax):
        assert str(amount) not in stored
    assert "ahoy" not in stored.casefold()
    for label in ("goods", "carriage", "duty", "settled", "kalomi"):  # not even the shop's own labels
        assert label not in stored.casefold()


def test_a_template_survives_its_json():
    template = _taught(5)
    again = Template.from_json(template.sender_domain, template.signature, template.anchors_json())
    assert again == template
    raw, truth = _order(random.Random(55))
    _same(run(raw, templates=[again]), truth)


def test_a_correction_with_values_the_email_does_not_hold_teaches_nothing():
    raw, _ = _order(random.Random(6))
    lesson = learn(unwrap(raw), Correction(total=Decimal("123456.78"), items=[Item(name="Not in this email")]),
                   "kalomi-goods.com")
    assert lesson.template is None and set(lesson.unplaced) == {"total", "items"}


@pytest.mark.parametrize("seed", range(3))
def test_charges_the_owner_did_not_name_are_learned_from_the_arithmetic(seed):
    """The owner corrects only the total and the items: the printed items' sum becomes the
    subtotal and the amounts that close the gap ("Carriage", "Duty") become charges."""
    raw, truth = _order(random.Random(seed))
    lesson = learn(unwrap(raw), Correction(total=truth.total, items=truth.items), "kalomi-goods.com")
    assert lesson.template is not None and lesson.unplaced == []
    assert {"subtotal", "charge 1"} <= set(lesson.template.amounts)
    raw, truth = _order(random.Random(200 + seed))
    result = run(raw, templates=[lesson.template])
    assert result.parser == "learned:kalomi-goods.com"
    assert (result.total, result.subtotal, result.tax) == (truth.total, truth.subtotal, truth.shipping + truth.tax)
    assert [(i.name, i.quantity, i.line_total) for i in result.items] == [
        (i.name, i.quantity, i.line_total) for i in truth.items]
