"""How the reader bounds what one email makes it hold (issue 17), on built emails: the markup of
an HTML body with more elements than a receipt has is cut to its head and tail before any tree
(on the raw part, before the MIME parse, in a large email), the MIME parse holds no more copies
than it must, libxml2's depth stop is said, and a cut email's total needs its arithmetic."""

from __future__ import annotations

import base64
import email
import email.policy
import random
import re
import tracemalloc
from decimal import Decimal
from email.message import EmailMessage

import pytest

from bench.adversarial import html_email, item_table
from parsers import bounded
from parsers.generic import extract_generic
from parsers.message import message_from_bytes, read_mime
from parsers.unwrap import unwrap
from purchaseshare.pipeline import run
from tests.pdfs import encrypt, make_pdf, rows

WORDS = ("linen", "oak", "mug", "lamp", "kettle", "rug", "wool", "desk", "jute", "frame", "steel", "candle")


def _rows(rng: random.Random, count: int) -> list[tuple[str, str]]:
    return [(f"{rng.choice(WORDS).capitalize()} {rng.choice(WORDS)} {n}", f"{rng.randint(1, 99)}.{rng.randint(0, 99):02d}")
            for n in range(count)]


def _table(rows_: list[tuple[str, str]], total: str, breakdown: bool = True) -> str:
    cells = "\n".join(f"<tr><td>{name}</td><td>1</td><td>${price}</td></tr>" for name, price in rows_)
    closing = (f"<table><tr><td>Subtotal</td><td>${total}</td></tr><tr><td>Shipping</td><td>$0.00</td></tr>"
               f"<tr><td><b>Total</b></td><td><b>${total}</b></td></tr></table>") if breakdown \
        else f"<p>Order total: ${total}</p>"
    return (f"<html><body><h1>Thank you for your order</h1><p>Order number: B{random.randint(1000, 9999)}</p>"
            f"<table>{cells}</table>{closing}</body></html>")


def _sum(rows_: list[tuple[str, str]]) -> str:
    return str(sum((Decimal(price) for _, price in rows_), Decimal(0)))


def _encoded(html: str, cte: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = "Shop <orders@shop.example>", "sam@example.org"
    message["Subject"], message["Date"] = "Your order", "Tue, 01 Dec 2026 10:00:00 +0000"
    message.set_content(html, subtype="html", cte=cte)
    return message.as_bytes()


@pytest.mark.parametrize("cte", ["8bit", "quoted-printable", "base64"])
def test_a_large_item_table_is_cut_before_the_mime_parse_in_every_encoding(cte: str):
    rng = random.Random()
    table = _rows(rng, 12_000)
    raw = _encoded(_table(table, _sum(table)), cte)
    assert len(raw) > bounded.ELEMENTS_RAW_ABOVE
    mail = unwrap(raw)
    assert bounded.ELEMENTS_CUT in mail.warnings and mail.cut
    # The stdlib's message holds the cut part only, and the tree a receipt's number of elements.
    assert len(mail.mime.get_payload()) < len(raw) // 5
    assert int(mail.tree.xpath("count(//*)")) <= bounded.HEAD_ELEMENTS + bounded.TAIL_ELEMENTS + 10
    result = run(raw)
    assert result.status == "purchase" and result.total == Decimal(_sum(table))  # the totals, at the end
    assert "the email was cut: it may list more items than those read" in result.warnings
    read = {(item.name, item.line_total) for item in result.items}
    stated = {(name, Decimal(price)) for name, price in table}
    assert read <= stated  # every item is a whole row: no name paired with another row's price
    assert result.items[0].name == table[0][0]


@pytest.mark.parametrize("before", range(4))  # the cut falls on each of a row's four tags
def test_rows_on_both_sides_of_the_cut_stay_whole(before: int):
    rng = random.Random()
    table = _rows(rng, 4000)
    html, cut = bounded.cut_elements(_table(table, _sum(table)).replace("<h1>", "<br>" * before + "<h1>"))
    assert cut == [bounded.ELEMENTS_CUT]
    assert html.count("<tr>") < 600
    kept = re.findall(r"<tr><td>([^<]+)</td><td>1</td><td>\$([\d.]+)</td></tr>", html)
    assert kept[0] == table[0] and set(kept) <= set(table)
    assert len(kept) == html.count("<tr>") - 3  # every row kept is whole (3: the totals' rows)
    assert table[-1] in kept and f"<b>${_sum(table)}</b>" in html  # the tail keeps the last rows and totals
    assert table[len(table) // 2] not in kept


def test_a_receipt_sized_body_is_not_cut():
    html = _table(_rows(random.Random(), 400), "1.00")  # ~1 600 elements
    assert bounded.cut_elements(html) == (html, [])
    assert bounded.trim_raw(html_email(html * 3))[1] == []  # 240 kB: under the raw limit, counted on the text


@pytest.mark.parametrize("where", ["comment", "script", "style"])
def test_the_head_never_ends_inside_a_comment_a_script_or_a_style(where: str):
    rng = random.Random()
    table = _rows(rng, 3000)
    fake = "".join(f"<span>{n}</span>" for n in range(3000))  # tags that are no elements in there
    wrapped = {"comment": f"<!-- {fake} -->", "script": f"<script>var s = '{fake}';</script>",
               "style": f"<style>/* {fake} */</style>"}[where]
    head = "".join(f"<p>{name}</p>" for name, _ in table[:800])
    html, cut = bounded.cut_elements(f"<html><body>{head}{wrapped}{_table(table, _sum(table))[12:]}")
    assert cut
    opened, closed = {"comment": ("<!--", "-->"), "script": ("<script", "</script"), "style": ("<style", "</style")}[where]
    assert html.count(opened) == html.count(closed)
    assert f"<b>${_sum(table)}</b>" in html


def test_an_html_part_in_utf16_is_cut_on_its_decoded_text():
    table = _rows(random.Random(), 6000)
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "Shop <orders@shop.example>", "sam@example.org", "Your order"
    message.set_content(_table(table, _sum(table)).encode("utf-16"), maintype="text", subtype="html",
                        cte="base64", params={"charset": "utf-16"})
    mail = unwrap(message.as_bytes())
    assert "<tr>" in mail.html and mail.html.count("<tr>") < 600  # cut, after decoding
    assert bounded.ELEMENTS_CUT in mail.warnings
    assert run(message.as_bytes()).total == Decimal(_sum(table))


def test_html_nested_past_libxml2s_depth_says_what_it_lost():
    depth = random.randint(300, 400)
    html = "<table><tr><td>" * depth + "Oak desk $25.00" + "</td></tr></table>" * depth + "<p>Total $25.00</p>"
    mail = unwrap(html_email(f"<html><body>{html}</body></html>"))
    assert mail.tree is not None
    assert "HTML nested deeper than 255 levels: the rest of it not read" in mail.warnings and mail.cut
    shallow = unwrap(html_email(f"<html><body>{'<div>' * 200}Oak desk $25.00{'</div>' * 200}</body></html>"))
    assert shallow.tree is not None and not shallow.cut and not shallow.warnings


def test_a_cut_email_keeps_a_total_only_with_its_arithmetic():
    rng = random.Random()
    table = _rows(rng, 3000)
    stated = f"{rng.randint(100, 999)}.00"  # nothing adds up to it
    cut = run(html_email(_table(table, stated, breakdown=False)))
    assert cut.total is None
    assert f"total {stated} not kept: the email was cut, and nothing read adds up to it" in cut.warnings
    whole = run(html_email(_table(table[:5], stated, breakdown=False)))  # not cut: read as before
    assert whole.total == Decimal(stated)
    closed = run(html_email(_table(table, _sum(table))))  # cut, but its breakdown closes
    assert closed.total == Decimal(_sum(table))


def test_the_mime_parse_is_the_stdlibs_message():
    rng = random.Random()
    heads = [b"From sam Tue Dec 1 10:00:00 2026", b"From: a@b.example", b"Subject: x\xc3\xa9 y", b"Subject: long\n continued",
             b"X-Odd: a\rb", b"Content-Type: text/html; charset=utf-8", b"Content-Type: multipart/mixed",
             b"Content-Type: message/rfc822", b"Content-Type: multipart/alternative; boundary=zz", b"Not a header line",
             b"Content-Transfer-Encoding: base64", b"\tcontinued", b": empty name", b"Content-Type: TEXT/Plain"]
    bodies = [b"", b"<p>h\xc3\xa9llo</p>\n", b"line1\r\nline2\rline3\n", b"From x\n\n", b"\n\nleading blank\n",
              b"--zz\r\nContent-Type: text/plain\r\n\r\nhi\r\n--zz--\r\n", b"From: inner@x\n\nbody\n"]

    def seen(message: email.message.Message) -> list:
        return [(p.items(), p.get_payload() if not p.is_multipart() else None, [type(d) for d in p.defects],
                 p.get_unixfrom(), p.preamble, p.epilogue) for p in message.walk()]

    for _ in range(3000):
        line_end = rng.choice([b"\n", b"\r\n", b"\r\r\n", b"\r"])
        lines = rng.sample(heads, rng.randint(0, 6))
        raw = (line_end.join(h.replace(b"\n", line_end) for h in lines) + line_end
               + rng.choice([line_end, b"\n", b"\r\n", b""]) + rng.choice(bodies) * rng.randint(1, 3))
        assert seen(message_from_bytes(raw)) == seen(email.message_from_bytes(raw)), raw


def test_the_mime_parse_of_a_single_part_email_holds_about_its_size():
    raw = item_table(6000, seed=random.randrange(1000))  # 340 kB, one HTML part
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        message, _ = read_mime(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message.get_payload() == email.message_from_bytes(raw).get_payload()
    assert peak < 2 * len(raw), peak / len(raw)  # the stdlib alone: ~10x (a StringIO, a string per line)


def test_the_pdf_readers_warnings_stay_when_nothing_is_read():
    data = encrypt(make_pdf([rows("Invoice", ("Total", f"{random.randint(10, 99)},00 €"))]), user_password="s3cret")
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "Billing <billing@shop.example>", "me@example.org", "Invoice"
    message.set_content("Your invoice is attached.")
    message.add_attachment(data, maintype="application", subtype="pdf", filename="rechnung.pdf")
    mail = unwrap(message.as_bytes(policy=email.policy.SMTP))
    assert extract_generic(mail) is None
    assert mail.warnings == ["PDF rechnung.pdf: encrypted with a password, not read"]
    result = run(message.as_bytes(policy=email.policy.SMTP))
    assert "PDF rechnung.pdf: encrypted with a password, not read" in result.warnings


def test_base64_of_a_cut_part_is_its_decoded_markup():
    table = _rows(random.Random(), 9000)
    html = _table(table, _sum(table))
    raw = _encoded(html, "base64")
    trimmed, cut = bounded.trim_raw(raw)
    assert cut == [bounded.ELEMENTS_CUT]
    assert b"Content-Transfer-Encoding: 8bit" in trimmed and base64.b64encode(b"<html>") not in trimmed
    assert table[0][0].encode() in trimmed and table[-1][0].encode() in trimmed
