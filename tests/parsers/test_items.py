"""parsers.items.read_items on emails built here: table rows, div cards, plain text (with a
price on the next line), variant lines, truncated names, several languages and a block of
recommendations that must be ignored; and a 5 000-row table read in linear time. Its vocabulary
file holds every vocabulary in every language."""

from __future__ import annotations

import json
import random
import re
import time
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from parsers.items import LANGUAGES, MAX_ITEMS, VOCAB_FILE, load_vocabulary, read_items, text_items
from parsers.message import Email, Headers

WORDS = ("amber", "linen", "walnut", "cobalt", "meadow", "harbor", "velvet", "cedar", "orbit", "maple",
         "copper", "willow", "granite", "saffron", "juniper", "canvas", "summit", "lagoon")
THINGS = ("teapot", "scarf", "lamp", "backpack", "notebook", "candle", "mug", "blanket", "wallet", "jacket")


@dataclass
class Lang:
    """Labels an email in one language uses (what read_items must understand)."""

    qty: str  # "Qty {n}"
    size: str
    colour: str
    subtotal: str
    shipping: str
    total: str
    recommend: str
    decimal: str  # decimal separator
    symbol: str
    symbol_after: bool


LANGS = {
    "en": Lang("Qty: {n}", "Size", "Colour", "Subtotal", "Shipping", "Order total", "You might also like",
               ".", "$", False),
    "fr": Lang("Quantité : {n}", "Taille", "Couleur", "Sous-total", "Livraison", "Total TTC",
               "Vous aimerez aussi", ",", "€", True),
    "de": Lang("Menge: {n}", "Größe", "Farbe", "Zwischensumme", "Versandkosten", "Gesamtbetrag",
               "Das könnte dir auch gefallen", ",", "€", True),
    "es": Lang("Cantidad: {n}", "Talla", "Color", "Subtotal", "Envío", "Total", "También te puede gustar",
               ",", "€", True),
    "it": Lang("Quantità: {n}", "Taglia", "Colore", "Subtotale", "Spedizione", "Totale",
               "Potrebbe interessarti anche", ",", "€", True),
    "nl": Lang("Aantal: {n}", "Maat", "Kleur", "Subtotaal", "Verzendkosten", "Totaal",
               "Dit vind je misschien ook leuk", ",", "€", False),
    "pt": Lang("Quantidade: {n}", "Tamanho", "Cor", "Subtotal", "Frete", "Total", "Você também pode gostar",
               ",", "R$", False),
    "sv": Lang("Antal: {n}", "Storlek", "Färg", "Delsumma", "Frakt", "Totalt", "Du kanske också gillar",
               ",", "kr", True),
    "pl": Lang("Ilość: {n}", "Rozmiar", "Kolor", "Suma częściowa", "Dostawa", "Razem",
               "Może Ci się spodobać", ",", "zł", True),
}


@dataclass
class Want:
    name: str
    quantity: int
    unit: Decimal
    variant: str | None = None

    @property
    def total(self) -> Decimal:
        return self.unit * self.quantity


def money(amount: Decimal, lang: Lang) -> str:
    number = f"{amount:.2f}".replace(".", lang.decimal)
    return f"{number} {lang.symbol}" if lang.symbol_after else f"{lang.symbol}{number}"


def random_items(rng: random.Random, count: int, lang: Lang) -> list[Want]:
    items = []
    for n in range(count):
        name = f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} {rng.choice(THINGS)} {n + 1}"
        unit = Decimal(rng.randint(100, 25000)) / 100
        variant = rng.choice([None, f"{lang.size}: {rng.choice('SML')}", f"{lang.colour}: {rng.choice(WORDS)}"])
        items.append(Want(name, rng.randint(1, 4), unit, variant))
    return items


def html_mail(body: str) -> Email:
    return Email(original=Headers(), html=f"<html><body>{body}</body></html>")


def summary_rows(items: list[Want], lang: Lang, cell: str = "td") -> str:
    subtotal = sum((i.total for i in items), Decimal(0))
    return "".join(f"<tr><{cell}>{label}</{cell}><{cell}>{money(amount, lang)}</{cell}></tr>" for label, amount in
                   ((lang.subtotal, subtotal), (lang.shipping, Decimal("4.95")), (lang.total, subtotal + Decimal("4.95"))))


def check(read: list, wanted: list[Want], *, variants: bool = False) -> None:
    assert [i.name for i in read] == [w.name for w in wanted]
    assert [i.quantity for i in read] == [w.quantity for w in wanted]
    assert [i.line_total for i in read] == [w.total for w in wanted]
    if variants:
        assert [i.variant for i in read] == [w.variant for w in wanted]


@pytest.mark.parametrize("seed", range(12))
def test_table_rows_with_headings_and_summary(seed: int) -> None:
    rng = random.Random(seed)
    lang = LANGS[rng.choice(sorted(LANGS))]
    wanted = random_items(rng, rng.randint(1, 6), lang)
    rows = "".join(
        f'<tr class="item"><td><a href="https://shop.example/p/{n}"><b>{w.name}</b></a></td>'
        f"<td>{w.quantity}</td><td>{money(w.total, lang)}</td></tr>"
        for n, w in enumerate(wanted)
    )
    body = (f"<p>Thanks for your order!</p><table><tr><th>Item</th><th>Qty</th><th>Price</th></tr>{rows}"
            f"{summary_rows(wanted, lang)}</table>")
    read = read_items(html_mail(body))
    check(read, wanted)
    assert [i.url for i in read] == [f"https://shop.example/p/{n}" for n in range(len(wanted))]


@pytest.mark.parametrize("seed", range(12))
def test_div_cards_with_variants_truncated_names_and_recommendations(seed: int) -> None:
    rng = random.Random(100 + seed)
    lang = LANGS[rng.choice(sorted(LANGS))]
    wanted = random_items(rng, rng.randint(1, 5), lang)
    wanted[0].name = wanted[0].name[:14] + "…"  # names cut by the shop are kept as they are
    cards = "".join(
        f'<div class="card"><div class="pic"><img src="https://img.example/{n}.jpg"></div>'
        f'<div class="info"><div style="font-size:16px;font-weight:bold">'
        f'<a href="https://shop.example/p/{n}">{w.name}</a></div>'
        + (f'<div class="sub">{w.variant}</div>' if w.variant else "")
        + f'<div class="sub">{lang.qty.format(n=w.quantity)}</div></div>'
        f'<div class="price">{money(w.total, lang)}</div></div>'
        for n, w in enumerate(wanted)
    )
    others = "".join(
        f'<div class="card"><a href="https://shop.example/r/{n}"><b>{rng.choice(WORDS)} {rng.choice(THINGS)}</b>'
        f'</a><div class="price">{money(Decimal(rng.randint(500, 9000)) / 100, lang)}</div></div>'
        for n in range(3)
    )
    body = (f'<div class="order">{cards}</div><table>{summary_rows(wanted, lang)}</table>'
            f'<div class="more"><h2>{lang.recommend}</h2><div class="grid">{others}</div></div>')
    read = read_items(html_mail(body))
    check(read, wanted, variants=True)
    assert [i.image for i in read] == [f"https://img.example/{n}.jpg" for n in range(len(wanted))]
    assert [i.url for i in read] == [f"https://shop.example/p/{n}" for n in range(len(wanted))]


@pytest.mark.parametrize("seed", range(6))
def test_a_name_row_then_a_row_of_quantity_and_price(seed: int) -> None:
    """Alternating rows in one table: the name row and the price row below it make one item."""
    rng = random.Random(300 + seed)
    lang = LANGS[rng.choice(sorted(LANGS))]
    wanted = random_items(rng, rng.randint(2, 5), lang)
    rows = "".join(
        f'<tr><td colspan="2"><a href="https://shop.example/p/{n}">{w.name}</a></td></tr>'
        f"<tr><td>{lang.qty.format(n=w.quantity)}</td><td>{money(w.total, lang)}</td></tr>"
        f"<tr><td>Seller:</td><td>{rng.choice(WORDS)}{rng.randint(10, 99)}</td></tr>"
        for n, w in enumerate(wanted)
    )
    read = read_items(html_mail(f"<table>{rows}{summary_rows(wanted, lang)}</table>"))
    check(read, wanted)
    assert [i.url for i in read] == [f"https://shop.example/p/{n}" for n in range(len(wanted))]


@pytest.mark.parametrize("label", ["Vendor:", "Verkäufer:", "Vendeur :"])
def test_the_value_after_a_label_is_not_the_name(label: str) -> None:
    cards = "".join(f'<div class="card"><div>{label}</div><div>Northwind Trading Company Limited</div>'
                    f"<div>{name}</div><div>$5.00</div></div>" for name in ("Enamel mug", "Linen towel"))
    read = read_items(html_mail(cards + "<p>Total: $10.00</p>"))
    assert [(i.name, i.line_total) for i in read] == [("Enamel mug", Decimal("5.00")), ("Linen towel", Decimal("5.00"))]


@pytest.mark.parametrize("layout", ["columns", "times"])
def test_unit_price_and_line_total(layout: str) -> None:
    lang = LANGS["de"]
    wanted = [Want("Kaffeebohnen Espresso", 2, Decimal("14.90")), Want("Milchkännchen", 3, Decimal("7.25"))]
    if layout == "columns":  # a unit price column and a line total column
        rows = "".join(f"<tr><td>{w.name}</td><td>{w.quantity}</td><td>{money(w.unit, lang)}</td>"
                       f"<td>{money(w.total, lang)}</td></tr>" for w in wanted)
    else:  # "2 x 14,90 €" and nothing else
        rows = "".join(f"<tr><td>{w.name}</td><td>{w.quantity} x {money(w.unit, lang)}</td></tr>" for w in wanted)
    read = read_items(html_mail(f"<table>{rows}{summary_rows(wanted, lang)}</table>"))
    check(read, wanted)
    assert [i.unit_price for i in read] == [w.unit for w in wanted]


@pytest.mark.parametrize(("sums_units", "expected_totals"), [(True, ["29.80", "21.75"]), (False, ["14.90", "7.25"])])
def test_one_price_and_a_quantity_reads_the_way_the_sum_closes(sums_units: bool, expected_totals: list[str]) -> None:
    """One price per row and quantities > 1: unit prices when price x quantity is what the subtotal sums."""
    rows = "<tr><td>Espresso beans</td><td>Qty: 2</td><td>$14.90</td></tr>" \
           "<tr><td>Milk jug</td><td>Qty: 3</td><td>$7.25</td></tr>"
    subtotal = "$51.55" if sums_units else "$22.15"
    read = read_items(html_mail(f"<table>{rows}<tr><td>Subtotal</td><td>{subtotal}</td></tr></table>"))
    assert [i.quantity for i in read] == [2, 3]
    assert [str(i.line_total) for i in read] == expected_totals


@pytest.mark.parametrize("seed", range(10))
def test_plain_text_columns_and_price_on_the_next_line(seed: int) -> None:
    rng = random.Random(200 + seed)
    lang = LANGS[rng.choice(sorted(LANGS))]
    wanted = random_items(rng, rng.randint(2, 6), lang)
    lines = ["Thank you for your order", ""]
    for w in wanted:
        style = rng.choice(["dots", "tabs", "spaces", "next", "first"])
        if style == "next":  # "3 x Salmon Maki 8 pcs." and its price on the line below
            lines += [f"{w.quantity} x {w.name}", money(w.total, lang)]
        elif style == "first":  # "$7.00 --  500 Bits"
            lines.append(f"{money(w.total, lang)} --  {w.quantity} x {w.name}")
        else:
            sep = {"dots": " ........ ", "tabs": "\t", "spaces": "    "}[style]
            lines.append(f"{w.quantity} x {w.name}{sep}{money(w.total, lang)}")
    subtotal = sum((w.total for w in wanted), Decimal(0))
    lines += ["", f"{lang.subtotal}    {money(subtotal, lang)}", f"{lang.total}    {money(subtotal, lang)}", "",
              lang.recommend, f"{rng.choice(WORDS)} {rng.choice(THINGS)}    {money(Decimal('9.99'), lang)}"]
    read = read_items(Email(original=Headers(), text="\n".join(lines)))
    check(read, wanted)


def test_no_items_without_prices_or_from_summary_lines_only() -> None:
    assert read_items(html_mail("<h1>Spring is here</h1><p>New arrivals in store</p><a href='https://x.example'>Shop</a>")) == []
    lang = LANGS["en"]
    summary = summary_rows([Want("x", 1, Decimal("10.00"))], lang)
    assert read_items(html_mail(f"<table>{summary}</table><p>Paid with Visa</p>")) == []


def test_at_most_max_items() -> None:
    rows = "".join(f"<tr><td><a href='https://s.example/{n}'>Widget {n}</a></td><td>$1.{n % 100:02d}</td></tr>"
                   for n in range(MAX_ITEMS + 50))
    read = read_items(html_mail(f"<table>{rows}</table>"))
    assert len(read) == MAX_ITEMS
    assert read[0].name == "Widget 0" and read[-1].name == f"Widget {MAX_ITEMS - 1}"


def _table_email(rows: int) -> Email:
    body = "".join(f"<tr><td><a href='https://s.example/{n}'><b>Part number {n}</b></a><div>Size: M</div></td>"
                   f"<td>Qty 1</td><td>${n % 90 + 1}.50</td></tr>" for n in range(rows))
    return html_mail(f"<table>{body}<tr><td>Total</td><td>$10.00</td></tr></table>")


def _seconds(rows: int) -> float:
    best = float("inf")
    for _ in range(3):
        mail = _table_email(rows)
        _ = mail.tree  # parsing is not ours to time
        start = time.perf_counter()
        read_items(mail)
        best = min(best, time.perf_counter() - start)
    return best


def test_time_grows_linearly_with_the_table() -> None:
    """10x the rows must cost about 10x the time (a quadratic reader would take ~100x)."""
    small, large = _seconds(500), _seconds(5000)
    assert large / small < 25, (small, large)


def test_an_order_shown_twice_desktop_and_mobile_is_read_once() -> None:
    rows = "".join(f"<tr><td><b>{name}</b></td><td>{price}</td></tr>"
                   for name, price in (("Cedar candle", "$12.00"), ("Walnut tray", "$30.50")))
    body = f'<div class="desktop"><table>{rows}</table></div><div class="mobile"><table>{rows}</table></div>'
    read = read_items(html_mail(body + "<p>Total: $42.50</p>"))
    assert [(i.name, i.line_total) for i in read] == [("Cedar candle", Decimal("12.00")), ("Walnut tray", Decimal("30.50"))]


def test_cents_set_apart_in_superscript() -> None:
    body = '<table><tr><td><a href="https://s.example/1">Copper kettle</a></td><td>$<b>24</b><sup>29</sup></td></tr>' \
           "<tr><td>Total</td><td>$24.29</td></tr></table>"
    assert [(i.name, i.line_total) for i in read_items(html_mail(body))] == [("Copper kettle", Decimal("24.29"))]


def test_short_upper_case_names_of_a_till_receipt() -> None:
    """Abbreviated names ("PF ULT SOY BEV") are names, not currency codes."""
    rows = "".join(f"<tr><td>1</td><td>{name}</td><td>{price}</td></tr>"
                   for name, price in (("OG KAL BEV", "3.29"), ("MOMS GRHM CEREAL", "3.00"), ("ABC XYZ", "1.25")))
    read = read_items(html_mail(f"<table>{rows}<tr><td>Total</td><td>7.54</td></tr></table>"))
    assert [(i.name, i.line_total) for i in read] == [
        ("OG KAL BEV", Decimal("3.29")), ("MOMS GRHM CEREAL", Decimal("3.00")), ("ABC XYZ", Decimal("1.25"))]


# --- Breakdowns, fee tables and other priced lines that are not products ----------------------

def _name(rng: random.Random) -> str:
    return f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} {rng.choice(THINGS)}"


def _usd(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def _rows(pairs: list[tuple[str, str]]) -> str:
    return "".join(f"<tr><td>{label}</td><td>{value}</td></tr>" for label, value in pairs)


@pytest.mark.parametrize("seed", range(6))
def test_a_fare_breakdown_and_a_baggage_fee_table_are_not_items(seed: int) -> None:
    """Per-traveller fare rows ("Base fare", "Taxes and fees"), a bag fee schedule under its heading
    below the totals: no products. A seat bought as a product line ("Paid seat ...") is one."""
    rng = random.Random(400 + seed)
    fare, taxes, seat = (Decimal(rng.randint(5000, 60000)) / 100, Decimal(rng.randint(1000, 9000)) / 100,
                         Decimal(rng.randint(900, 4000)) / 100)
    seat_name = rng.choice(["Seat selection", "Paid seat (JFK-LAX)", "Extra legroom seat"])
    travellers = "".join(f"<tr><td><b>{rng.choice(WORDS).title()} {rng.choice(WORDS).title()}</b></td></tr>"
                         + _rows([(rng.choice(["Base fare:", "Airfare:", "Fare"]), _usd(fare)),
                                  ("Taxes and fees:", _usd(taxes))]) for _ in range(2))
    total = 2 * (fare + taxes) + seat
    bags = "".join(f"<tr><td>{n} bag</td><td>{_usd(Decimal(price))}</td></tr>"
                   for n, price in (("1st", "30.00"), ("2nd", "40.00")))
    heading = rng.choice(["Bag information", "Baggage allowance and charges", "Checked bag fees"])
    body = (f"<table>{travellers}{_rows([(seat_name, _usd(seat)), ('Total', _usd(total))])}</table>"
            f"<table><tr><td><b>{heading}</b></td></tr><tr><td>Checked bags</td></tr>{bags}</table>")
    read = read_items(html_mail(body))
    assert [(i.name, i.line_total) for i in read] == [(seat_name, seat)]


def test_a_price_and_its_taxes_below_it_give_the_price_before_tax() -> None:
    """"$10.21" then "[ $9.54 + Taxes & carrier-imposed fees $0.67 ]": the item costs 9.54 (the email
    counts the tax apart)."""
    rng = random.Random(7)
    rows = []
    wanted = []
    for _ in range(2):
        base, tax = Decimal(rng.randint(900, 30000)) / 100, Decimal(rng.randint(50, 4000)) / 100
        name = _name(rng)
        wanted.append((name, base))
        rows.append(f"<tr><td>{name}</td><td>{_usd(base + tax)}</td></tr>"
                    f"<tr><td>Document #: {rng.randint(10**9, 10**10)}</td></tr>"
                    f"<tr><td>[ {_usd(base)} + Taxes &amp; carrier-imposed fees {_usd(tax)} ]</td></tr>")
    read = read_items(html_mail(f"<table>{''.join(rows)}</table><p>Total cost $1.00</p>"))
    assert [(i.name, i.line_total) for i in read] == wanted


@pytest.mark.parametrize(("label", "qty_label", "amount"), [
    ("Total : £{}", "Qty: {}", "13.50"), ("Gesamtpreis: {} €", "Anzahl: {}", "4,30"),
    ("Totale: {} €", "Quantità: {}", "27,90"), ("Order total: ${}", None, "99.00")])
def test_one_product_whose_only_price_is_the_order_total(label: str, qty_label: str | None, amount: str) -> None:
    rng = random.Random(amount)
    name = _name(rng)
    qty = rng.randint(1, 3)
    block = (f'<table><tr><td><a href="https://shop.example/p/1">{name}</a></td></tr>'
             + (f"<tr><td>{qty_label.format(qty)}</td></tr>" if qty_label else "")
             + f"<tr><td><b>{label.format(amount)}</b></td></tr><tr><td>Order number: 12-345</td></tr></table>")
    read = read_items(html_mail(f"<p>Your order is confirmed</p>{block}"))
    assert [(i.name, i.quantity if qty_label else 1, i.line_total) for i in read] == \
           [(name, qty if qty_label else 1, Decimal(amount.replace(",", ".")))]
    assert read[0].url == "https://shop.example/p/1"


def test_two_products_priced_only_by_totals_give_nothing() -> None:
    """Which total belongs to which product is a guess: abstain."""
    blocks = "".join(f'<table><tr><td><a href="https://shop.example/p/{n}">Walnut tray {n}</a></td></tr>'
                     f"<tr><td>Total: $1{n}.00</td></tr></table>" for n in range(2))
    assert read_items(html_mail(blocks)) == []


def test_a_shortened_name_is_read_in_full_from_its_picture() -> None:
    full = "Cobalt meadow teapot with a removable stainless steel infuser, 1.2 litre"
    rows = (f'<tr><td><img src="https://img.example/1.jpg" alt="{full}"></td>'
            f'<td><a href="https://s.example/1">{full[:30]}...</a></td><td>$24.29</td></tr>'
            '<tr><td><img src="https://img.example/2.jpg" alt="Something else entirely"></td>'
            '<td><a href="https://s.example/2">Linen scarf, blue…</a></td><td>$16.99</td></tr>')
    read = read_items(html_mail(f"<table>{rows}<tr><td>Total</td><td>$41.28</td></tr></table>"))
    assert [i.name for i in read] == [full, "Linen scarf, blue…"]


def test_dates_times_and_cancellation_costs_are_not_items() -> None:
    """"Datum: 24.01.25" is no price; a cancellation schedule ("until March 1, 11:59 PM: $0") is not
    bought."""
    body = ("<table><tr><td><b>Cancellation cost</b></td></tr>"
            "<tr><td><ul><li>until February 28, 2026 11:59 PM: US$0</li>"
            "<li>from March 1, 2026 12:00 AM: US$231.65</li></ul></td></tr></table>"
            "<table><tr><td><b>Details zur Abholung</b></td></tr><tr><td>Datum: 24.01.25</td></tr>"
            "<tr><td>Abholzeit: 14:00 - 14:30</td></tr></table>"
            "<table><tr><td>Juniper candle</td><td>$12.00</td></tr><tr><td>Total</td><td>$12.00</td></tr></table>")
    assert [(i.name, i.line_total) for i in read_items(html_mail(body))] == [("Juniper candle", Decimal("12.00"))]


def test_bare_numbers_among_amounts_with_a_currency_are_not_prices() -> None:
    """A driver's rating "5.00" or "5.48 miles" among "$37.03" amounts: not prices."""
    body = ("<table><tr><td>Cedar lamp</td><td>$37.03</td></tr><tr><td>Service fee</td><td>$2.75</td></tr>"
            "<tr><td>Tax</td><td>$2.76</td></tr><tr><td>Total</td><td>$42.54</td></tr>"
            "<tr><td>Visa ••••1234</td><td>$42.54</td></tr></table>"
            "<table><tr><td>Black</td></tr><tr><td>5.48 miles, 23 minutes</td></tr>"
            "<tr><td><b>You rode with Sam</b></td><td>5.00</td></tr></table>")
    assert [(i.name, i.line_total) for i in read_items(html_mail(body))] == [("Cedar lamp", Decimal("37.03"))]


def test_a_row_without_a_description_takes_no_name_from_another_section() -> None:
    """Above the column headings, a note's title; the priced row has an empty description: no item."""
    body = ("<table><tr><td><b>Instructions to seller</b></td></tr><tr><td>None given.</td></tr></table>"
            "<table><tr><td>Description</td><td>Unit price</td><td>Qty</td><td>Amount</td></tr>"
            "<tr><td></td><td>£32.00 GBP</td><td>1</td><td>£32.00 GBP</td></tr>"
            "<tr><td>Subtotal</td><td>£32.00 GBP</td></tr></table>")
    assert read_items(html_mail(body)) == []


@pytest.mark.parametrize("heading", ["Payment info", "Your payment", "Zahlungsinformationen", "Payments"])
def test_a_payment_section_below_the_totals_is_not_an_item(heading: str) -> None:
    body = ("<table><tr><td>Corner room with city view</td><td>$1,296.80</td></tr>"
            "<tr><td>City tax</td><td>$45.39</td></tr><tr><td>Total price</td><td>$1,342.19</td></tr></table>"
            f"<table><tr><td><b>{heading}</b></td></tr><tr><td>Feb 27, 2026</td></tr>"
            "<tr><td>Scheduled</td><td>$1,342.19</td></tr></table>")
    assert [(i.name, i.line_total) for i in read_items(html_mail(body))] == \
           [("Corner room with city view", Decimal("1296.80"))]


def test_a_sentence_with_an_amount_is_not_a_name() -> None:
    body = ("<table><tr><td>This email confirms that you have donated £50.00 GBP to Harbor Aid using "
            "your account.</td></tr><tr><td>Donation amount:</td><td>£50.00 GBP</td></tr>"
            "<tr><td>Total:</td><td>£50.00 GBP</td></tr></table>")
    assert read_items(html_mail(body)) == []


def test_an_identifier_line_is_not_the_name() -> None:
    """"Item No X0G0 1234" beside the name: the name is the product's, in any order."""
    rows = "".join(f"<tr><td><div>{name}</div><div>{ident}</div></td><td>{price}</td><td>1</td><td>{price}</td></tr>"
                   for name, ident, price in (("Walnut tray", "Item No X0G0 FEOWSI 39704501", "£5.00 GBP"),
                                              ("Orbit lamp", "Art.-Nr. 4711", "£7.50 GBP")))
    read = read_items(html_mail(f"<table>{rows}<tr><td>Total</td><td>£12.50 GBP</td></tr></table>"))
    assert [(i.name, i.line_total) for i in read] == [("Walnut tray", Decimal("5.00")), ("Orbit lamp", Decimal("7.50"))]


def test_bare_amounts_are_prices_where_the_email_writes_them_so() -> None:
    """Item rows with bare amounts and only the totals marked "USD": the bare ones are prices."""
    body = ("<table><tr><td>Seat upgrade</td><td>35.99</td></tr><tr><td>Sales tax</td><td>2.70</td></tr>"
            "<tr><td>Total</td><td>38.69 USD</td></tr></table>")
    assert [(i.name, i.line_total) for i in read_items(html_mail(body))] == [("Seat upgrade", Decimal("35.99"))]


@pytest.mark.parametrize("greeting", ["Dear Sam Harbor,", "Hallo Sebastian!", "Bonjour Claire,", "Hola Ana,"])
def test_a_greeting_is_not_a_name(greeting: str) -> None:
    """The amount's label is no name ("Donation amount:"); the greeting above it is none either."""
    body = (f"<table><tr><td>{greeting}</td></tr><tr><td><table><tr><td>Donation amount:</td>"
            "<td>£50.00 GBP</td></tr><tr><td>Total:</td><td>£50.00 GBP</td></tr></table></td></tr></table>")
    assert read_items(html_mail(body)) == []


def test_an_airport_code_alone_is_not_a_name() -> None:
    body = ("<table><tr><td><b>Flight</b></td><td>$538.14</td></tr></table>"
            "<table><tr><td>JFK</td><td>MEX</td></tr><tr><td>$538.14</td></tr>"
            "<tr><td>Trip total</td><td>$538.14</td></tr></table>")
    assert [(i.name, i.line_total) for i in read_items(html_mail(body))] == [("Flight", Decimal("538.14"))]


def test_a_labelled_line_with_its_reference_number_is_an_item() -> None:
    """"Seat Assignment (Reference Number: 0164306206467):  35.99" is bought; "Airfare:" and the
    taxes and fees of the breakdown are not."""
    rng = random.Random(11)
    name = _name(rng).title()
    ref = rng.randint(10**12, 10**13)
    rows = _rows([("Airfare:", "266.39"), ("U.S. Transportation Tax:", "19.98"),
                  ("Passenger Civil Aviation Security Service Fee:", "11.20"), ("Total:", "297.57 USD"),
                  (f"{name} (Reference Number: {ref}):", "35.99"), ("Total:", "35.99 USD")])
    assert [(i.name, i.line_total) for i in read_items(html_mail(f"<table>{rows}</table>"))] == [(name, Decimal("35.99"))]


@pytest.mark.parametrize("heading", ["Payment details", "Baggage fees and allowance"])
def test_plain_text_stops_at_a_payment_or_fee_section_below_the_totals(heading: str) -> None:
    lines = ["Your order", "Juniper candle    $12.00", "Copper mug    $8.50", "Total    $20.50", "",
             heading, "Scheduled    $20.50", "1st checked bag    $30.00"]
    read = read_items(Email(original=Headers(), text="\n".join(lines)))
    assert [(i.name, i.line_total) for i in read] == [("Juniper candle", Decimal("12.00")), ("Copper mug", Decimal("8.50"))]


def test_a_payment_heading_above_the_items_drops_nothing() -> None:
    """"Order total" and "Payment details" in the header, then the items: they are read."""
    rows = "".join(f"<tr><td><a href='https://s.example/{n}'>{name}</a></td><td>{price}</td></tr>"
                   for n, (name, price) in enumerate((("Cedar candle", "$12.00"), ("Walnut tray", "$30.50"),
                                                       ("Linen towel", "$7.50"))))
    body = ("<div><table><tr><td>Order total:</td><td>$50.00</td></tr></table>"
            "<table><tr><td><b>Payment details</b></td></tr><tr><td>Visa ending in 1234</td></tr></table>"
            "<p>Thanks for shopping with us. Your items are below.</p><p>Track your package online.</p>"
            "<p>Delivery: Tuesday</p><p>Ship to: Sam Harbor</p><p>12 Main Street</p><p>Springfield</p>"
            f"<table><tr><th>Item</th><th>Price</th></tr>{rows}</table></div>")
    read = read_items(html_mail(body))
    assert [i.name for i in read] == ["Cedar candle", "Walnut tray", "Linen towel"]


@pytest.mark.parametrize("seed", range(4))
def test_lines_that_sum_to_an_item_already_read_detail_it(seed: int) -> None:
    """"Seat selection $105.44" in the order, then per traveller and flight the seats summing to a
    "Total $105.44": that detail adds no items. Lines summing to a new amount are items."""
    rng = random.Random(500 + seed)
    parts = [Decimal(rng.randint(1000, 4000)) / 100 for _ in range(rng.randint(2, 4))]
    seat = sum(parts, Decimal(0))
    fare = Decimal(rng.randint(10000, 50000)) / 100
    order = _rows([("Economy ticket", _usd(fare)), ("Seat selection", _usd(seat)), ("Total", _usd(fare + seat))])
    detail = _rows([(f"{rng.choice(WORDS).title()}: {n + 20}{rng.choice('ABCD')}", _usd(p)) for n, p in enumerate(parts)]
                   + [("Total", _usd(seat))])
    read = read_items(html_mail(f"<table>{order}</table><h3>Seat selection</h3><table>{detail}</table>"))
    assert [(i.name, i.line_total) for i in read] == [("Economy ticket", fare), ("Seat selection", seat)]
    other = _rows([(f"{rng.choice(WORDS).title()} {rng.choice(THINGS)}", _usd(p)) for p in parts]
                  + [("Total", _usd(seat + Decimal("1.00")))])
    read = read_items(html_mail(f"<table>{order}</table><table>{other}</table>"))
    assert len(read) == 2 + len(parts)


def test_a_currency_code_repeated_after_the_amount_keeps_a_text_row_an_item():
    # PDF invoices print "6,54 € (EUR)": the code in brackets repeats the sign
    items = text_items(["Beschreibung    Menge    Preis    Gesamt",
                        "Bretzel box (Snacks)    2    3,27 € (EUR)    6,54 € (EUR)",
                        "USt., 7%    0,46 € (EUR)", "Gesamt    7,00 € (EUR)"])
    assert [(i.name, i.quantity, i.unit_price, i.line_total) for i in items] == [
        ("Bretzel box (Snacks)", 2, Decimal("3.27"), Decimal("6.54"))]


# --- The vocabulary file (parsers/vocab/items.toml) ---------------------------------------

def _vocab_data() -> dict[str, dict[str, list[str]]]:
    with open(VOCAB_FILE, "rb") as handle:
        return tomllib.load(handle)


def _write_toml(path: Path, data: dict[str, dict[str, list[str]]]) -> None:
    """The tables as TOML (a JSON string is a TOML basic string)."""
    lines = []
    for name, table in data.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = [{', '.join(json.dumps(entry) for entry in entries)}]" for key, entries in table.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_every_items_vocabulary_is_written_in_every_language() -> None:
    data = _vocab_data()
    assert set(data) == set(load_vocabulary())
    assert len(data) >= 20
    for name, table in data.items():
        assert set(table) == {*LANGUAGES, "structure"}, name
        for entries in table.values():
            for entry in entries:
                re.compile(entry)  # each entry is a regex fragment on its own
    # the vocabularies of words (not signs or units) have words in every language
    for name in ("summary", "summary_any", "heading", "recommend", "not_bought", "payment_heading", "qty",
                 "variant", "label", "total_label", "greeting", "section_title"):
        assert all(data[name][language] for language in LANGUAGES), name


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_vocabulary_missing_a_language_is_refused(tmp_path: Path, language: str) -> None:
    data = _vocab_data()
    _write_toml(tmp_path / "items.toml", data)
    assert load_vocabulary(tmp_path / "items.toml") == load_vocabulary()  # the copy reads as the file
    name = random.Random(language).choice(sorted(data))
    del data[name][language]
    _write_toml(tmp_path / "items.toml", data)
    with pytest.raises(ValueError, match=name):
        load_vocabulary(tmp_path / "items.toml")


def test_every_not_bought_heading_holds_a_word_of_the_cheap_test() -> None:
    """_NOT_BOUGHT is only tried on lines the hint matches: a heading without a hint word is never seen."""
    data = _vocab_data()
    hints = [hint for entries in data["not_bought_hint"].values() for hint in entries]
    for entries in data["not_bought"].values():
        for entry in entries:
            assert any(hint in entry.lower() for hint in hints), entry
