"""A minimal PDF writer for tests: text lines at positions, in Helvetica, with a correct xref.

Hand-written rather than reportlab: ten lines of PDF syntax need no dependency, and the
tests can build what a library would refuse to (a fake-bold word drawn twice, a glyph per
text operator, a cut file).
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass

PAGE_WIDTH, PAGE_HEIGHT = 595, 842  # A4 in points
# Helvetica's advance widths (1/1000 em) for " " to "~", from its AFM: glyph-by-glyph text needs them.
_WIDTHS = (
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
)


def _advance(char: str, size: float) -> float:
    code = ord(char) - 32
    return size * (_WIDTHS[code] if 0 <= code < len(_WIDTHS) else 556) / 1000


@dataclass(frozen=True)
class Text:
    """One run of text: its left edge and baseline in points from the page's bottom-left."""

    x: float
    y: float
    text: str
    size: float = 10
    per_glyph: bool = False  # one text operator per character, as some invoice generators write
    hidden: bool = False  # in an empty /ActualText span: how Chrome's PDF writer marks a fake-bold copy


def rows(*lines: str | tuple[str, ...], top: float = 780, left: float = 56, column: float = 150,
         step: float = 16, size: float = 10) -> list[Text]:
    """Rows top down; a tuple is a table row whose cells start `column` points apart."""
    texts = []
    for n, line in enumerate(lines):
        cells = (line,) if isinstance(line, str) else line
        for k, cell in enumerate(cells):
            if cell:
                texts.append(Text(left + k * column, top - n * step, cell, size))
    return texts


def _escape(text: str) -> bytes:
    raw = text.encode("cp1252")  # Helvetica with WinAnsiEncoding: "€" is 0x80, "ß" 0xDF
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _content(texts: list[Text]) -> bytes:
    out = io.BytesIO()
    for run in texts:
        if run.hidden:
            out.write(b"/Span << /ActualText () >> BDC\n")
        if run.per_glyph:
            x = run.x
            for char in run.text:
                out.write(b"BT /F1 %.2f Tf %.2f %.2f Td (%s) Tj ET\n" % (run.size, x, run.y, _escape(char)))
                x += _advance(char, run.size)
        else:
            out.write(b"BT /F1 %.2f Tf %.2f %.2f Td (%s) Tj ET\n" % (run.size, run.x, run.y, _escape(run.text)))
        if run.hidden:
            out.write(b"EMC\n")
    return out.getvalue()


def make_pdf(pages: list[list[Text]], in_form: bool = False, filler: int = 0, image: int = 0) -> bytes:
    """A valid PDF 1.4 file: one page per list of text runs; `in_form`: each page draws its
    text through a form XObject (as templated invoices do) rather than directly. `filler`
    bytes of comments end each page's content, and an `image` of that many bytes is drawn,
    both Flate-compressed (a file that inflates far past its size)."""
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",  # the page tree, once the page numbers are known
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    fonts = b"<< /Font << /F1 3 0 R >> >>"
    page_refs = []
    for texts in pages:
        stream, resources = _content(texts), fonts
        if image:
            pixels = zlib.compress(bytes(image), 9)
            objects.append(b"<< /Type /XObject /Subtype /Image /Width %d /Height 1 /ColorSpace /DeviceGray "
                           b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\nstream\n%s\nendstream"
                           % (image, len(pixels), pixels))
            stream += b"q 100 0 0 1 56 56 cm /Im1 Do Q\n"
            resources = b"<< /Font << /F1 3 0 R >> /XObject << /Im1 %d 0 R >> >>" % len(objects)
        if in_form:
            objects.append(b"<< /Type /XObject /Subtype /Form /BBox [0 0 %d %d] /Resources %s /Length %d >>\n"
                           b"stream\n%s\nendstream" % (PAGE_WIDTH, PAGE_HEIGHT, fonts, len(stream), stream))
            stream, resources = b"q /Fm1 Do Q", b"<< /XObject << /Fm1 %d 0 R >> >>" % len(objects)
        if filler:
            stream = zlib.compress(stream + b"% padding\n" * (filler // 10), 9)
            objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(stream), stream))
        else:
            objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents %d 0 R /Resources %s >>"
                       % (PAGE_WIDTH, PAGE_HEIGHT, len(objects), resources))
        page_refs.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(page_refs), len(page_refs))
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def encrypt(pdf: bytes, user_password: str, owner_password: str = "owner") -> bytes:
    """The same PDF encrypted (RC4-128: pypdf writes it with no crypto library installed)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
