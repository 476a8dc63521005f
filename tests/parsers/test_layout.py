"""The layout model: blocks in reading order, rows, same-row and above/below neighbours,
emphasis, built once per email from the HTML tree or from text lines."""

from __future__ import annotations

import random

from parsers.layout import Layout, layout_from_lines, layout_from_tree, layout_of
from parsers.message import Email, Headers, html_text

WORDS = ["teapot", "lamp", "candle", "mug", "scarf", "kettle", "notebook", "basket", "blanket", "vase"]


def html_mail(body: str) -> Email:
    return Email(original=Headers(), html=f"<html><body>{body}</body></html>")


def texts(layout: Layout) -> list[list[str]]:
    return [[b.text for b in row] for row in layout.rows]


def test_table_cells_share_a_row_and_divs_stack():
    mail = html_mail("<div>Thanks</div><table><tr><td>Subtotal</td><td><b>$5.00</b></td></tr>"
                     "<tr><td>Total</td><td>$6.00</td></tr></table><p>Amount:</p><p>$6.00</p>")
    layout = layout_of(mail)
    assert texts(layout) == [["Thanks"], ["Subtotal", "$5.00"], ["Total", "$6.00"], ["Amount:"], ["$6.00"]]
    subtotal, amount = layout.rows[1]
    assert layout.same_row(amount) == [subtotal] and layout.left_of(amount) == [subtotal]
    assert amount.emphasis and not subtotal.emphasis
    assert amount.cell == 1 and amount.path.endswith("td")
    value = layout.rows[4][0]
    assert layout.above(value).text == "Amount:" and layout.below(layout.rows[3][0]) is value
    assert value.previous.text == "Amount:" and layout.rows[3][0].next is value


def test_rows_are_html_texts_lines():
    """The rows are the lines every other layer reads (html_text), so they never disagree."""
    rng = random.Random(7)
    for _ in range(30):
        cells = "".join(f"<td>{rng.choice(WORDS)} {rng.randint(1, 99)}</td>" for _ in range(rng.randint(1, 4)))
        body = (f"<table><tr>{cells}</tr></table><div>{rng.choice(WORDS)}<br>{rng.choice(WORDS)}</div>"
                f"<p><span>{rng.choice(WORDS)}</span> <i>{rng.choice(WORDS)}</i></p>")
        mail = html_mail(body)
        assert layout_of(mail).lines == html_text(mail.html).split("\n")


def test_built_once_and_cached():
    mail = html_mail("<p>Total: $5.00</p>")
    assert layout_of(mail) is layout_of(mail) is mail.cache["layout"]


def test_hidden_preheader_and_styles_are_not_read():
    mail = html_mail('<div style="display:none">Total $99.00</div><style>p {}</style><p>Total $5.00</p>')
    assert texts(layout_of(mail)) == [["Total $5.00"]]


def test_bold_style_and_headings_are_emphasis():
    layout = layout_from_tree(html_mail('<h2>Order</h2><p style="font-weight: 700">Total</p><p>x</p>').tree)
    assert [b.emphasis for b in layout.blocks] == [True, True, False]


def test_text_lines_split_into_columns():
    layout = layout_from_lines(["2 x Notebook ........ 38,00 €", "Pen\t1,50 €", "Shipping:   4,90 €",
                                "Total in CHF", "53,00"])
    assert texts(layout) == [["2 x Notebook", "38,00 €"], ["Pen", "1,50 €"], ["Shipping:", "4,90 €"],
                             ["Total in CHF"], ["53,00"]]
    assert layout.above(layout.rows[4][0]).text == "Total in CHF"


def test_above_takes_the_same_column_of_a_header_row():
    layout = layout_from_lines(["Subtotal | Shipping | Total", "$10.00 | $2.00 | $12.00"])
    assert [layout.above(b).text for b in layout.rows[1]] == ["Subtotal", "Shipping", "Total"]


def test_above_skips_a_rule_of_dashes():
    layout = layout_from_lines(["Visa •••• 1234", "-----------", "$32.78"])
    assert layout.above(layout.rows[2][0]).text == "Visa •••• 1234"


def test_plain_text_mail_uses_its_text():
    mail = Email(original=Headers(), text="> Order total:  $12.00\n")
    assert texts(layout_of(mail)) == [["Order total:", "$12.00"]]
