"""The joint selection: the total whose breakdown adds up, or an abstention - never a distractor."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from parsers.candidates import candidates_of
from parsers.layout import layout_from_lines
from parsers.select import Selection, select

CENTS = st.integers(min_value=1, max_value=50_000).map(lambda c: Decimal(c) / 100)
NAMES = st.sampled_from(["Blue teapot", "Linen scarf", "Oak board", "Tea towel", "Desk lamp", "Wool socks"])
SHAPES = st.sampled_from(["{l}: {a}", "{l} | {a}", "{l}\n{a}", "{l}  {a}"])
DISTRACTORS = st.sampled_from(["You saved {a}", "Free shipping on orders over {a}", "Points balance: {a}",
                               "Starting at {a} per month", "Your savings {a}", "Gift card balance {a}"])


def money(amount: Decimal, style: str) -> str:
    return {"$": f"${amount:.2f}", "eur": f"{amount:.2f} €".replace(".", ","), "usd": f"{amount:.2f} USD"}[style]


def choose(lines: list[str], items_sum: Decimal | None = None, item_totals: list[Decimal] | None = None) -> Selection:
    return select(candidates_of(layout_from_lines(lines)), items_sum, item_totals or [])


@st.composite
def receipts(draw: st.DrawFn) -> tuple[list[str], Decimal, set[Decimal], Decimal]:
    style = draw(st.sampled_from(["$", "eur", "usd"]))
    prices = draw(st.lists(CENTS, min_size=1, max_size=5))
    extras = {label: draw(st.none() | CENTS) for label in ("Shipping", "Tax", "Service fee", "Discount")}
    subtotal = sum(prices, Decimal(0))
    total = subtotal + sum((v for k, v in extras.items() if v is not None and k != "Discount"), Decimal(0))
    if extras["Discount"] is not None:
        extras["Discount"] = min(extras["Discount"], total)
        total -= extras["Discount"]
    lines = [f"{draw(NAMES)} {n} | {money(p, style)}" for n, p in enumerate(prices)]
    distractors = set()
    # Without a subtotal line the items' sum (from the item reader) stands in for it.
    body = [draw(SHAPES).format(l="Subtotal", a=money(subtotal, style))] if draw(st.booleans()) else []
    for label, value in extras.items():
        if value is not None:
            shown = money(value, style) if label != "Discount" else "-" + money(value, style)
            body.append(draw(SHAPES).format(l=label, a=shown))
    paid_label = draw(st.sampled_from(["Total", "Order total", "Grand total", "Amount paid", "Visa •••• 4242"]))
    body.append(draw(SHAPES).format(l=paid_label, a=money(total, style)))
    for _ in range(draw(st.integers(0, 3))):
        amount = draw(CENTS)
        distractors.add(amount)
        where = draw(st.integers(0, len(body)))
        body.insert(where, draw(DISTRACTORS).format(a=money(amount, style)))
    text = "\n".join(lines + body)
    return text.split("\n"), total, distractors, subtotal


@settings(max_examples=200, deadline=None)
@given(receipts())
def test_true_total_or_abstain_never_a_distractor(receipt: tuple[list[str], Decimal, set[Decimal], Decimal]):
    lines, total, distractors, subtotal = receipt
    chosen = choose(lines, subtotal)
    assert chosen.total in (total, None), "\n".join(lines)
    if chosen.total is not None and chosen.total in distractors and chosen.total != total:
        raise AssertionError("a distractor was taken for the total")


@settings(max_examples=200, deadline=None)
@given(receipts())
def test_a_labelled_breakdown_that_adds_up_is_read(receipt: tuple[list[str], Decimal, set[Decimal], Decimal]):
    lines, total, _, subtotal = receipt
    chosen = choose(lines, subtotal)
    assert chosen.total == total and chosen.closed, "\n".join(lines)
    assert chosen.subtotal in (subtotal, None)


@settings(max_examples=100, deadline=None)
@given(st.lists(CENTS, min_size=2, max_size=5), st.integers(0, 4))
def test_one_items_price_is_never_a_multi_item_total(prices: list[Decimal], pick: int):
    """'Amount: $x' naming one item's price, nothing adding up: abstain."""
    lines = [f"Item {n} | ${p:.2f}" for n, p in enumerate(prices)] + [f"Amount: ${prices[pick % len(prices)]:.2f}"]
    chosen = choose(lines, sum(prices, Decimal(0)), prices)
    assert chosen.total in (None, sum(prices, Decimal(0)))


def test_two_orders_in_one_email_sum_their_totals():
    lines = ["Order 1", "Item subtotal: £58.29", "Postage: £0.00", "VAT: £11.66", "Order total: £69.95",
             "Order 2", "Item subtotal: £13.32", "Postage: £0.00", "VAT: £2.67", "Order total: £15.99"]
    chosen = choose(lines)
    assert chosen.total == Decimal("85.94") and chosen.closed
    assert chosen.tax == Decimal("14.33") and any("2 orders" in w for w in chosen.warnings)


def test_conflicting_totals_that_do_not_add_up_abstain():
    chosen = choose(["Subtotal: $10.00", "Total: $12.00", "Shipping: $4.00", "Total: $19.00"])
    assert chosen.total is None and any("conflict" in w for w in chosen.warnings)


def test_no_total_label_but_a_payment_method_under_a_breakdown():
    lines = ["Fare | $230.70", "Fees | $12.10", "Taxes | $35.80", "Membership discount | -$20.00",
             "Visa •••• 1234 | $258.60"]
    chosen = choose(lines)
    assert chosen.total == Decimal("258.60") and chosen.closed and chosen.discount == Decimal("20.00")


def test_amount_charged_after_a_credit_is_the_total():
    lines = ["Base fare: $300.00", "Taxes: $40.00", "Total: $340.00", "Card payment Visa *1684", "$140.00",
             "Annual travel credit applied", "-$200.00"]
    chosen = choose(lines)
    assert chosen.total == Decimal("140.00") and chosen.discount == Decimal("200.00")


def test_points_and_a_card_named_but_no_amount_charged_abstains():
    chosen = choose(["Trip total", "$550.73", "Points redeemed", "41,838 pts", "Visa ending in 1234"])
    assert chosen.total is None and chosen.warnings


def test_points_and_a_card_payment_elsewhere_abstains():
    chosen = choose(["Card payment", "$120.00", "Trip total", "$550.73", "Points redeemed", "41,838 pts"])
    assert chosen.total in (None, Decimal("120.00"))
    assert chosen.total != Decimal(0)


def test_points_and_no_charge_stated_abstains():
    """Nothing says what was charged: 0 would be a guess (a card line the vocabulary does not know
    would make it wrong). Only "$0.00" charged, in the email, gives a total of 0."""
    chosen = choose(["Trip total", "$550.73", "Points redeemed", "41,838 pts",
                     "Visa requirements: check the entry rules of your destination country before you travel there."])
    assert chosen.total is None and any("points" in w for w in chosen.warnings)


def test_single_strong_total_without_breakdown_is_read_with_lower_confidence():
    chosen = choose(["Thanks!", "Order total: 99,60 €"])
    assert chosen.total == Decimal("99.60") and not chosen.closed and chosen.confidence < 0.8
    assert any(w.startswith("did not add up") for w in chosen.warnings)


def test_total_due_zero_after_a_payment():
    chosen = choose(["Subtotal: $7.00", "Paid: $7.39", "Total Due: $0.00"])
    assert chosen.total == Decimal("7.39")


def test_a_weak_label_alone_is_not_enough():
    chosen = choose(["Amount", "$12.00"])
    assert chosen.total is None and chosen.warnings


def test_a_sub_breakdowns_total_is_not_a_second_order():
    lines = ["Fare: $100.00", "Seat selection: $20.00", "Total: $120.00", "Seat 1A: $10.00", "Seat 1B: $10.00",
             "Total: $20.00"]
    assert choose(lines).total == Decimal("120.00")


def test_a_stated_grand_total_of_several_payments():
    lines = ["You sent a total of £9.23", "Postage: £0.00", "Total: £1.99", "Postage: £0.00", "Total: £3.75",
             "Postage: £0.00", "Total: £3.49"]
    chosen = choose(lines)
    assert chosen.total == Decimal("9.23") and chosen.closed


def test_an_unnamed_charge_inside_a_breakdown_counts():
    lines = ["Trip fare: $37.03", "Congestion surcharge: $2.75", "Black car fund", "$0.75", "Promotion: -$8.32",
             "Total: $32.21"]
    chosen = choose(lines)
    assert chosen.total == Decimal("32.21") and chosen.closed and chosen.discount == Decimal("8.32")


def test_a_conflict_elsewhere_blocks_an_unclosed_total():
    lines = ["Total: $12.00", "Total: $19.00", "Shipping: $4.00", "Order total: $30.00"]
    chosen = choose(lines)
    assert chosen.total is None and any("conflict" in w for w in chosen.warnings)


def test_a_per_passenger_total_is_a_part_not_the_total():
    lines = ["Airfare: 266.39", "Transportation tax: 19.98", "Segment tax: 10.40", "Total per passenger: 296.77 USD",
             "Total: 593.54 USD"]
    chosen = choose(lines)
    assert chosen.total in (None, Decimal("593.54"))
    assert chosen.total != Decimal("296.77")


def test_per_passenger_breakdown_is_counted_once_per_passenger():
    lines = ["Airfare: 266.39", "Transportation tax: 19.98", "Security fee: 11.20", "Total per passenger: 297.57 USD",
             "Total: 595.14 USD"]
    chosen = choose(lines)
    assert chosen.total == Decimal("595.14") and chosen.closed
    assert chosen.subtotal == Decimal("532.78") and chosen.tax == Decimal("39.96") and chosen.fees == Decimal("22.40")


def test_a_per_passenger_total_that_is_not_the_sum_of_its_lines_scales_nothing():
    # 200 + 20 is not the 230 "per passenger": the lines are not one passenger's breakdown.
    lines = ["Airfare: 200.00", "Tax: 20.00", "Total per passenger: 230.00 USD", "Total: 450.00 USD"]
    chosen = choose(lines)
    assert chosen.total == Decimal("450.00") and chosen.tax == Decimal("20.00")


@settings(max_examples=100, deadline=None)
@given(st.lists(CENTS, min_size=1, max_size=6), st.sampled_from(["Paid", "Total", "Amount paid"]))
def test_a_total_said_twice_keeps_the_copy_with_the_breakdown(prices: list[Decimal], heading: str):
    """'Paid $x' at the top, the items, then 'Subtotal $x / Tax $0.00 / Total $x': the
    subtotal and the zero tax are read, not lost to the top copy."""
    whole = sum(prices, Decimal(0))
    lines = [heading, f"${whole:.2f}", *(f"Item {n}\n${p:.2f}" for n, p in enumerate(prices)),
             "Sub total", f"${whole:.2f}", "Tax", "$0.00", "Total", f"${whole:.2f}"]
    chosen = choose("\n".join(lines).split("\n"), whole, prices)
    assert chosen.total == whole and chosen.closed
    assert chosen.subtotal == whole and chosen.tax == Decimal(0)


def test_an_unnamed_charge_between_labelled_charges_is_a_fee():
    lines = ["Trip fare: $37.03", "Congestion surcharge: $2.75", "Black car fund", "$0.75", "Sales tax: $2.76",
             "Promotion: -$8.32", "Total: $34.97"]
    chosen = choose(lines)
    assert chosen.total == Decimal("34.97") and chosen.closed
    # subtotal + tax + fees - discount = total holds with the unnamed line among the fees
    assert chosen.fees == Decimal("3.50") and chosen.tax == Decimal("2.76")


def test_an_unnamed_charge_at_the_end_of_a_breakdown_is_not_a_fee():
    lines = ["Base fare: $140.47", "Taxes and fees: $41.33", "Seat selection", "$105.44", "Total: $287.24"]
    chosen = choose(lines)
    assert chosen.total == Decimal("287.24") and chosen.closed
    assert chosen.fees is None and chosen.tax == Decimal("41.33")
    assert chosen.subtotal == Decimal("245.91")  # the fare and the seat: items + the subtotal line


def test_a_total_heading_what_later_reads_as_the_subtotal_of_the_amount_paid():
    chosen = choose(["Total: $5.99", "Plan", "$5.99", "Subtotal: $5.99", "Paid: $6.32", "Total Due: $0.00"])
    assert chosen.total == Decimal("6.32") and chosen.subtotal == Decimal("5.99")


def test_a_larger_total_first_is_not_a_subtotal_of_a_later_one():
    # 12.00 is not the later run's subtotal line: the two totals still conflict.
    chosen = choose(["Total: $12.00", "Subtotal: $10.00", "Paid: $11.00"])
    assert chosen.total is None and chosen.warnings


def test_a_breakdown_printed_under_a_weak_total_confirms_it():
    chosen = choose(["You sent an order", "Amount", "£32.00", "Details", "Subtotal", "£32.00"])
    assert chosen.total == Decimal("32.00") and chosen.closed and chosen.subtotal == Decimal("32.00")


def test_a_breakdown_under_a_weak_total_that_does_not_add_up_abstains():
    chosen = choose(["Amount", "£32.00", "Subtotal", "£30.00", "Shipping", "£1.00"])
    assert chosen.total is None and chosen.warnings


def test_everything_paid_with_points_and_zero_charged_is_a_total_of_zero():
    chosen = choose(["Trip total", "$550.73", "Points redeemed", "41,838 pts", "Charged to card", "$0.00"])
    assert chosen.total == Decimal(0) and chosen.discount == Decimal("550.73")


def test_a_zero_charge_without_points_or_credit_is_not_a_free_order():
    chosen = choose(["Subtotal: $40.00", "Total: $40.00", "Charged to card", "$0.00"])
    assert chosen.total != Decimal(0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(CENTS, CENTS), min_size=1, max_size=3), st.sampled_from(["Taxes & fees", "Taxes"]))
def test_lines_detailed_as_base_plus_taxes_read_their_taxes(lines: list[tuple[Decimal, Decimal]], words: str):
    """'Ticket $118.60 / [ $87.44 + Taxes & fees $31.16 ]' per line: the total closes on the
    details, the tax is the sum of the '+ Taxes' parts, no line is counted twice."""
    amounts = [a for base, tax in lines for a in (base, tax, base + tax)]
    # Every amount distinct: with "$0.01 + $0.01" twice, several readings add up alike.
    assume(len(set(amounts)) == len(amounts))
    total = sum((a + b for a, b in lines), Decimal(0))
    body = [f"We charged ${total:.2f}"]
    for n, (base, tax) in enumerate(lines):
        body += [f"Ticket {n}", f"${base + tax:.2f}", f"[ ${base:.2f} + {words} ${tax:.2f} ]"]
    body += ["Total cost", f"${total:.2f}"]
    chosen = choose(body)
    assert chosen.total == total and chosen.closed
    assert chosen.tax == sum((b for _, b in lines), Decimal(0))
    assert chosen.subtotal == sum((a for a, _ in lines), Decimal(0))


def test_a_plus_tax_detail_that_is_not_the_line_above_changes_nothing():
    lines = ["Subtotal: $50.00", "Ticket", "$40.00", "[ $30.00 + Taxes $5.00 ]", "Tax: $4.00", "Total: $54.00"]
    chosen = choose(lines)
    assert chosen.total == Decimal("54.00") and chosen.tax == Decimal("4.00")


def test_an_unnamed_negative_line_in_the_sum_is_a_discount():
    lines = ["Spring rolls", "9,03 €", "Delivery fee", "1,50 €", "Campaign AB12CD", "-1,50 €", "Total charged", "9,03 €"]
    chosen = choose(lines)
    assert chosen.total == Decimal("9.03") and chosen.closed
    assert chosen.discount == Decimal("1.50") and chosen.subtotal == Decimal("9.03") and chosen.shipping == Decimal("1.50")


@settings(max_examples=100, deadline=None)
@given(st.lists(CENTS.filter(lambda c: c >= 1), min_size=1, max_size=5), CENTS)
def test_the_items_stand_in_for_an_unprinted_subtotal(prices: list[Decimal], tax: Decimal):
    """(Items above the tax rounding slack: "Tax $0.01 / Total $0.02" closes on its own.)"""
    items = sum(prices, Decimal(0))
    lines = [f"Tax: ${tax:.2f}", f"Total: ${items + tax:.2f}"]
    chosen = choose(lines, items, prices)
    assert chosen.total == items + tax and chosen.closed
    assert chosen.subtotal == items and chosen.tax == tax


def test_items_alone_adding_up_to_the_total_report_no_subtotal():
    chosen = choose(["Total: $15.46"], Decimal("15.46"), [Decimal("15.46")])
    assert chosen.total == Decimal("15.46") and chosen.closed and chosen.subtotal is None
