"""Bounds on what one email can make the reader do (issue 17): caps where a real receipt never goes.

Four cuts, each reported as a warning (never an error), each far above anything in the corpus;
a warning that says text the readers would have seen was left out is a `Cut` (Email.cut: its
total then needs its arithmetic, parsers.chain):
- `trim_raw`: before the MIME parse, on the raw bytes: parts after the MAX_DELIMITERS-th
  delimiter are left out (the stdlib builds an object per part), and in a large email each MIME
  body over a limit is cut: a text body keeps its head and its tail (the totals are at the end),
  an attached email base64-encoded (Gmail) is decoded and cut inside, any other body (zip,
  image, a PDF too large for parsers.pdf to read) is dropped without being decoded. The stdlib
  parser then never copies megabytes nobody reads.
- `cap_html` / `cap_text`: a decoded body over a length keeps its head and tail; in a large
  HTML body, inline `data:` images (never read: items keep http(s) pictures only) go first.
- `cut_elements` (on the raw bytes of an HTML part in an email over ELEMENTS_RAW_ABOVE, before
  the MIME parse, and again on the decoded HTML): an HTML body of more elements than a receipt
  has keeps the markup of its first HEAD_ELEMENTS and last TAIL_ELEMENTS elements, cut at tag
  starts (the totals are at the end), so neither the stdlib's message nor lxml's tree nor the
  readers that walk it ever hold a 20 000-row item table. Each element the readers see costs
  about 1 kB (its tree node, its layout block, its candidates): the cut is what bounds them.
- (parsers.message) libxml2 stops at 256 levels of nesting and drops the rest: said, as a Cut.
Every step is linear in the email's size.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import AnyStr


class Cut(str):
    """A warning that says text the readers would have seen was left out: what is read of the
    email is not all of it (a total from it needs its arithmetic; its items may be incomplete)."""


MB = 1024 * 1024
TRIM_ABOVE = 4 * MB  # emails up to this size are parsed as they are (the corpus's largest: 1.8 MB)
PART_LIMIT = 2 * MB  # a MIME body (encoded) over this is cut
HTML_HEAD, HTML_TAIL = 512_000, 192_000  # of a cut HTML body, the bytes kept from its start and end
TEXT_HEAD, TEXT_TAIL = 700_000, 240_000  # the same for a text body
PDF_KEEP = 7 * MB  # an encoded PDF up to this is kept whole for parsers.pdf (5 MB decoded, its own limit)
MAX_BOUNDARIES = 1000  # multipart boundaries looked for (a real email has a handful)
MAX_DELIMITERS = 400  # delimiter lines read, about one per part (corpus: 12 parts); each part the
# stdlib parses costs a few kB
OMITTED_HEADER = "X-PurchaseShare-Omitted-Bytes"  # on a part whose body was dropped: its size

MAX_HTML_CHARS = 2_000_000  # a decoded HTML body (corpus: 1.36 MB, most of it inline images)
MAX_PARTS = 500  # MIME parts a body is looked for in (corpus: 12)
MAX_TEXT_CHARS = 1_000_000  # a decoded text body (corpus: 28 kB)
HEAD_ELEMENTS = 1500  # HTML elements kept from the start (the corpus's largest HTML has 1 011)...
TAIL_ELEMENTS = 500  # ...and from the end
ELEMENTS_RAW_ABOVE = 256 * 1024  # emails over this have their HTML parts cut before the MIME parse
_ELEMENT_PART_ABOVE = 8 * 1024  # an HTML part under this cannot hold HEAD + TAIL elements worth cutting
_ALIGN_WINDOW = 4096  # bytes looked back for a block-level tag to cut before
_TAIL_LOOKS = 20 * TAIL_ELEMENTS  # "<" looked at from the end (a body of "<<<<" has no elements)

_SPACES = b" \t\r\n"
_BOUNDARY = re.compile(rb'(?i)boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))')
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_CONTENT_TYPE = re.compile(rb"(?im)^content-type\s*:\s*([\w.+-]+/[\w.+-]+)")
_ENCODING = re.compile(rb"(?im)^content-transfer-encoding\s*:\s*([\w-]+)")
_FILENAME = re.compile(rb'(?i)\b(?:file)?name\*?\s*=\s*"?([^";\r\n]*)')
_DATA_URI_BYTES = re.compile(rb"data:[A-Za-z0-9+/=;,.:%_\r\n-]{2000,}")
_DATA_URI = re.compile(r"data:[A-Za-z0-9+/=;,.:%_\r\n-]{2000,}")
_CHARSET = re.compile(rb'(?i)charset\s*=\s*"?([\w.:-]+)')
_NOT_ASCII_SAFE = (b"utf-16", b"utf16", b"utf-32", b"utf32", b"ucs", b"unicode", b"utf-7", b"iso-2022", b"hz")
ELEMENTS_CUT = Cut(f"HTML of more than {HEAD_ELEMENTS + TAIL_ELEMENTS} elements: read its first {HEAD_ELEMENTS} "
                   f"and last {TAIL_ELEMENTS}")


def _size(count: int) -> str:
    return f"{count / MB:.1f} MB" if count >= MB else f"{count // 1024} kB"


def trim_raw(raw: bytes) -> tuple[bytes, list[str]]:
    """The raw email with each oversized MIME body cut (see the module) and its parts after the
    MAX_DELIMITERS-th left out, and what was cut. Emails up to TRIM_ABOVE with few delimiter-like
    lines come back as they are (the same object), unless over ELEMENTS_RAW_ABOVE they may hold
    an HTML body of more elements than the readers take."""
    many_lines = raw.count(b"\n--") > MAX_DELIMITERS  # a C scan: the common path stops here
    if not many_lines and len(raw) <= ELEMENTS_RAW_ABOVE:
        return raw, []
    elements = len(raw) > ELEMENTS_RAW_ABOVE  # HTML parts are counted (and cut) on the raw bytes
    if not many_lines and len(raw) <= TRIM_ABOVE and raw.count(b"<") <= HEAD_ELEMENTS + TAIL_ELEMENTS \
            and b"ase64" not in raw and b"ASE64" not in raw:
        return raw, []  # no HTML part can hold more elements (a base64 one is counted decoded)
    names = _boundaries(raw)
    spans = _delimiters(raw, names)
    warnings: list[str] = []
    length = len(raw)
    if len(spans) > MAX_DELIMITERS:  # thousands of parts: the stdlib would build a message for each
        length = spans[MAX_DELIMITERS][0]
        spans = spans[:MAX_DELIMITERS]
        warnings.append(Cut(f"more than {MAX_DELIMITERS // 2} MIME parts: the rest of the email not read"))
    # Delimiter lines of every boundary cut the email into leaf parts (and container headers).
    cuts = [0]
    for start, end in spans:
        cuts += [start, end]
    cuts.append(length)
    pieces: list[bytes] = []
    for number in range(0, len(cuts), 2):  # even: a part's span; odd: a delimiter line's
        start, end = cuts[number], cuts[number + 1]
        size = end - start
        looked = size > PART_LIMIT or (elements and size > _ELEMENT_PART_ABOVE)
        piece, cut = _trim_part(raw, start, end, top=number == 0) if looked else (b"", [])
        if cut:
            warnings += cut
            pieces.append(piece)
        else:
            pieces.append(raw[start:end])
        if number + 2 < len(cuts):
            pieces.append(raw[end:cuts[number + 2]])
    if not warnings:
        return raw, []
    return b"".join(pieces), warnings


def _boundaries(raw: bytes) -> list[bytes]:
    """The multipart boundaries the email declares (found with bytes.find: a case-insensitive
    regex over 46 MB takes most of a second; at most MAX_BOUNDARIES, from a bounded number of
    occurrences)."""
    names: list[bytes] = []
    for word in (b"oundary", b"OUNDARY", b"oUNDARY", b"Oundary"):
        position = raw.find(word)
        looked = 0
        while position >= 0 and len(names) < MAX_BOUNDARIES and looked < 20 * MAX_BOUNDARIES:
            looked += 1
            found = _BOUNDARY.match(raw, max(0, position - 1))
            if found is not None:
                name = found.group(1) or found.group(2)
                if name not in names:
                    names.append(name)
            position = raw.find(word, position + 1)
    return names


def _delimiters(raw: bytes, names: list[bytes]) -> list[tuple[int, int]]:
    """The spans of the delimiter lines ("--boundary", "--boundary--") in document order, at most
    MAX_DELIMITERS + 1 per boundary. Each occurrence costs a bounded look (a delimiter line is
    the marker, maybe "--", maybe a few spaces)."""
    spans = []
    for name in names:
        marker = b"--" + name
        position = raw.find(marker)
        found = 0
        while position >= 0 and found <= MAX_DELIMITERS:
            if position == 0 or raw[position - 1] == 10:  # at a line start
                after = position + len(marker)
                line_end = raw.find(b"\n", after, after + 80)
                line_end = len(raw) if line_end < 0 and len(raw) - after < 80 else line_end
                if line_end >= 0 and raw[after:line_end].rstrip(b"\r \t") in (b"", b"--"):
                    spans.append((position, line_end - (raw[line_end - 1:line_end] == b"\r")))
                    found += 1
            position = raw.find(marker, position + 1)
    spans.sort()
    return spans


def _trim_part(raw: bytes, start: int, end: int, top: bool) -> tuple[bytes, list[str]]:
    """One part's span (its delimiter's line end, headers, blank line, body) with its body cut,
    and what was cut; (b"", []): keep it whole. A body up to PART_LIMIT is only looked at for
    the elements of an HTML body."""
    lead = start  # a part's span starts with its delimiter line's end
    if not top:
        lead += 2 if raw.startswith(b"\r\n", start) else raw.startswith(b"\n", start)
    if raw.startswith(b"\r\n", lead) or raw.startswith(b"\n", lead):
        body_start = lead + (2 if raw.startswith(b"\r\n", lead) else 1)  # no headers: text/plain
        headers = b""
    else:
        header_end = _HEADER_END.search(raw, lead, min(end, lead + 256 * 1024))
        if header_end is None:
            return b"", []
        headers, body_start = raw[lead:header_end.start()], header_end.end()
    head = raw[start:lead]
    blank = raw[len(headers) + lead:body_start]
    ctype_found = _CONTENT_TYPE.search(headers)
    ctype = ctype_found.group(1).lower().decode() if ctype_found else "text/plain"
    cte_found = _ENCODING.search(headers)
    cte = cte_found.group(1).lower() if cte_found else b"7bit"
    body_size = end - body_start
    if body_size <= PART_LIMIT and ctype != "text/html":
        return b"", []
    if ctype.startswith("message/"):
        if cte != b"base64":
            return b"", []  # an attached email: its own parts are cut where they are big
        # Gmail base64-encodes attached emails: decode once, cut the email inside, attach it as is.
        try:
            inner = binascii.a2b_base64(raw[body_start:end].translate(None, _SPACES))
        except binascii.Error:
            return b"", []
        inner, cut = trim_raw(inner)
        if not cut:
            return b"", []
        plain = _ENCODING.sub(b"Content-Transfer-Encoding: 8bit", headers)
        return head + plain + blank + inner, cut
    if ctype.startswith("multipart/"):
        return b"", []  # headers and a preamble: the parts follow, each cut on its own
    if ctype.startswith("text/"):
        return _trim_text(raw, body_start, end, ctype, cte, head, headers, blank)
    name_found = _FILENAME.search(headers)
    name = name_found.group(1).decode("utf-8", "replace").strip() if name_found else ctype
    is_pdf = ctype == "application/pdf" or name.lower().endswith(".pdf")
    if is_pdf and body_size <= PDF_KEEP:
        return b"", []
    size = body_size * 3 // 4 if cte == b"base64" else body_size
    line_end = b"\r\n" if blank.startswith(b"\r") else b"\n"
    note = f"{OMITTED_HEADER}: {size}".encode() + line_end
    return head + note + headers + blank, [f"attachment {name} ({_size(body_size)}) not read"]


def _trim_text(raw: bytes, start: int, end: int, ctype: str, cte: bytes, head: bytes, headers: bytes,
               blank: bytes) -> tuple[bytes, list[str]]:
    """A text part whose body is raw[start:end]: over PART_LIMIT its head and tail (inline images
    dropped first), and an HTML body's elements cut (cut_elements); (b"", []): kept whole."""
    body, first, last = raw, start, end  # sliced below: the body is never copied whole
    notes: list[str] = []
    body_size = end - start
    if body_size > PART_LIMIT:
        if ctype == "text/html" and cte != b"base64" and raw.find(b"data:", start, end) >= 0:
            body = _without_data_uris(raw, start, end)
            first, last = 0, len(body)
            notes.append(f"inline images dropped from a {_size(body_size)} HTML body")
        if last - first > PART_LIMIT:
            keep = (HTML_HEAD, HTML_TAIL) if ctype == "text/html" else (TEXT_HEAD, TEXT_TAIL)
            body = _head_and_tail(body, first, last, cte, *keep)
            first, last = 0, len(body)
            notes.append(Cut(f"a {_size(body_size)} {ctype} body: read its first {_size(keep[0])} "
                             f"and last {_size(keep[1])}"))
    if ctype == "text/html" and _ascii_safe(headers):
        fewer = _fewer_elements(body, first, last, cte)
        if fewer is not None:
            body, first, last = fewer, 0, len(fewer)
            if cte == b"base64":  # decoded to be counted: kept decoded
                headers = _ENCODING.sub(b"Content-Transfer-Encoding: 8bit", headers)
            notes.append(ELEMENTS_CUT)
    if not notes:
        return b"", []
    return head + headers + blank + body[first:last], notes


def _ascii_safe(headers: bytes) -> bool:
    """The part's charset writes "<" as the byte "<" and never inside a character (not UTF-16,
    UTF-32, UTF-7 or ISO-2022)."""
    found = _CHARSET.search(headers)
    return found is None or not found.group(1).lower().replace(b"_", b"-").startswith(_NOT_ASCII_SAFE)


def _fewer_elements(body: bytes, first: int, last: int, cte: bytes) -> bytes | None:
    """The HTML body body[first:last] (decoded when base64) with its elements cut
    (cut_elements); None when it has few enough."""
    if cte == b"base64":
        try:
            body = binascii.a2b_base64(body[first:last].translate(None, _SPACES))
        except binascii.Error:
            return None
        first, last = 0, len(body)
    span = _element_span(body, first, last)
    return None if span is None else body[first:span[0]] + body[span[1]:last]


def _without_data_uris(raw: bytes, start: int, end: int) -> bytes:
    """raw[start:end] with every long data: URI emptied, copying only what is kept."""
    pieces, position = [], start
    for found in _DATA_URI_BYTES.finditer(raw, start, end):
        pieces += [raw[position:found.start()], b"data:,"]
        position = found.end()
    pieces.append(raw[position:end])
    return b"".join(pieces)


def _head_and_tail(data: bytes, start: int, end: int, cte: bytes, head_size: int, tail_size: int) -> bytes:
    """The first `head_size` and last `tail_size` bytes of the body data[start:end] (decoded ones
    for base64), cut at line ends: a multi-byte character is never split."""
    body_head = data[start:min(end, start + max(head_size, head_size * 4 // 3 + 4096))]
    body_tail = data[max(start, end - max(tail_size, tail_size * 4 // 3 + 4096)):end]
    if cte == b"quoted-printable":  # at a hard line break: a soft one ("=") may split a character
        head, tail = body_head[:head_size], body_tail[-tail_size:]
        end = _hard_break(head, len(head))
        start = tail.find(b"\n") + 1
        while 0 < start < len(tail) // 2 and tail[:start].rstrip(b"\r\n").endswith(b"="):
            start = tail.find(b"\n", start) + 1
        if end > 0 and 0 < start < len(tail) // 2:
            return head[:end] + tail[start:]
    if cte == b"base64":
        # Whole 4-character groups: counted from the start for the head, from the end (the
        # padded end of the body) for the tail.
        head_chars = body_head.translate(None, _SPACES)
        tail_chars = body_tail.translate(None, _SPACES)
        try:
            head = binascii.a2b_base64(head_chars[:len(head_chars) - len(head_chars) % 4])
            tail = binascii.a2b_base64(tail_chars[len(tail_chars) % 4:])
        except binascii.Error:
            return b""
        return base64.encodebytes(_cut_head(head[:head_size]) + b"\n" + _cut_tail(tail[-tail_size:]))
    return _cut_head(body_head[:head_size]) + b"\n" + _cut_tail(body_tail[-tail_size:])


def _hard_break(data: bytes, end: int) -> int:
    """Just past the last line end before `end` that is not a quoted-printable soft break; 0: none
    in the second half."""
    while end > len(data) // 2:
        end = data.rfind(b"\n", 0, end)
        if end < 0:
            return 0
        if not data[:end].rstrip(b"\r").endswith(b"="):
            return end + 1
    return 0


def _cut_head(data: bytes) -> bytes:
    """Up to its last line end (or tag end) when that is in its second half, else up to its last
    ASCII byte: never a multi-byte character cut in two."""
    end = max(data.rfind(b"\n"), data.rfind(b">"))
    if end > len(data) // 2:
        return data[:end + 1]
    return data[:len(data.rstrip(bytes(range(128, 256))))]


def _cut_tail(data: bytes) -> bytes:
    """From its first line start (or tag start) when that is in its first half, else from its
    first ASCII byte."""
    start = min((i for i in (data.find(b"\n"), data.find(b"<")) if i >= 0), default=-1)
    if 0 <= start < len(data) // 2:
        return data[start:]
    return data[len(data) - len(data.lstrip(bytes(range(128, 256)))):]


def cap_html(html: str) -> tuple[str, list[str]]:
    """A decoded HTML body within MAX_HTML_CHARS (inline images dropped first, then the middle)
    and within HEAD_ELEMENTS + TAIL_ELEMENTS elements (cut_elements)."""
    warnings: list[str] = []
    if len(html) > MAX_HTML_CHARS:
        if "data:" in html:
            stripped = _DATA_URI.sub("data:,", html)
            if len(stripped) < len(html):
                warnings.append(f"inline images dropped from a {_size(len(html))} HTML body")
                html = stripped
        if len(html) > MAX_HTML_CHARS:
            head, tail = MAX_HTML_CHARS * 3 // 4, MAX_HTML_CHARS // 4
            cut = html.rfind("<", 0, head)
            after = html.find("<", len(html) - tail)
            warnings.append(Cut(f"HTML body of {len(html)} characters: read its first {head} and last {tail}"))
            html = html[:cut if cut > head // 2 else head] + html[after if after >= 0 else len(html) - tail:]
    html, cut = cut_elements(html)
    return html, warnings + cut


def cap_text(text: str) -> tuple[str, list[str]]:
    """A decoded text body within MAX_TEXT_CHARS: its head and tail, cut at line ends."""
    if len(text) <= MAX_TEXT_CHARS:
        return text, []
    head, tail = MAX_TEXT_CHARS * 3 // 4, MAX_TEXT_CHARS // 4
    cut = text.rfind("\n", 0, head)
    after = text.find("\n", len(text) - tail)
    kept = text[:cut if cut > head // 2 else head] + "\n" + text[after + 1 if after >= 0 else len(text) - tail:]
    return kept, [Cut(f"text body of {len(text)} characters: read its first {head} and last {tail}")]


# --- elements --------------------------------------------------------------------------------
# The markup is cut, not the tree: no tree of the whole body is ever built. The head ends before
# the HEAD_ELEMENTS-th start tag (moved back to a block-level tag, out of an open comment, script
# or style) and the tail starts at the TAIL_ELEMENTS-th start tag from the end (at the same tag as
# the head's end when one is near: a row follows a row); the HTML parser joins the two as if the
# rows between had never been there.


@dataclass(frozen=True)
class _Markup:
    """The patterns and literals of the cut, for bytes (a raw part) or str (a decoded body)."""

    lt: str | bytes
    end_tag: str | bytes  # "</"
    bang: str | bytes  # "<!"
    start_tag: re.Pattern
    block_start: re.Pattern
    opens: tuple  # what starts text where "<" is no tag (a comment, a script, a style)...
    closes: tuple  # ...and what ends it


def _markup(kind: type) -> _Markup:
    def make(text: str) -> str | bytes:
        return text if kind is str else text.encode()

    blocks = ("tr|li|div|p|table|tbody|thead|tfoot|section|article|header|footer|ul|ol|dl|dt|dd|"
              "h[1-6]|blockquote|center|form|pre")
    return _Markup(make("<"), make("</"), make("<!"), re.compile(make("<[A-Za-z]")), re.compile(make(rf"(?i)<({blocks})(?=[\s/>])")),
                   tuple(make(t) for t in ("<!--", "<script", "<SCRIPT", "<style", "<STYLE")),
                   tuple(make(t) for t in ("-->", "</script", "</SCRIPT", "</style", "</STYLE")))


_MARKUP = {str: _markup(str), bytes: _markup(bytes)}


def cut_elements(html: str) -> tuple[str, list[str]]:
    """The HTML with the markup of its elements past the first HEAD_ELEMENTS and before the
    last TAIL_ELEMENTS left out; a warning when something was."""
    span = _element_span(html, 0, len(html))
    if span is None:
        return html, []
    return html[:span[0]] + html[span[1]:], [ELEMENTS_CUT]


def _element_span(data: AnyStr, start: int, end: int) -> tuple[int, int] | None:
    """(head_end, tail_start): the markup data[head_end:tail_start] of the HTML data[start:end]
    to leave out; None when it has at most HEAD_ELEMENTS + TAIL_ELEMENTS start tags. Linear: C
    scans, and a Python step per start tag kept."""
    markup = _MARKUP[type(data)]
    tags = data.count(markup.lt, start, end)
    if tags <= HEAD_ELEMENTS + TAIL_ELEMENTS:
        return None
    # At least every "</" and "<!" is no start tag (C scans: a receipt's HTML stops here).
    if tags - data.count(markup.end_tag, start, end) - data.count(markup.bang, start, end) <= HEAD_ELEMENTS + TAIL_ELEMENTS:
        return None
    head_end = -1
    for number, found in enumerate(markup.start_tag.finditer(data, start, end)):
        if number == HEAD_ELEMENTS:
            head_end = found.start()
            break
    if head_end < 0:
        return None
    tail_start, counted = end, 0
    for _ in range(_TAIL_LOOKS):
        position = data.rfind(markup.lt, head_end + 1, tail_start)
        if position < 0:
            return None  # every element is in the head or the tail: nothing to leave out
        tail_start = position
        counted += markup.start_tag.match(data, position) is not None
        if counted == TAIL_ELEMENTS:
            break
    blocks = [found for found in markup.block_start.finditer(data, max(start, head_end - _ALIGN_WINDOW),
                                                              head_end + 16) if found.start() <= head_end]
    if blocks:  # the head ends before a block (a row), the tail starts at the same kind of block
        head_end = blocks[-1].start()
        same = re.compile(re.escape(markup.lt + blocks[-1].group(1)) + _AFTER_NAME[type(data)], re.IGNORECASE)
        before = [found for found in same.finditer(data, max(head_end + 1, tail_start - _ALIGN_WINDOW), tail_start + 16)
                  if found.start() <= tail_start]
        after = same.search(data, tail_start, min(end, tail_start + _ALIGN_WINDOW)) if not before else None
        tail_start = before[-1].start() if before else after.start() if after else tail_start
    opened = _open_at(data, start, head_end, markup)
    if opened >= 0:
        head_end = opened  # not inside a comment, a script or a style
    closed = _closed_in(data, tail_start, end, markup)
    if closed >= 0:
        tail_start = closed  # past the end of a comment, a script or a style the tail began in
    return (head_end, tail_start) if head_end < tail_start else None


_AFTER_NAME = {str: r"(?=[\s/>])", bytes: rb"(?=[\s/>])"}


def _open_at(data: AnyStr, start: int, end: int, markup: _Markup) -> int:
    """Where the comment, script or style still open at `end` starts; -1: none is."""
    opened = max(data.rfind(text, start, end) for text in markup.opens)
    closed = max(data.rfind(text, start, end) for text in markup.closes)
    return opened if opened > closed else -1


def _closed_in(data: AnyStr, start: int, end: int, markup: _Markup) -> int:
    """When data[start:end] begins inside a comment, script or style: the next "<" after its end
    (`end` when there is none); else -1."""
    closes = [found for text in markup.closes if (found := data.find(text, start, end)) >= 0]
    if not closes:
        return -1
    closed = min(closes)
    opens = [found for text in markup.opens if (found := data.find(text, start, closed)) >= 0]
    if opens:
        return -1
    after = data.find(markup.lt, closed + 1, end)
    return after if after >= 0 else end
