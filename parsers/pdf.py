"""Visible text lines of the PDF invoices and receipts attached to an email.

PDFium (pypdfium2) reads the text layer. On the corpus's real invoice it keeps each table row
on one line and reads fake-bold text (drawn twice, the copy marked) once, where pypdf puts
every cell on a line of its own ("RechnungRechnung" in its layout mode); and it is several
times faster (3 against 22 ms a page). Where PDFium still breaks a row (a lone number under a
header row, text placed glyph by glyph) the pieces on one baseline are joined back. A wide
horizontal gap between two runs on one line becomes COLUMN_GAP, so "Total" and "53,00 €"
stay on one line and still read as two cells (the plain-text reader splits cells on runs of
spaces).

Bounded (each bound a warning, never an exception): a file over MAX_BYTES is skipped before
it is decoded, one whose streams inflate past MAX_INFLATED before PDFium parses it; at most
MAX_FILES files, MAX_PAGES pages, MAX_TEXT_OBJECTS text objects per file and MAX_CHARS
characters per email are read. An encrypted, broken or non-PDF file gives a warning too. A
ticket or boarding pass is not taken for a receipt, nor a PDF that names no invoice, receipt
or total. PDFium is not thread-safe: one file is read at a time per process.
"""

from __future__ import annotations

import email.message
import itertools
import logging
import re
import threading
import zlib
from dataclasses import dataclass, field

from parsers.bounded import MAX_PARTS, OMITTED_HEADER
from parsers.message import Email, walk_own_parts

log = logging.getLogger(__name__)

MAX_BYTES = 5_000_000  # real invoices are 20-500 kB; past this a file is a brochure or a scan
MAX_PAGES = 5
MAX_CHARS = 50_000  # text read per email, over every file
MAX_FILES = 3
MAX_TEXT_OBJECTS = 5_000  # per file (worst case ~0.45 s); a real invoice page has a few hundred
_MAX_OBJECTS = 50_000  # of any kind (paths, images) looked at on a page (~5 µs each)
MAX_INFLATED = 10_000_000  # bytes of decompressed streams; an invoice has a few hundred kB
COLUMN_GAP = "    "
# A gap wider than this many line heights between two characters on a line separates columns:
# word spaces are ~0.25, columns several heights apart.
_COLUMN_GAP_HEIGHTS = 1.0
_SPACE_HEIGHTS = 0.1  # letters of a word touch; a word space is ~0.24 line heights
_CACHE_KEY = "pdf_text"

# PDFium is not thread-safe and the workers run threads: one reader at a time.
_PDFIUM_LOCK = threading.Lock()

# Vocabularies, per language (en, de, fr, es, it, nl, pt, sv/da/no, pl).
_RECEIPT_WORDS = re.compile(
    r"\b(?:invoice|receipt|rechnung\w*|\w*quittung|\w*beleg|kassenbon|facture|re[çc]u|ticket de caisse|"
    r"ticket de (?:compra|venta)|factura|recibo|fattura|ricevuta|scontrino|factuur|kassabon|kwitantie|fatura|nota fiscal|"
    r"kvitto|faktura|kvittering|paragon|rachunek)\b", re.IGNORECASE)
_TOTAL_WORDS = re.compile(
    r"\b(?:total|totale|totaal|totalt|gesamt\w*|summe|betrag|montant|importe|summa|razem|suma)\b",
    re.IGNORECASE)
# A boarding pass is never a receipt, whatever else it says: found in its first lines.
_TITLE_LINES = 3
_BOARDING_WORDS = re.compile(
    r"\b(?:boarding[ -]?(?:pass|card)|bordkarte|carte d.embarquement|tarjeta de embarque|"
    r"carta d.imbarco|instapkaart|boardingkort|karta pokładowa|cart[aã]o de embarque)\b", re.IGNORECASE)
# A ticket (train, event, e-ticket) is one unless it also calls itself an invoice or receipt.
_TICKET_WORDS = re.compile(
    r"\b(?:e-?ticket|ticket|billet|billete|biglietto|fahrkarte|fahrschein|eintrittskarte|"
    r"bilhete|biljett|bilet|kaartje|admission)\b", re.IGNORECASE)
# An amount with cents ("53,00", "1.234,50", "$12.99"), not a date ("24.07.23").
_AMOUNT = re.compile(r"(?<![\d.,])(?:\d{1,3}(?:[.,' \u202f]\d{3})+|\d+)[.,]\d{2}(?![.,]?\d)")


@dataclass
class PdfText:
    """What the email's PDFs say: their lines in reading order, and what went wrong."""

    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # the attachments whose lines these are

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def attachment_text(mail: Email) -> PdfText:
    """The lines of the invoice/receipt PDFs attached to the (original) message; cached."""
    cached = mail.cache.get(_CACHE_KEY)
    if isinstance(cached, PdfText):
        return cached
    result = PdfText()
    budget = MAX_CHARS
    parts = _pdf_parts(mail.mime) if mail.mime is not None else []
    if len(parts) > MAX_FILES:
        result.warnings.append(f"PDF: {len(parts)} PDF attachments, read the first {MAX_FILES}")
    for name, part in parts[:MAX_FILES]:
        if budget <= 0:
            result.warnings.append(f"PDF {name}: not read, the text limit ({MAX_CHARS} characters) was reached")
            continue
        lines, warnings = _read_part(name, part, budget)
        result.warnings += warnings
        if lines:
            result.lines += lines
            result.files.append(name)
            budget -= sum(len(line) for line in lines)
    mail.cache[_CACHE_KEY] = result
    return result


def _pdf_parts(message: email.message.Message) -> list[tuple[str, email.message.Message]]:
    """The message's own parts that claim to be PDFs (by type or file name), named."""
    found = []
    for part in itertools.islice(walk_own_parts(message), MAX_PARTS):
        if part.is_multipart():
            continue
        name = str(part.get_filename() or "")
        if part.get_content_type() == "application/pdf" or name.lower().endswith(".pdf"):
            found.append((name or f"attachment {len(found) + 1}", part))
    return found


def _read_part(name: str, part: email.message.Message, budget: int) -> tuple[list[str], list[str]]:
    """One attachment's lines (empty when it is skipped) and its warnings."""
    omitted = part.get(OMITTED_HEADER)
    if omitted is not None:  # parsers.bounded dropped its body before the MIME parse: too large
        size = int(omitted) if str(omitted).strip().isdigit() else 0
        return [], [f"PDF {name}: not read, {size // 1000} kB is over the {MAX_BYTES // 1000} kB limit"]
    encoded = part.get_payload()
    if not isinstance(encoded, str):
        return [], [f"PDF {name}: not a file part"]
    # Judge the size on the encoded text, so an oversized file is never decoded.
    is_base64 = str(part.get("content-transfer-encoding", "")).strip().lower() == "base64"
    size = len(encoded) * 3 // 4 if is_base64 else len(encoded)
    if size > MAX_BYTES:
        return [], [f"PDF {name}: not read, {size // 1000} kB is over the {MAX_BYTES // 1000} kB limit"]
    try:
        data = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding
        data = None
    if not isinstance(data, bytes) or b"%PDF-" not in data[:1024]:
        return [], [f"PDF {name}: not a PDF file"]
    lines, warnings = pdf_lines(data, budget)
    warnings = [f"PDF {name}: {w}" for w in warnings]
    if not lines:
        return [], warnings
    skip = _not_a_receipt(lines)
    if skip:
        return [], [*warnings, f"PDF {name}: not read as the receipt, {skip}"]
    return lines, warnings


def _not_a_receipt(lines: list[str]) -> str | None:
    """Why this PDF is not an invoice or receipt; None when it reads as one. A boarding pass
    says so in its title; an e-ticket receipt may only mention one further down."""
    text = "\n".join(lines)
    receipt = _RECEIPT_WORDS.search(text)
    if _BOARDING_WORDS.search("\n".join(lines[:_TITLE_LINES])) or (not receipt and _BOARDING_WORDS.search(text)):
        return "it is a boarding pass"
    if not receipt and _TICKET_WORDS.search(text):
        return "it is a ticket"
    if not _AMOUNT.search(text):
        return "it holds no amount"
    if not receipt and not _TOTAL_WORDS.search(text):
        return "it names no invoice, receipt or total"
    return None


def pdf_lines(data: bytes, budget: int = MAX_CHARS) -> tuple[list[str], list[str]]:
    """The visible lines of a PDF (first MAX_PAGES pages, at most `budget` characters) and
    warnings; ([], [reason]) for an encrypted, broken or text-less file. Never raises."""
    import pypdfium2 as pdfium  # only emails with a PDF attached pay for this import

    lines: list[str] = []
    warnings: list[str] = []
    if b"%%EOF" not in data[-1024:]:  # PDFium may still rebuild what is there: say it is partial
        warnings.append("the file is cut short (no end marker)")
    if _inflated_size(data, MAX_INFLATED) > MAX_INFLATED:
        return [], [*warnings, f"over {MAX_INFLATED // 1_000_000} MB once decompressed, not read"]
    with _PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as error:
            if error.err_code in (pdfium.raw.FPDF_ERR_PASSWORD, pdfium.raw.FPDF_ERR_SECURITY):
                return [], [*warnings, "encrypted with a password, not read"]
            return [], [*warnings, "broken or not a PDF, not read"]
        try:
            pages = len(document)
            if pages > MAX_PAGES:
                warnings.append(f"{pages} pages, read the first {MAX_PAGES}")
            used = objects = 0
            for number in range(min(pages, MAX_PAGES)):
                page = document[number]
                try:
                    objects += _text_objects(page, MAX_TEXT_OBJECTS - objects)
                    if objects > MAX_TEXT_OBJECTS:
                        warnings.append(f"page {number + 1} is too complex (over {MAX_TEXT_OBJECTS} text "
                                        "objects in the pages read), read the pages before it")
                        break
                    page_lines = _page_lines(page, budget - used)
                finally:
                    page.close()
                for line in page_lines:
                    used += len(line)
                    if used > budget:
                        warnings.append(f"text cut at {budget} characters")
                        return lines, warnings
                    lines.append(line)
        except Exception:  # PDFium or its bindings on a damaged page: keep the pages before it
            log.debug("PDF page unreadable", exc_info=True)
            warnings.append("broken page, read what came before it")
        finally:
            document.close()
    if not lines and not warnings:
        warnings.append("no text layer (a scan or an image), not read")
    return lines, warnings


def _inflated_size(data: bytes, limit: int) -> int:
    """The size of the file's compressed streams once inflated (images aside: reading text
    never decodes them), counted up to just past `limit`. PDFium parses a page's content in
    full when it loads it, so a 300 kB file that inflates to 100 MB would hold it seconds."""
    total = 0
    for found in _STREAM.finditer(data):
        head = data[max(0, found.start() - 1000):found.start()]
        if _IMAGE.search(head, head.rfind(b"obj")):  # in this object's dictionary, not the one before
            continue
        inflater = zlib.decompressobj()
        position = found.end()
        try:
            while not inflater.eof and position < len(data) and total <= limit:
                total += len(inflater.decompress(data[position:position + 65536], limit + 1 - total))
                position += 65536
                while inflater.unconsumed_tail and total <= limit:  # output capped: go on with it
                    total += len(inflater.decompress(inflater.unconsumed_tail, limit + 1 - total))
        except zlib.error:  # not Flate (or broken): PDFium reads it as it can, no dearer
            continue
        if total > limit:
            break
    return total


_STREAM = re.compile(rb"(?<!end)stream\r?\n")
_IMAGE = re.compile(rb"/Subtype\s*/Image")


def _text_objects(page: object, limit: int) -> int:
    """How many text objects the page draws, counted up to just past `limit`: PDFium's text
    layer costs the square of the text objects that overlap on a line (5,000 such take
    0.4 s), so a page past the limit is not read. Text inside forms (XObjects) counts too."""
    import pypdfium2.raw as raw

    count = seen = 0
    stack: list[tuple[object, bool]] = [(page.raw, True)]  # type: ignore[attr-defined]
    while stack:
        handle, is_page = stack.pop()
        size = raw.FPDFPage_CountObjects(handle) if is_page else raw.FPDFFormObj_CountObjects(handle)
        for index in range(size):
            seen += 1
            if count > limit or seen > _MAX_OBJECTS:  # a page of a million paths: as costly
                return limit + 1
            item = raw.FPDFPage_GetObject(handle, index) if is_page else raw.FPDFFormObj_GetObject(handle, index)
            kind = raw.FPDFPageObj_GetType(item)
            if kind == raw.FPDF_PAGEOBJ_TEXT:
                count += 1
            elif kind == raw.FPDF_PAGEOBJ_FORM:
                stack.append((item, False))
    return count


def _page_lines(page: object, budget: int) -> list[str]:
    """One page's text lines (about `budget` characters at most), runs far apart on a line
    joined by COLUMN_GAP."""
    textpage = page.get_textpage()  # type: ignore[attr-defined]
    try:
        # Line breaks and spaces are characters too: read twice the budget, not the whole page.
        text = _page_text(textpage, min(textpage.count_chars(), 2 * budget + 2))
        boxes = _Boxes(textpage)
        rows: list[_Row] = []
        for line in _LINE.finditer(text):  # PDFium ends each line it sees with "\r\n"
            words = [(w.start(), w.end() - 1, w.group().translate(_NO_CHARACTER)) for w in _WORD.finditer(text, *line.span())]
            words = [word for word in words if word[2]]
            if not words:
                continue
            row = _Row(boxes=boxes, first=words[0][0], last=words[-1][1], parts=[words[0][2]])
            for (_, before, _), (after, _, word) in itertools.pairwise(words):
                row.parts += [boxes.separator(before, after) or " ", word]  # a space stood there
            rows.append(row)
        return _joined(rows)
    finally:
        textpage.close()


_LINE = re.compile(r"[^\r\n]+")
_WORD = re.compile(r"\S+")
# Control characters and PDFium's "no character" codes; "\x00" stands for the second half of a
# surrogate pair (see _page_text).
_NO_CHARACTER = dict.fromkeys([*range(0, 9), 11, 12, *range(14, 32), 0xFFFE, 0xFFFF])


def _page_text(textpage: object, count: int) -> str:
    """The page's first `count` characters, one per PDFium character index."""
    import pypdfium2.raw as raw

    text = textpage.get_text_range(0, count)  # type: ignore[attr-defined]
    if len(text) == count and not any("\ud800" <= char <= "\udfff" for char in text):
        return text
    # PDFium spoke UTF-16 surrogates (a character outside the BMP): join each pair at its
    # first index, keeping one string character per index.
    codes = [raw.FPDFText_GetUnicode(textpage.raw, i) for i in range(count)]  # type: ignore[attr-defined]
    chars = []
    for i, code in enumerate(codes):
        if 0xD800 <= code < 0xDC00 and i + 1 < count and 0xDC00 <= codes[i + 1] < 0xE000:
            code = 0x10000 + ((code - 0xD800) << 10) + codes[i + 1] - 0xDC00
        elif 0xD800 <= code < 0xE000:
            code = 0
        chars.append(chr(code))
    return "".join(chars)


class _Boxes:
    """Characters' loose boxes (left, bottom, right, top: the font's whole line height)."""

    def __init__(self, textpage: object) -> None:
        self.textpage = textpage
        self.seen: dict[int, tuple[float, float, float, float]] = {}

    def __call__(self, index: int) -> tuple[float, float, float, float]:
        box = self.seen.get(index)
        if box is None:  # the last character of a line is asked for twice
            box = self.seen[index] = self.textpage.get_charbox(index, loose=True)  # type: ignore[attr-defined]
        return box

    def separator(self, left: int, right: int) -> str:
        """What stands between two characters of a line that PDFium broke: nothing when they
        touch (it breaks glyph-by-glyph text after every glyph), a space, or a column gap."""
        left_box, right_box = self(left), self(right)
        height = max(left_box[3] - left_box[1], right_box[3] - right_box[1])
        distance = right_box[0] - left_box[2]
        if distance > height * _COLUMN_GAP_HEIGHTS:
            return COLUMN_GAP
        return " " if distance > height * _SPACE_HEIGHTS else ""

    def same_row(self, left: int, right: int) -> bool:
        """`right` stands on the same baseline as `left`, to its right."""
        left_box, right_box = self(left), self(right)
        height = max(left_box[3] - left_box[1], right_box[3] - right_box[1], 1.0)
        return (abs(left_box[1] - right_box[1]) < height * 0.3 and abs(left_box[3] - right_box[3]) < height * 0.3
                and right_box[0] >= left_box[2] - height * 0.1)


@dataclass
class _Row:
    boxes: _Boxes
    first: int  # indexes of the first and last visible characters
    last: int
    parts: list[str] = field(default_factory=list)


def _joined(rows: list[_Row]) -> list[str]:
    """The rows as lines, each joined to the one before when PDFium broke a table row in two
    (it starts a line at a lone number under a header row: "Salmon maki" / "2    €9.80")."""
    lines: list[str] = []
    previous: _Row | None = None
    for row in rows:
        if previous is not None and row.boxes.same_row(previous.last, row.first):
            lines[-1] += row.boxes.separator(previous.last, row.first) + "".join(row.parts)
            previous.last = row.last
            continue
        lines.append("".join(row.parts))
        previous = row
    return [line.strip() for line in lines if line.strip()]
