"""Bounds on what one email can make the reader do (issue 17): caps where a real receipt never goes.

Three cuts, each reported as a warning (never an error), each far above anything in the corpus:
- `trim_raw`: before the MIME parse, on the raw bytes: parts after the thousandth are left out
  (the stdlib builds an object per part), and in a large email each MIME body over a limit is
  cut: a text body keeps its head and its tail (the totals are at the end), an attached email
  base64-encoded (Gmail) is decoded and cut inside, any other body (zip, image, a PDF too large
  for parsers.pdf to read) is dropped without being decoded. The stdlib parser then never
  copies megabytes nobody reads.
- `cap_html` / `cap_text`: a decoded body over a length keeps its head and tail; in a large
  HTML body, inline `data:` images (never read: items keep http(s) pictures only) go first.
- `prune_tree`: an HTML tree of more elements than a receipt has keeps its first HEAD_ELEMENTS
  and last TAIL_ELEMENTS (pre-order); whole subtrees between them are removed, so the layout,
  items and candidates that walk the tree stay bounded (a 300 000-row item table).
Every step is linear in the email's size.
"""

from __future__ import annotations

import base64
import binascii
import re

from lxml import etree

MB = 1024 * 1024
TRIM_ABOVE = 4 * MB  # emails up to this size are parsed as they are (the corpus's largest: 1.8 MB)
PART_LIMIT = 2 * MB  # a MIME body (encoded) over this is cut
HTML_HEAD, HTML_TAIL = 512_000, 192_000  # of a cut HTML body, the bytes kept from its start and end
TEXT_HEAD, TEXT_TAIL = 700_000, 240_000  # the same for a text body
PDF_KEEP = 7 * MB  # an encoded PDF up to this is kept whole for parsers.pdf (5 MB decoded, its own limit)
MAX_BOUNDARIES = 1000  # multipart boundaries looked for (a real email has a handful)
MAX_DELIMITERS = 2000  # delimiter lines read: 1 000 parts (corpus: 12)
OMITTED_HEADER = "X-PurchaseShare-Omitted-Bytes"  # on a part whose body was dropped: its size

MAX_HTML_CHARS = 2_000_000  # a decoded HTML body (corpus: 1.36 MB, most of it inline images)
MAX_PARTS = 500  # MIME parts a body is looked for in (corpus: 12)
MAX_TEXT_CHARS = 1_000_000  # a decoded text body (corpus: 28 kB)
HEAD_ELEMENTS = 3500  # HTML elements kept from the start (corpus: 1 011 at most)...
TAIL_ELEMENTS = 1000  # ...and from the end
_COUNT_ABOVE = 30_000  # shorter HTML is not counted (at most ~10 000 tiny elements: well under a second)

_SPACES = b" \t\r\n"
_BOUNDARY = re.compile(rb'(?i)boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))')
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_CONTENT_TYPE = re.compile(rb"(?im)^content-type\s*:\s*([\w.+-]+/[\w.+-]+)")
_ENCODING = re.compile(rb"(?im)^content-transfer-encoding\s*:\s*([\w-]+)")
_FILENAME = re.compile(rb'(?i)\b(?:file)?name\*?\s*=\s*"?([^";\r\n]*)')
_DATA_URI_BYTES = re.compile(rb"data:[A-Za-z0-9+/=;,.:%_\r\n-]{2000,}")
_DATA_URI = re.compile(r"data:[A-Za-z0-9+/=;,.:%_\r\n-]{2000,}")


def _size(count: int) -> str:
    return f"{count / MB:.1f} MB" if count >= MB else f"{count // 1024} kB"


def trim_raw(raw: bytes) -> tuple[bytes, list[str]]:
    """The raw email with each oversized MIME body cut (see the module) and its parts after the
    MAX_DELIMITERS-th left out, and what was cut. Emails up to TRIM_ABOVE with few delimiter-like
    lines come back as they are (the same object)."""
    if len(raw) <= TRIM_ABOVE and raw.count(b"\n--") <= MAX_DELIMITERS:  # a C scan: the common path
        return raw, []
    names = _boundaries(raw)
    spans = _delimiters(raw, names)
    warnings: list[str] = []
    length = len(raw)
    if len(spans) > MAX_DELIMITERS:  # thousands of parts: the stdlib would build a message for each
        length = spans[MAX_DELIMITERS][0]
        spans = spans[:MAX_DELIMITERS]
        warnings.append(f"more than {MAX_DELIMITERS // 2} MIME parts: the rest of the email not read")
    # Delimiter lines of every boundary cut the email into leaf parts (and container headers).
    cuts = [0]
    for start, end in spans:
        cuts += [start, end]
    cuts.append(length)
    pieces: list[bytes] = []
    for number in range(0, len(cuts), 2):  # even: a part's span; odd: a delimiter line's
        start, end = cuts[number], cuts[number + 1]
        piece, warning = _trim_part(raw, start, end, top=number == 0) if end - start > PART_LIMIT else (b"", None)
        if warning:
            warnings.append(warning)
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


def _trim_part(raw: bytes, start: int, end: int, top: bool) -> tuple[bytes, str | None]:
    """One part's span (its delimiter's line end, headers, blank line, body) with its body cut;
    (b"", None): keep it whole."""
    lead = start  # a part's span starts with its delimiter line's end
    if not top:
        lead += 2 if raw.startswith(b"\r\n", start) else raw.startswith(b"\n", start)
    if raw.startswith(b"\r\n", lead) or raw.startswith(b"\n", lead):
        body_start = lead + (2 if raw.startswith(b"\r\n", lead) else 1)  # no headers: text/plain
        headers = b""
    else:
        header_end = _HEADER_END.search(raw, lead, min(end, lead + 256 * 1024))
        if header_end is None:
            return b"", None
        headers, body_start = raw[lead:header_end.start()], header_end.end()
    head = raw[start:lead]
    blank = raw[len(headers) + lead:body_start]
    ctype_found = _CONTENT_TYPE.search(headers)
    ctype = ctype_found.group(1).lower().decode() if ctype_found else "text/plain"
    cte_found = _ENCODING.search(headers)
    cte = cte_found.group(1).lower() if cte_found else b"7bit"
    body_size = end - body_start
    if ctype.startswith("message/"):
        if cte != b"base64":
            return b"", None  # an attached email: its own parts are cut where they are big
        # Gmail base64-encodes attached emails: decode once, cut the email inside, attach it as is.
        try:
            inner = binascii.a2b_base64(raw[body_start:end].translate(None, _SPACES))
        except binascii.Error:
            return b"", None
        inner, cut = trim_raw(inner)
        if not cut:
            return b"", None
        plain = _ENCODING.sub(b"Content-Transfer-Encoding: 8bit", headers)
        return head + plain + blank + inner, "; ".join(cut)
    if ctype.startswith("multipart/"):
        return b"", None  # headers and a preamble: the parts follow, each cut on its own
    if ctype.startswith("text/"):
        prefix = head + headers + blank
        body, first, last = raw, body_start, end  # sliced below: the body is never copied whole
        if ctype == "text/html" and cte != b"base64" and raw.find(b"data:", body_start, end) >= 0:
            body = _without_data_uris(raw, body_start, end)
            if len(body) <= PART_LIMIT:
                return prefix + body, f"inline images dropped from a {_size(body_size)} HTML body"
            first, last = 0, len(body)
        keep = (HTML_HEAD, HTML_TAIL) if ctype == "text/html" else (TEXT_HEAD, TEXT_TAIL)
        return prefix + _head_and_tail(body, first, last, cte, *keep), (
            f"a {_size(body_size)} {ctype} body: read its first {_size(keep[0])} and last {_size(keep[1])}")
    name_found = _FILENAME.search(headers)
    name = name_found.group(1).decode("utf-8", "replace").strip() if name_found else ctype
    is_pdf = ctype == "application/pdf" or name.lower().endswith(".pdf")
    if is_pdf and body_size <= PDF_KEEP:
        return b"", None
    size = body_size * 3 // 4 if cte == b"base64" else body_size
    line_end = b"\r\n" if blank.startswith(b"\r") else b"\n"
    note = f"{OMITTED_HEADER}: {size}".encode() + line_end
    return head + note + headers + blank, f"attachment {name} ({_size(body_size)}) not read"


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
    """A decoded HTML body within MAX_HTML_CHARS: inline images dropped first, then the middle."""
    if len(html) <= MAX_HTML_CHARS:
        return html, []
    warnings = []
    if "data:" in html:
        stripped = _DATA_URI.sub("data:,", html)
        if len(stripped) < len(html):
            warnings.append(f"inline images dropped from a {_size(len(html))} HTML body")
            html = stripped
    if len(html) <= MAX_HTML_CHARS:
        return html, warnings
    head, tail = MAX_HTML_CHARS * 3 // 4, MAX_HTML_CHARS // 4
    cut = html.rfind("<", 0, head)
    after = html.find("<", len(html) - tail)
    warnings.append(f"HTML body of {len(html)} characters: read its first {head} and last {tail}")
    return html[:cut if cut > head // 2 else head] + html[after if after >= 0 else len(html) - tail:], warnings


def cap_text(text: str) -> tuple[str, list[str]]:
    """A decoded text body within MAX_TEXT_CHARS: its head and tail, cut at line ends."""
    if len(text) <= MAX_TEXT_CHARS:
        return text, []
    head, tail = MAX_TEXT_CHARS * 3 // 4, MAX_TEXT_CHARS // 4
    cut = text.rfind("\n", 0, head)
    after = text.find("\n", len(text) - tail)
    kept = text[:cut if cut > head // 2 else head] + "\n" + text[after + 1 if after >= 0 else len(text) - tail:]
    return kept, [f"text body of {len(text)} characters: read its first {head} and last {tail}"]


def prune_tree(tree: etree._Element, html: str) -> str | None:
    """Keep an HTML tree's first HEAD_ELEMENTS and last TAIL_ELEMENTS elements (pre-order),
    removing the whole subtrees in between; a warning when something was removed."""
    if len(html) < _COUNT_ABOVE or html.count("<") <= HEAD_ELEMENTS + TAIL_ELEMENTS:
        return None  # every element starts with a "<": too few to prune (a C scan, no tree walk)
    total = int(tree.xpath("count(//*)"))
    if total <= HEAD_ELEMENTS + TAIL_ELEMENTS:
        return None
    last = total - TAIL_ELEMENTS  # elements from here on are kept
    removable: list[tuple[int, etree._Element]] = []  # maximal middle subtrees, by start index
    starts: list[int] = []
    counter = 0
    for event, element in etree.iterwalk(tree, events=("start", "end")):
        if event == "start":
            starts.append(counter)
            counter += 1
            continue
        start = starts.pop()
        if start >= HEAD_ELEMENTS and counter <= last and element.getparent() is not None:
            while removable and removable[-1][0] > start:  # its descendants: it holds them
                removable.pop()
            removable.append((start, element))
    for _, element in removable:
        parent = element.getparent()
        if parent is not None:
            parent.remove(element)
    removed = sum(1 for _ in removable)
    return (f"HTML of {total} elements: read the first {HEAD_ELEMENTS} and the last {TAIL_ELEMENTS} "
            f"({removed} parts in between left out)")
