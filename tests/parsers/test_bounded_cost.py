"""Bounded cost per email (issue 17): every crafted shape of bench.adversarial, at a size that
runs in a second or less, reads to a result (never an error) with a warning naming the cap it
hit, in a time bounded as a RATIO to a normal order's parse in the same test (the machine's
speed cancels out). Before the bounds a 20 000-row table took ~1 300 normal parses and a 5 MB
one-line text ~1 800; the bound is MAX_RATIO."""

from __future__ import annotations

import base64
import random
import re
import time
from decimal import Decimal
from email.message import EmailMessage
from types import SimpleNamespace

import pytest

from bench.adversarial import (
    MB,
    big_attachment,
    data_uri_image,
    huge_html,
    item_table,
    many_links,
    many_parts,
    nested_tables,
    one_line_text,
    tiny_parts,
)
from parsers import bounded
from parsers import layout as layout_module
from parsers.layout import MAX_BLOCK_CHARS, MAX_LAYOUT_CHARS, layout_from_lines
from parsers.layout import bounded as bounded_layout
from parsers.unwrap import unwrap
from purchaseshare.pipeline import ParseResult, run

MAX_RATIO = 400  # a shape's parse against one normal order's (measured here: 4 to ~170)


@pytest.fixture(scope="module")
def normal_seconds() -> float:
    """One parse of a normal 20-item order (the fastest of several: the least disturbed)."""
    raw = item_table(20, seed=random.randrange(1000))
    run(raw)  # imports, lazy caches
    times = []
    for _ in range(7):
        start = time.perf_counter()
        run(raw)
        times.append(time.perf_counter() - start)
    return min(times)


def _timed(raw: bytes, normal: float) -> tuple[ParseResult, float]:
    start = time.perf_counter()
    result = run(raw, source="crafted")
    ratio = (time.perf_counter() - start) / normal
    assert result.status != "error", result.error
    assert ratio < MAX_RATIO, f"{ratio:.0f} normal parses"
    return result, ratio


def _stated_total(raw: bytes) -> Decimal:
    return Decimal(re.findall(rb"<b>Total</b></td><td><b>\$([\d.]+)", raw)[-1].decode())


def _warned(result: ParseResult, pattern: str) -> None:
    assert any(re.search(pattern, w) for w in result.warnings), result.warnings


def test_a_20000_row_item_table_keeps_its_head_and_tail(normal_seconds):
    raw = item_table(20_000, seed=random.randrange(1000))  # 1.2 MB: its markup cut before the MIME parse
    result, _ = _timed(raw, normal_seconds)
    assert result.status == "purchase"
    assert bounded.ELEMENTS_CUT in result.warnings
    assert "the email was cut: it may list more items than those read" in result.warnings
    _warned(result, r"^only the first 200 of \d+ items were kept")
    assert len(result.items) == 200
    assert result.total == _stated_total(raw)  # the totals, at the end, were read


def test_an_item_table_over_the_raw_limit_is_cut_before_the_mime_parse(normal_seconds):
    raw = item_table(90_000, seed=random.randrange(1000))  # 5.3 MB
    assert len(raw) > bounded.TRIM_ABOVE
    result, _ = _timed(raw, normal_seconds)
    assert result.status == "purchase"
    _warned(result, r"^a 5\.\d MB text/html body: read its first 500 kB and last 187 kB$")
    assert result.total == _stated_total(raw)


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n"])
def test_a_large_attachment_is_never_decoded(normal_seconds, line_end: bytes):
    raw = big_attachment(5 * MB).replace(b"\n", line_end)
    result, ratio = _timed(raw, normal_seconds)
    assert result.status == "purchase" and len(result.items) == 3
    _warned(result, r"^attachment photos\.zip \(6\.\d MB\) not read$")
    assert ratio < 50  # dropped on the raw bytes: no more than a few normal parses


def test_an_oversized_pdf_invoice_is_reported_not_read(normal_seconds):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "Shop <billing@shop.example>", "sam@example.org", "Invoice"
    message.set_content("Thank you for your order. Your invoice is attached.\n\nOrder total: $25.00\n")
    pdf = b"%PDF-1.4\n" + random.randbytes(6 * MB) + b"\n%%EOF\n"
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename="invoice-77.pdf")
    result, _ = _timed(message.as_bytes(), normal_seconds)
    _warned(result, r"^attachment invoice-77\.pdf \(8\.\d MB\) not read$")
    _warned(result, r"^PDF invoice-77\.pdf: not read, \d+ kB is over the 5000 kB limit$")


def test_an_attached_email_in_base64_is_cut_inside(normal_seconds):
    """Gmail's forward as attachment: message/rfc822 base64-encoded, holding the order and a
    large attachment: the order is read, the attachment inside is not."""
    inner = base64.encodebytes(big_attachment(4 * MB)).replace(b"\n", b"\r\n")
    raw = (b"From: Sam <sam@example.org>\r\nTo: me@purchaseshare.test\r\nSubject: Fwd: Your order\r\n"
           b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n--outer\r\n'
           b"Content-Type: text/plain\r\n\r\nSee the attached order.\r\n--outer\r\n"
           b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n" + inner
           + b"--outer--\r\n")
    result, _ = _timed(raw, normal_seconds)
    assert result.forwarded and result.status == "purchase" and len(result.items) == 3
    _warned(result, r"^attachment photos\.zip \(5\.\d MB\) not read$")


def test_a_huge_html_body(normal_seconds):
    result, _ = _timed(huge_html(6 * MB), normal_seconds)
    _warned(result, r"^a 6\.0 MB text/html body: read its first")
    assert bounded.ELEMENTS_CUT in result.warnings


def test_tables_nested_1000_deep(normal_seconds):
    result, ratio = _timed(nested_tables(1000), normal_seconds)
    assert result.status in ("purchase", "unparsed")
    assert "HTML nested deeper than 255 levels: the rest of it not read" in result.warnings
    assert ratio < 50


def test_an_html_body_of_30000_links(normal_seconds):
    raw = many_links(30_000)  # 2.2 MB: its markup cut on the raw part, before any character cap
    result, _ = _timed(raw, normal_seconds)
    assert bounded.ELEMENTS_CUT in result.warnings
    assert not any(w.startswith("HTML body of") for w in result.warnings)
    assert len(unwrap(raw).html) < len(raw) // 5


def test_a_5_mb_single_line_text_body(normal_seconds):
    result, _ = _timed(one_line_text(5 * MB), normal_seconds)
    _warned(result, r"^a 5\.0 MB text/plain body: read its first")
    # Its last line survived the cut, but from a cut email a total stands only with its arithmetic.
    assert result.total is None and "total 12.00 not kept: the email was cut, and nothing read adds up to it" \
        in result.warnings


def test_5000_mime_parts(normal_seconds):
    result, _ = _timed(many_parts(5000), normal_seconds)
    _warned(result, rf"^more than {bounded.MAX_DELIMITERS // 2} MIME parts: the rest of the email not read$")


def test_200000_empty_mime_parts(normal_seconds):
    result, ratio = _timed(tiny_parts(MB), normal_seconds)  # 1 MB of "--b" lines
    _warned(result, rf"^more than {bounded.MAX_DELIMITERS // 2} MIME parts: the rest of the email not read$")
    assert result.status == "purchase" and result.total == Decimal("25.00")  # the first part was read
    assert ratio < 50


def test_a_large_inline_data_image(normal_seconds):
    result, ratio = _timed(data_uri_image(6 * MB), normal_seconds)
    _warned(result, r"^inline images dropped from a 6\.0 MB HTML body$")
    assert result.status == "purchase" and result.total == Decimal("25.00")
    assert [item.name for item in result.items] == ["Walnut desk lamp"]
    assert ratio < 80


# --- the cuts themselves -----------------------------------------------------------------------

def test_emails_up_to_the_raw_limit_are_parsed_as_they_are():
    raw = item_table(50)
    assert bounded.trim_raw(raw) == (raw, [])
    assert bounded.trim_raw(raw)[0] is raw  # not even copied


@pytest.mark.parametrize("encoding", ["base64", "quoted-printable", "8bit"])
def test_a_cut_text_body_keeps_whole_characters(encoding: str):
    rng = random.Random()
    words = ["café", "crème", "Größe", "naïve", "€"] + [f"{rng.choice('abcdefgh')}{n}" for n in range(20)]
    lines = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(100_000)]  # 5 to 7 MB
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "Shop <a@shop.example>", "sam@example.org", "Order"
    message.set_content("\n".join(lines) + "\nTotal: 12,00 €\n", cte=encoding)
    raw = message.as_bytes()
    assert len(raw) > bounded.TRIM_ABOVE
    mail = unwrap(raw)
    assert "Ã" not in mail.text and "\ufffd" not in mail.text  # no character cut in two
    assert mail.text.rstrip().endswith("Total: 12,00 €")
    assert len(mail.text) < bounded.MAX_TEXT_CHARS
    assert any(w.startswith("a ") and "text/plain body: read its first" in w for w in mail.warnings)


def test_a_layout_keeps_its_first_and_last_rows():
    lines = [f"Row {n} {'word ' * 10}" for n in range(20_000)] + ["x" * (MAX_BLOCK_CHARS * 2)]
    layout = layout_from_lines(lines)
    assert max(len(b.text) for b in layout.blocks) < MAX_BLOCK_CHARS + 5  # a long block keeps its ends
    kept, warning = bounded_layout(layout)
    assert warning is not None and warning.startswith(f"visible text of {layout.chars} characters")
    assert kept.chars <= MAX_LAYOUT_CHARS
    assert kept.blocks[0].text.startswith("Row 0 ") and kept.blocks[-1].text.startswith("x" * 100)
    assert [b.index for b in kept.blocks] == list(range(len(kept.blocks)))
    assert all(kept.rows[b.row][b.cell] is b for b in kept.blocks)


def test_a_huge_text_line_is_cut_before_it_is_split_into_words(monkeypatch: pytest.MonkeyPatch):
    line = "Total    12,00 €    " + "word " * 2_000_000 + "   end   3,00 €"  # a 10 MB line of words
    seen: list[int] = []
    real_split = layout_module._COLUMNS.split
    monkeypatch.setattr(layout_module, "_COLUMNS", SimpleNamespace(split=lambda text: seen.append(len(text)) or real_split(text)))
    layout = layout_from_lines([line])
    assert seen and max(seen) <= 4 * MAX_BLOCK_CHARS + 5  # the columns are found on the cut line
    texts = [b.text for b in layout.blocks]
    assert texts[:2] == ["Total", "12,00 €"] and texts[-2:] == ["end", "3,00 €"]  # its ends keep their columns
    assert all(len(text) < MAX_BLOCK_CHARS + 5 for text in texts)


def test_a_base64_email_body_is_cut_on_its_decoded_text():
    text = ("Zahlung über 5,00 € erhalten. " * 40 + "\n") * 4000  # ~5 MB of text, base64-encoded
    raw = (b"From: a@shop.example\r\nSubject: x\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(text.encode()))
    mail = unwrap(raw)
    assert "über" in mail.text and "Ã" not in mail.text
