"""PDF attachments: invoices built here (tests/pdfs.py) read into lines, within bounds."""

from __future__ import annotations

import email.message
import random
from decimal import Decimal
from email.message import EmailMessage

import pytest

from parsers import pdf
from parsers.generic import extract_generic
from parsers.message import Email, Headers
from parsers.pdf import COLUMN_GAP, attachment_text, pdf_lines
from parsers.unwrap import unwrap
from tests.helpers import CORPUS, IN_CI
from tests.pdfs import Text, encrypt, make_pdf, rows

# Per language: title, column heads, total label (one the plain-text reader knows), decimal comma.
LANGUAGES = {
    "en": ("Invoice", ("Description", "Qty", "Price", "Amount"), "Total", False),
    "de": ("Rechnung", ("Beschreibung", "Menge", "Preis", "Betrag"), "Summe", True),
    "fr": ("Facture", ("Désignation", "Qté", "Prix", "Montant"), "Montant total", True),
    "es": ("Factura", ("Descripción", "Cantidad", "Precio", "Importe"), "Importe total", True),
    "it": ("Fattura", ("Descrizione", "Quantità", "Prezzo", "Importo"), "Totale", True),
    "nl": ("Factuur", ("Omschrijving", "Aantal", "Prijs", "Bedrag"), "Totaal", True),
}
SYLLABLES = ("lo", "ra", "ven", "ti", "mar", "quo", "sel", "dun", "pe", "kor", "ba", "zil")


def word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def money(amount: Decimal, comma: bool) -> str:
    text = f"{amount:.2f}"
    return text.replace(".", ",") + " €" if comma else "€" + text


def invoice(rng: random.Random, language: str) -> tuple[list[str | tuple[str, ...]], Decimal, list[str]]:
    """Rows of a table invoice, its total and its item names."""
    title, heads, total_label, comma = LANGUAGES[language]
    lines: list[str | tuple[str, ...]] = [title, f"{word(rng)} {word(rng)} GmbH", "", heads]
    total = Decimal(0)
    names = []
    for _ in range(rng.randint(1, 4)):
        name, quantity = f"{word(rng)} {word(rng)}", rng.randint(1, 3)
        unit = Decimal(rng.randint(100, 9999)) / 100
        total += unit * quantity
        names.append(name)
        lines.append((name, str(quantity), money(unit, comma), money(unit * quantity, comma)))
    lines += ["", (total_label, "", "", money(total, comma))]
    return lines, total, names


def message(attachments: list[tuple[str, bytes, str]], body: str = "Your invoice is attached.",
            subject: str = "Your invoice") -> EmailMessage:
    """An order email with files attached: (file name, bytes, content type)."""
    mail = EmailMessage()
    mail["From"] = "Billing <billing@shop.example>"
    mail["To"] = "me@example.org"
    mail["Subject"] = subject
    mail["Date"] = "Tue, 14 May 2024 10:00:00 +0200"
    mail["Message-ID"] = "<invoice-1@shop.example>"
    mail.set_content(body)
    for name, data, content_type in attachments:
        maintype, subtype = content_type.split("/")
        mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return mail


def read(attachments: list[tuple[str, bytes, str]], **kwargs: str) -> Email:
    return unwrap(message(attachments, **kwargs).as_bytes())


def one_pdf(data: bytes, name: str = "invoice.pdf") -> Email:
    return read([(name, data, "application/pdf")])


def generic_total(lines: list[str]) -> Decimal | None:
    """What the plain-text generic reader makes of the lines: proof that they are readable."""
    found = extract_generic(Email(original=Headers(), text="\n".join(lines)))
    return found.total if found else None


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_a_table_invoice_keeps_each_row_on_one_line(language: str, seed: int) -> None:
    rng = random.Random(f"{language}{seed}")
    table, total, names = invoice(rng, language)
    got = attachment_text(one_pdf(make_pdf([rows(*table, column=rng.choice((120, 140, 160)))])))
    assert got.warnings == [] and got.files == ["invoice.pdf"]
    _, heads, total_label, comma = LANGUAGES[language]
    assert COLUMN_GAP.join(heads) in got.lines
    assert f"{total_label}{COLUMN_GAP}{money(total, comma)}" in got.lines
    for name in names:
        row = next(line for line in got.lines if line.startswith(name))
        assert len(row.split(COLUMN_GAP)) == 4  # name, quantity, unit price, line total
    assert generic_total(got.lines) == total


def test_words_on_a_line_stay_one_cell_and_far_columns_split() -> None:
    lines, _ = pdf_lines(make_pdf([[Text(56, 700, "Thank you for your order at the shop"),
                                    Text(56, 680, "Total"), Text(480, 680, "$53.00")]]))
    assert lines == ["Thank you for your order at the shop", f"Total{COLUMN_GAP}$53.00"]


def test_glyph_by_glyph_text_reads_as_words_and_columns() -> None:
    texts = [Text(56, 700, "Rechnung Nr. 4711", per_glyph=True),
             Text(56, 680, "Summe", per_glyph=True), Text(400, 680, "12,50 €", per_glyph=True)]
    lines, warnings = pdf_lines(make_pdf([texts]))
    assert lines == ["Rechnung Nr. 4711", f"Summe{COLUMN_GAP}12,50 €"]
    assert warnings == []


@pytest.mark.parametrize("per_glyph", [False, True])
def test_fake_bold_drawn_twice_reads_once(per_glyph: bool) -> None:
    # Fake bold draws a word twice, offset; glyph by glyph, the writer marks the copy (empty ActualText).
    texts = [Text(56, 700, "Invoice 2024-17", per_glyph=per_glyph),
             Text(56.4, 700, "Invoice 2024-17", per_glyph=per_glyph, hidden=per_glyph),
             Text(56, 680, "Total"), Text(56.4, 680, "Total", hidden=per_glyph), Text(400, 680, "$12.50")]
    lines, _ = pdf_lines(make_pdf([texts]))
    assert lines == ["Invoice 2024-17", f"Total{COLUMN_GAP}$12.50"]


def test_a_two_page_invoice_reads_in_page_order() -> None:
    rng = random.Random(7)
    table, total, names = invoice(rng, "en")
    first, second = table[:-2], table[-2:]
    got = attachment_text(one_pdf(make_pdf([rows(*first), rows(*second, top=500)])))
    assert got.warnings == []
    assert got.lines.index(f"Total{COLUMN_GAP}{money(total, False)}") > max(
        n for n, line in enumerate(got.lines) if line.startswith(tuple(names)))
    assert generic_total(got.lines) == total


def test_pages_past_the_limit_are_not_read_and_say_so() -> None:
    pages = [rows(f"Invoice page {n}", ("Item", f"{n},00 €")) for n in range(1, pdf.MAX_PAGES + 3)]
    got = attachment_text(one_pdf(make_pdf(pages)))
    assert got.warnings == [f"PDF invoice.pdf: {pdf.MAX_PAGES + 2} pages, read the first {pdf.MAX_PAGES}"]
    assert f"Invoice page {pdf.MAX_PAGES}" in got.lines
    assert f"Invoice page {pdf.MAX_PAGES + 1}" not in got.lines


@pytest.mark.parametrize("in_form", [False, True])
def test_a_page_with_too_many_text_objects_is_not_read(monkeypatch: pytest.MonkeyPatch, in_form: bool) -> None:
    # PDFium's text layer costs the square of the text objects overlapping on a line: bounded.
    monkeypatch.setattr(pdf, "MAX_TEXT_OBJECTS", 40)
    first = rows("Invoice", ("Item", "€4.00"), ("Total", "€4.00"))
    crowded = [Text(56 + (n % 10) * 11, 400, "Invoice 12,00") for n in range(41)]
    got = attachment_text(one_pdf(make_pdf([first, crowded, first], in_form=in_form)))
    assert got.lines == ["Invoice", f"Item{COLUMN_GAP}€4.00", f"Total{COLUMN_GAP}€4.00"]
    assert got.warnings == ["PDF invoice.pdf: page 2 is too complex (over 40 text objects in the pages read), "
                            "read the pages before it"]


def test_text_drawn_through_a_form_is_read() -> None:
    got = attachment_text(one_pdf(make_pdf([rows("Invoice", ("Total", "€4.00"))], in_form=True)))
    assert got.lines == ["Invoice", f"Total{COLUMN_GAP}€4.00"] and got.warnings == []


def test_a_file_that_inflates_past_the_limit_is_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf, "MAX_INFLATED", 2_000_000)
    data = make_pdf([rows("Invoice", ("Total", "€4.00"))], filler=3_000_000)
    assert len(data) < 30_000
    got = attachment_text(one_pdf(data))
    assert got.lines == [] and got.warnings == ["PDF invoice.pdf: over 2 MB once decompressed, not read"]


def test_compressed_content_and_images_within_the_limit_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf, "MAX_INFLATED", 2_000_000)
    # an image inflating past the limit does not count: reading text never decodes it
    data = make_pdf([rows("Invoice", ("Total", "€4.00"))], filler=1_000_000, image=3_000_000)
    got = attachment_text(one_pdf(data))
    assert got.lines == ["Invoice", f"Total{COLUMN_GAP}€4.00"] and got.warnings == []


def test_text_past_the_character_cap_is_cut_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf, "MAX_CHARS", 60)
    got = attachment_text(one_pdf(make_pdf([rows("Invoice", *[("Item", f"{n},00 €") for n in range(1, 30)])])))
    assert got.warnings == ["PDF invoice.pdf: text cut at 60 characters"]
    assert 0 < sum(map(len, got.lines)) <= 60


def test_a_file_over_the_size_limit_is_not_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    mail = one_pdf(make_pdf([rows("Invoice", ("Total", "9,00 €"))]))
    monkeypatch.setattr(pdf, "MAX_BYTES", 200)
    decoded = []
    get_payload = email.message.Message.get_payload

    def watched(self: email.message.Message, i: int | None = None, decode: bool = False) -> object:
        if decode:
            decoded.append(self.get_content_type())
        return get_payload(self, i, decode)

    monkeypatch.setattr(email.message.Message, "get_payload", watched)
    got = attachment_text(mail)
    assert got.lines == [] and decoded == []
    assert len(got.warnings) == 1 and "kB limit" in got.warnings[0]


def test_an_encrypted_pdf_gives_a_warning_not_an_error() -> None:
    data = encrypt(make_pdf([rows("Invoice", ("Total", "9,00 €"))]), user_password="s3cret")
    got = attachment_text(one_pdf(data))
    assert got.lines == [] and got.files == []
    assert got.warnings == ["PDF invoice.pdf: encrypted with a password, not read"]


def test_an_owner_only_encrypted_pdf_opens_with_the_empty_password() -> None:
    data = encrypt(make_pdf([rows("Invoice", ("Total", "9,00 €"))]), user_password="")
    got = attachment_text(one_pdf(data))
    assert got.lines == ["Invoice", f"Total{COLUMN_GAP}9,00 €"] and got.warnings == []


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9, 0.99])
def test_a_truncated_pdf_gives_a_warning_never_an_exception(keep: float) -> None:
    data = make_pdf([rows("Invoice", ("Total", "9,00 €")), rows("Page two")])
    got = attachment_text(one_pdf(data[: int(len(data) * keep)]))
    assert got.warnings and all(w.startswith("PDF invoice.pdf: ") for w in got.warnings)
    assert "the file is cut short" in got.warnings[0]


def test_garbage_named_pdf_is_not_read() -> None:
    got = attachment_text(read([("scan.pdf", b"GIF89a\x01\x00\x01\x00" * 20, "application/octet-stream")]))
    assert got.lines == [] and got.warnings == ["PDF scan.pdf: not a PDF file"]


def test_a_pdf_with_a_header_but_no_body_is_broken_not_an_error() -> None:
    got = attachment_text(one_pdf(b"%PDF-1.7\n" + bytes(range(256)) * 4 + b"\n%%EOF\n"))
    assert got.lines == [] and got.warnings == ["PDF invoice.pdf: broken or not a PDF, not read"]


def test_a_page_without_text_says_it_has_no_text_layer() -> None:
    got = attachment_text(one_pdf(make_pdf([[]])))
    assert got.warnings == ["PDF invoice.pdf: no text layer (a scan or an image), not read"]


def test_a_pdf_found_by_its_file_name_is_read() -> None:
    data = make_pdf([rows("Receipt", ("Total", "$12.00"))])
    got = attachment_text(read([("Receipt-2024.PDF", data, "application/octet-stream")]))
    assert got.files == ["Receipt-2024.PDF"] and f"Total{COLUMN_GAP}$12.00" in got.lines


@pytest.mark.parametrize("title", ["Boarding pass", "BORDKARTE", "Carte d'embarquement", "Tarjeta de embarque",
                                   "Carta d'imbarco"])
def test_a_boarding_pass_is_not_taken_for_the_receipt(title: str) -> None:
    data = make_pdf([rows(title, ("Flight", "XY 123"), ("Seat", "14C"), ("Total", "€89.00"), "Invoice no. 5")])
    got = attachment_text(one_pdf(data, "pass.pdf"))
    assert got.lines == [] and got.files == []
    assert got.warnings == ["PDF pass.pdf: not read as the receipt, it is a boarding pass"]


@pytest.mark.parametrize("title", ["E-Ticket", "Online-Fahrkarte", "Billet électronique", "Biglietto", "Billete"])
def test_a_ticket_is_not_taken_for_the_receipt(title: str) -> None:
    data = make_pdf([rows(title, ("Price", "€39.90"), ("Total", "€39.90"))])
    got = attachment_text(one_pdf(data, "ticket.pdf"))
    assert got.lines == [] and got.warnings == ["PDF ticket.pdf: not read as the receipt, it is a ticket"]


def test_a_receipt_that_mentions_a_boarding_pass_is_read() -> None:
    data = make_pdf([rows("Flight receipt", ("Fare", "$120.00"), ("Taxes", "$14.50"), ("Total", "$134.50"),
                          "Print your boarding pass at check-in.")])
    got = attachment_text(one_pdf(data))
    assert got.files == ["invoice.pdf"] and generic_total(got.lines) == Decimal("134.50")


def test_a_spanish_purchase_ticket_is_a_receipt() -> None:
    data = make_pdf([rows("Ticket de compra", ("Pan", "1,20 €"), ("Total", "1,20 €"))])
    assert attachment_text(one_pdf(data)).files == ["invoice.pdf"]


def test_an_invoice_for_tickets_is_a_receipt() -> None:
    data = make_pdf([rows("Invoice", ("2 x Concert ticket", "€80.00"), ("Total", "€80.00"))])
    got = attachment_text(one_pdf(data))
    assert got.files == ["invoice.pdf"] and generic_total(got.lines) == Decimal("80.00")


def test_a_pdf_without_amounts_is_not_read() -> None:
    data = make_pdf([rows("Terms and conditions of sale", "Invoice terms, valid from 24.07.23", "1. Scope",
                          "These terms apply to every order, total or partial.")])
    got = attachment_text(one_pdf(data, "terms.pdf"))
    assert got.lines == [] and got.warnings == ["PDF terms.pdf: not read as the receipt, it holds no amount"]


def test_the_receipt_is_read_and_the_boarding_pass_beside_it_skipped() -> None:
    receipt = make_pdf([rows("Receipt", ("Fare", "$120.00"), ("Total", "$134.50"))])
    boarding = make_pdf([rows("Boarding pass", ("Gate", "B12"), ("Fare", "$120.00"))])
    got = attachment_text(read([("pass.pdf", boarding, "application/pdf"), ("receipt.pdf", receipt, "application/pdf")]))
    assert got.files == ["receipt.pdf"] and generic_total(got.lines) == Decimal("134.50")
    assert got.warnings == ["PDF pass.pdf: not read as the receipt, it is a boarding pass"]


def test_only_the_first_files_are_read() -> None:
    files = [(f"r{n}.pdf", make_pdf([rows("Receipt", ("Total", f"${n}.00"))]), "application/pdf")
             for n in range(1, pdf.MAX_FILES + 2)]
    got = attachment_text(read(files))
    assert got.files == [f"r{n}.pdf" for n in range(1, pdf.MAX_FILES + 1)]
    assert got.warnings == [f"PDF: {pdf.MAX_FILES + 1} PDF attachments, read the first {pdf.MAX_FILES}"]


def test_a_pdf_attached_to_a_forwarded_original_is_read() -> None:
    data = make_pdf([rows("Facture", ("Montant total", "42,10 €"))])
    original = message([("facture.pdf", data, "application/pdf")], body="Votre facture est jointe.",
                       subject="Votre facture")
    forward = EmailMessage()
    forward["From"] = "me@example.org"
    forward["To"] = "receipts@purchaseshare.example"
    forward["Subject"] = "Fwd: Votre facture"
    forward.set_content("See the attached message.")
    forward.add_attachment(original)  # message/rfc822
    mail = unwrap(forward.as_bytes())
    assert mail.forwarded and mail.original.from_addr == "billing@shop.example"
    got = attachment_text(mail)
    assert got.files == ["facture.pdf"] and generic_total(got.lines) == Decimal("42.10")


def test_a_pdf_attached_to_an_inline_forward_is_read() -> None:
    data = make_pdf([rows("Rechnung", ("Summe", "19,99 €"))])
    body = ("---------- Forwarded message ---------\nFrom: Billing <billing@shop.example>\n"
            "Date: Tue, 14 May 2024 at 10:00\nSubject: Ihre Rechnung\nTo: <me@example.org>\n\nIhre Rechnung.\n")
    mail = read([("rechnung.pdf", data, "application/pdf")], body=body, subject="Fwd: Ihre Rechnung")
    assert mail.forwarded
    assert attachment_text(mail).files == ["rechnung.pdf"]


def test_the_result_is_computed_once_per_email(monkeypatch: pytest.MonkeyPatch) -> None:
    mail = one_pdf(make_pdf([rows("Receipt", ("Total", "$5.00"))]))
    first = attachment_text(mail)
    monkeypatch.setattr(pdf, "pdf_lines", lambda *args: pytest.fail("read twice"))
    assert attachment_text(mail) is first


def test_an_email_without_attachments_has_no_lines() -> None:
    got = attachment_text(read([]))
    assert got.lines == [] and got.warnings == [] and got.files == []


REAL_INVOICE = CORPUS / "tgtg" / "invoice_de_2023.eml"


def test_the_corpus_pdf_only_invoice_reads_its_rows() -> None:
    if not REAL_INVOICE.exists():
        if IN_CI:
            pytest.fail(f"corpus missing in CI: {REAL_INVOICE}")
        pytest.skip("corpus absent")
    got = attachment_text(unwrap(REAL_INVOICE.read_bytes()))
    assert got.warnings == [] and len(got.files) == 1
    assert "Rechnung" in got.lines  # fake-bold title read once, not "RechnungRechnung"
    assert COLUMN_GAP.join(("Beschreibung", "Menge", "Preis", "Gesamt")) in got.lines
    assert f"Gesamt{COLUMN_GAP}7,00 € (EUR)" in got.lines
    assert f"USt., 7%{COLUMN_GAP}0,46 € (EUR)" in got.lines
    assert any(line.endswith(f"{COLUMN_GAP}2{COLUMN_GAP}3,27 € (EUR){COLUMN_GAP}6,54 € (EUR)") for line in got.lines)


def test_a_price_list_is_not_read_as_a_receipt() -> None:
    data = make_pdf([rows("Price list 2024", ("Widget", "€12.00"), ("Gadget", "€19.50"))])
    got = attachment_text(one_pdf(data, "prices.pdf"))
    assert got.lines == []
    assert got.warnings == ["PDF prices.pdf: not read as the receipt, it names no invoice, receipt or total"]


@pytest.mark.parametrize("seed", range(40))
def test_a_damaged_pdf_never_raises(seed: int) -> None:
    rng = random.Random(seed)
    table, _, _ = invoice(rng, rng.choice(sorted(LANGUAGES)))
    data = bytearray(make_pdf([rows(*table), rows(*table)]))
    for _ in range(rng.randint(1, 30)):  # overwrite, delete or duplicate a few bytes anywhere
        at = rng.randrange(len(data))
        action = rng.choice(("set", "cut", "copy"))
        if action == "set":
            data[at] = rng.randrange(256)
        elif action == "cut":
            del data[at:at + rng.randint(1, 40)]
        else:
            data[at:at] = data[at:at + rng.randint(1, 40)]
    got = attachment_text(one_pdf(bytes(data)))
    assert all(w.startswith("PDF invoice.pdf: ") for w in got.warnings)
    assert got.files == (["invoice.pdf"] if got.lines else [])


def test_threads_read_pdfs_at_the_same_time() -> None:
    # PDFium is not thread-safe and the workers run threads: the module serialises its use.
    from concurrent.futures import ThreadPoolExecutor

    rng = random.Random(3)
    tables = [invoice(rng, language) for language in sorted(LANGUAGES) * 4]
    datas = [make_pdf([rows(*table)] * 3) for table, _, _ in tables]
    expected = [pdf_lines(data) for data in datas]
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(pdf_lines, datas)) == expected


def test_characters_outside_the_bmp_keep_the_text_aligned_with_pdfium_indexes(monkeypatch: pytest.MonkeyPatch) -> None:
    # PDFium counts "€5 🎁 gift" as 10 UTF-16 units; its decoded text is one shorter, so each
    # index is read alone and the pair joined, one string character per PDFium index.
    import pypdfium2.raw as raw

    units = "€5 \ud83c\udf81 gift"

    class TextPage:
        raw = None

        def get_text_range(self, index: int, count: int) -> str:
            return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le")

    monkeypatch.setattr(raw, "FPDFText_GetUnicode", lambda _, i: ord(units[i]))
    text = pdf._page_text(TextPage(), len(units))
    assert len(text) == len(units)
    assert text == "€5 🎁\x00 gift" and text.translate(pdf._NO_CHARACTER) == "€5 🎁 gift"


# --- The pipeline reads an attached invoice (merchant parsers off: an unknown shop) ---------

@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_an_email_that_only_says_the_invoice_is_attached_is_read_from_the_pdf(language: str) -> None:
    from parsers.registry import ALL_MERCHANTS
    from purchaseshare.pipeline import run

    rng = random.Random(f"pipeline-{language}")
    lines, total, names = invoice(rng, language)
    raw = message([("invoice.pdf", make_pdf([rows(*lines)]), "application/pdf")]).as_bytes()
    result = run(raw, disabled=ALL_MERCHANTS).to_json()
    assert result["status"] == "purchase" and result["parser"] == "generic", result
    assert Decimal(result["total"]) == total and result["currency"] == "EUR"
    assert any("attached PDF" in w for w in result["warnings"])
    assert [item["name"] for item in result["items"]] == names


def test_the_body_wins_where_both_speak_and_a_boarding_pass_is_never_the_receipt() -> None:
    from parsers.registry import ALL_MERCHANTS
    from purchaseshare.pipeline import run

    body = "Thank you for your order.\nBlue teapot    $24.00\nOrder total    $24.00\n"
    other = make_pdf([rows("Invoice", ("Something else", "1", "$99.00", "$99.00"), ("Total", "", "", "$99.00"))])
    raw = message([("invoice.pdf", other, "application/pdf")], body=body, subject="Your order").as_bytes()
    assert run(raw, disabled=ALL_MERCHANTS).to_json()["total"] == "24"
    boarding = make_pdf([rows("Boarding pass", "Gate B12  Seat 14C", ("Total", "", "", "$310.00"))])
    raw = message([("pass.pdf", boarding, "application/pdf")], body="Your trip is booked. Have a good flight.",
                  subject="Your booking").as_bytes()
    assert run(raw, disabled=ALL_MERCHANTS).to_json()["total"] is None
