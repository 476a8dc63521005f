"""Reading raw email bytes: MIME parsed once, bodies decoded, HTML parsed at most once.

`read_mime` is the only place that parses a whole message; `Email` is the view every
later stage works on (the ORIGINAL message after `parsers.unwrap` took the forward
apart). Its HTML tree and visible text are built lazily, once.
"""

from __future__ import annotations

import binascii
import email
import email.base64mime
import email.feedparser
import email.header
import email.message
import email.policy
import email.quoprimime
import logging
import quopri
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime
from email.errors import HeaderParseError
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from functools import cached_property, lru_cache

import lxml.html
import mailparser
from lxml import etree
from lxml.cssselect import CSSSelector
from mailparser.const import ADDRESSES_HEADERS
from mailparser.dates import date_diagnostics, parse_mail_date
from mailparser.exceptions import MailParserRecursionError
from mailparser.utils import (
    decode_header_part,
    get_addresses,
    mime_header_view,
    ported_string,
)

from parsers.bounded import MAX_PARTS, Cut, cap_html, cap_text
from parsers.language import detect_language
from parsers.normalize import registrable_domain

log = logging.getLogger(__name__)

# mail-parser logs every part type it does not decode; those are not our errors.
logging.getLogger("mailparser").setLevel(logging.CRITICAL)

EMAIL_ADDRESS = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
_HEADER_LINE = re.compile(rb"^(?:From |[!-9;-~]+:)")
_CHARSET_ALIASES = {
    "ks_c_5601-1987": "cp949",
    "gb2312": "gb18030",  # GB2312 mail is routinely GBK/GB18030 in practice
    "x-sjis": "shift_jis",
    "unknown-8bit": "utf-8",
    "x-unknown": "utf-8",
    "us-ascii": "utf-8",  # a superset; real "ascii" mail often carries UTF-8
}
_BLOCK_TAGS = (
    "br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table",
    "section", "article", "header", "footer", "blockquote", "pre", "ul", "ol", "hr",
)  # fmt: skip
_CELL_TAGS = ("td", "th")
_DROP_TAGS = ("script", "style", "head", "title", "noscript", "template")


@dataclass
class Headers:
    """The few header fields the pipeline uses, already decoded."""

    from_addr: str | None = None
    from_name: str | None = None
    to: list[str] = field(default_factory=list)
    to_names: list[str] = field(default_factory=list)  # recipients' display names (personal values)
    subject: str | None = None
    date: datetime | None = None
    message_id: str | None = None
    content_language: str | None = None


@dataclass
class Body:
    text: str = ""
    html: str | None = None
    defects: frozenset[str] = frozenset()  # "CharsetDecodeDefect" when a declared charset failed
    notes: list[str] = field(default_factory=list)  # what the bounds (parsers.bounded) left out


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset, falling back to UTF-8 and then cp1252."""
    candidates = []
    if charset:
        name = charset.strip().strip('"').lower()
        candidates.append(_CHARSET_ALIASES.get(name, name))
    candidates += ["utf-8", "cp1252"]
    for name in candidates:
        try:
            return data.decode(name)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("utf-8", errors="replace")


def decode_header(value: object) -> str | None:
    if value is None:
        return None
    # Unfold first: the space of a fold after an encoded word is a real space ("=?..?= l'Hôtel").
    raw = _unfold(str(value))
    if "=?" not in raw and raw.isascii():
        text = raw  # what decode_header_part returns for it (no encoded word; NFC leaves ASCII as is)
    elif len(raw) > 4096 and "=?" in raw:
        text = _decode_long_header(raw)
    else:
        text = decode_header_part(raw)
    return " ".join(text.split()) or None  # = re.sub(r"\s+", " ", text).strip(): same whitespace


def _unfold(value: str) -> str:
    """re.sub(r"\r?\n(?=[ \t])", "", value), faster on the common shapes."""
    if "\n" not in value:
        return value
    if "\r" not in value:
        return value.replace("\n ", " ").replace("\n\t", "\t")
    return re.sub(r"\r?\n(?=[ \t])", "", value)


def _decode_long_header(header: str) -> str:
    """mail-parser's decode_header_part for a huge header: the same result, in linear time."""
    try:
        output = "".join(ported_string(data, charset or "utf-8", "ignore") for data, charset in _decode_words(header))
        output.encode("utf-8")
    except (HeaderParseError, UnicodeError):
        return decode_header_part(header)  # its own fallbacks
    return output.strip()


_BAD_Q_ESCAPE = re.compile(r"=(?![0-9A-Fa-f]{2})")


def _decode_words(header: str) -> list[tuple[bytes | str, str | None]]:
    """`email.header.decode_header`, step for step, without its quadratic steps (list.pop(0),
    del and bytes += per encoded word: a 200 kB subject of 3,000 words took 50 ms)."""
    if not email.header.ecre.search(header):
        return [(header, None)]
    words: list[tuple[str, str | None, str | None]] = []
    for line in header.splitlines():
        parts = email.header.ecre.split(line)  # unencoded, (charset, encoding, encoded, unencoded)*
        for index in range(0, len(parts), 4):
            unencoded = parts[index].lstrip() if index == 0 else parts[index]
            if unencoded:
                words.append((unencoded, None, None))
            if index + 3 < len(parts):
                words.append((parts[index + 3], parts[index + 2].lower(), parts[index + 1].lower()))
    # Whitespace between two encoded words is dropped.
    dropped = {n - 1 for n, w in enumerate(words) if n > 1 and w[1] and words[n - 2][1] and words[n - 1][0].isspace()}
    collapsed: list[tuple[bytes | str, str | None]] = []
    run: list[bytes | str] = []  # str: a Q-encoded word a2b_qp reads as header_decode does
    last_charset: str | None = None
    for n, (encoded, encoding, charset) in enumerate(words):
        if n in dropped:
            continue
        word: bytes | str
        if encoding is None:
            word = bytes(encoded, "raw-unicode-escape")
        elif encoding == "q":
            if encoded.isascii() and not _BAD_Q_ESCAPE.search(encoded):
                word = encoded  # decoded with its neighbours in _join_run
            else:
                word = bytes(email.quoprimime.header_decode(encoded), "raw-unicode-escape")
        else:
            padding = len(encoded) % 4  # Postel's law: add missing padding
            if padding:
                encoded += "==="[: 4 - padding]
            try:
                word = email.base64mime.decode(encoded)
            except binascii.Error as exc:
                raise HeaderParseError("Base64 decoding error") from exc
        if run and charset != last_charset:
            collapsed.append((_join_run(run, last_charset), last_charset))
            run = []
        run.append(word)
        last_charset = charset
    collapsed.append((_join_run(run, last_charset), last_charset))
    return collapsed


def _join_run(run: list[bytes | str], charset: str | None) -> bytes:
    """One charset's consecutive words as bytes. Runs of Q-encoded words are decoded in one
    a2b_qp call: each has every "=" followed by two hex digits, so none spans two words."""
    if charset is None:
        return b" ".join(run)  # type: ignore[arg-type] - unencoded words are bytes
    out: list[bytes] = []
    pending: list[str] = []
    for word in run:
        if isinstance(word, str):
            pending.append(word)
            continue
        if pending:
            out.append(binascii.a2b_qp("".join(pending), header=True))
            pending = []
        out.append(word)
    if pending:
        out.append(binascii.a2b_qp("".join(pending), header=True))
    return b"".join(out)


def parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def split_address(value: str | None) -> tuple[str | None, str | None]:
    """'Amazon.com <auto-confirm@amazon.com>' -> ('auto-confirm@amazon.com', 'Amazon.com').

    Also copes with what mail clients write in forwarded header blocks, such as
    'Amazon [mailto:x@amazon.com]' or 'x@amazon.com<mailto:x@amazon.com>'.
    """
    if not value:
        return None, None
    value = value.strip()
    found = EMAIL_ADDRESS.search(value)
    if not found:
        return None, value.strip(" \"'*") or None
    address = found.group(0).lower().rstrip(".")
    name = value[: found.start()]
    name = re.sub(r"[<\[(]?\s*(mailto:)?\s*$", "", name).strip(" \"'*<[(") or None
    if name is None:
        _, parsed_name = parseaddr(value)
        name = parsed_name or None
    return address, name


def headers_of(message: email.message.Message) -> Headers:
    from_addr, from_name = split_address(decode_header(message.get("from")))
    recipients = getaddresses(
        [str(v) for key in ("to", "delivered-to", "x-original-to") for v in message.get_all(key, [])])
    to = [addr.lower() for _, addr in recipients if addr]
    return Headers(
        from_addr=from_addr,
        from_name=from_name,
        to=to,
        to_names=[name for name, _ in ((decode_header(n) or "", a) for n, a in recipients) if name],
        subject=decode_header(message.get("subject")),
        date=parse_date(decode_header(message.get("date"))),
        message_id=(decode_header(message.get("message-id")) or "").strip("<> ") or None,
        content_language=decode_header(message.get("content-language")),
    )


def payload_text(part: email.message.Message, defects: set[str] | None = None) -> str:
    try:
        data = _payload_bytes(part)
    except Exception:  # a broken transfer encoding: keep what is there
        data = None
    if data is None:
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    charset = part.get_content_charset()
    if defects is None:
        return decode_bytes(data, charset)
    # mail-parser's CharsetDecodeDefect test (it decodes bodies itself; we decode them once,
    # here): the declared charset (default UTF-8) cannot read the bytes. That decode is
    # decode_bytes' own first try when the charset needs no alias: reuse it.
    declared = part.get_content_charset("utf-8")
    try:
        text: str | None = data.decode(declared)
    except (LookupError, UnicodeError):
        text = None
    if not _plain_text_payload(part) and data and (text is None or not _is_utf8_safe(text)):
        defects.add("CharsetDecodeDefect")
    name = charset.strip().strip('"').lower() if charset else "utf-8"
    if text is not None and _CHARSET_ALIASES.get(name, name) == declared:
        return text
    return decode_bytes(data, charset)


def _payload_bytes(part: email.message.Message) -> bytes | None:
    """part.get_payload(decode=True). An ASCII 7bit/8bit body (most HTML) is encoded once here:
    the stdlib first encodes it to UTF-8 to look for surrogates, a copy of the body for nothing."""
    payload = part._payload
    if isinstance(payload, str) and payload.isascii() and not part.is_multipart() and \
            str(part.get("content-transfer-encoding", "")).strip().lower() in ("", "7bit", "8bit", "binary"):
        return payload.encode("ascii")
    return part.get_payload(decode=True)


def _plain_text_payload(part: email.message.Message) -> bool:
    """A 7bit/8bit part whose text is valid: mail-parser takes it as is, without decoding."""
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    payload = part._payload
    return (not cte or cte in ("7bit", "8bit")) and isinstance(payload, str) and _is_utf8_safe(payload)


def _is_utf8_safe(text: str) -> bool:
    if text.isascii():  # most HTML: no copy to tell
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def walk_own_parts(message: email.message.Message):
    """Yield the parts of this message, not descending into attached messages."""
    stack = [message]
    while stack:
        part = stack.pop()
        yield part
        if part.get_content_maintype() == "message":
            continue
        payload = part.get_payload()
        if part.is_multipart() and isinstance(payload, list):
            stack.extend(reversed(payload))


def body_of(message: email.message.Message) -> Body:
    """The message's own text and HTML bodies (every inline part, in order; at most MAX_PARTS
    parts looked at, each body within parsers.bounded's length caps)."""
    texts: list[str] = []
    htmls: list[str] = []
    defects: set[str] = set()
    notes: list[str] = []
    for number, part in enumerate(walk_own_parts(message)):
        if number == MAX_PARTS:
            notes.append(Cut(f"more than {MAX_PARTS} MIME parts: read the first {MAX_PARTS}"))
            break
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        ctype = part.get_content_type()
        if ctype == "text/html":
            htmls.append(payload_text(part, defects))
        elif ctype == "text/plain" or (part is message and part.get_content_maintype() == "text"):
            texts.append(payload_text(part, defects))
    return bounded_body("\n".join(t for t in texts if t), "\n".join(htmls) if htmls else None,
                        frozenset(defects), notes)


def bounded_body(text: str, html: str | None, defects: frozenset[str] = frozenset(),
                 notes: list[str] | None = None) -> Body:
    """A Body whose text and HTML are within parsers.bounded's caps (notes say what was cut)."""
    notes = list(notes or [])
    text, cut = cap_text(text)
    notes += cut
    if html is not None:
        html, cut = cap_html(html)
        notes += cut
    return Body(text=text, html=html, defects=defects, notes=notes)


def attached_messages(message: email.message.Message) -> list[email.message.Message]:
    """Messages attached to this one (message/rfc822, message/global), outermost first."""
    found = []
    for part in walk_own_parts(message):
        if part is message or part.get_content_maintype() != "message":
            continue
        if part.get_content_subtype() not in ("rfc822", "global"):
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], email.message.Message):
            found.append(payload[0])
        else:
            # Gmail base64-encodes attached messages (RFC 2046 forbids it): decode and parse.
            data = part.get_payload(decode=True)
            if data:
                found.append(email.message_from_bytes(data))
    return found


def looks_like_headers(data: bytes) -> bool:
    """True when the bytes start like an RFC 5322 message rather than a bare body."""
    first = data.lstrip()[:200].split(b"\n", 1)[0]
    return bool(_HEADER_LINE.match(first)) and not first.lstrip().startswith(b"<")


def looks_quoted_printable(text: str) -> bool:
    return bool(re.search(r"=3D|=\r?\n|=[0-9A-F]{2}=[0-9A-F]{2}", text[:20000]))


def read_bare_body(raw: bytes) -> Body:
    """A body with no headers: an .html or .txt file (maybe still quoted-printable)."""
    if looks_quoted_printable(raw[:20000].decode("latin-1")):
        raw = quopri.decodestring(raw)
    text = decode_bytes(raw, None)
    if re.search(r"<(html|body|table|div|p|br)\b", text[:50000], re.IGNORECASE):
        return bounded_body("", text)
    return bounded_body(text, None)


class _MimeCheck(mailparser.MailParser):
    """mail-parser's reading of a message, without the parts the pipeline does not use.

    `from_bytes` builds the stdlib message (mail-parser's own entry point and its
    recursion guard) and `parse` keeps mail-parser's diagnostics that become warnings:
    every MIME part's parser defects, its MIME-header check, its address and Date header
    checks (cheap tests first: a plain ASCII address list, a part whose headers are all
    ASCII, have nothing to flag). Not its Received-chain check: relays' trace headers say
    nothing about a receipt, and reading them cost more than a fiftieth of every parse. It skips what `MailParser.parse` adds
    on top - decoding every header, body and attachment into its own dictionaries - which
    cost more than the MIME parse itself: `body_of` decodes the bodies once and reports the
    one body defect mail-parser finds there, CharsetDecodeDefect, for the text parts it reads.
    """

    def parse(self) -> _MimeCheck:
        self._defects, self._defects_categories, self._has_defects = [], set(), False
        message = self.message
        if message is None:
            return self
        for name in sorted(ADDRESSES_HEADERS):
            for value in message.get_all(name, []):
                if _plain_addresses(value):
                    continue  # nothing mail-parser flags; its address parser is slow
                found: list[dict] = []
                get_addresses(value, defects=found, decode_names=True)
                if found:
                    self._flag("AddressHeaderDefect")
        occurrences: dict[str, int] = {}
        for name, raw in message.raw_items():
            header = name.lower()
            if header in ("date", "resent-date"):
                occurrence = occurrences[header] = occurrences.get(header, -1) + 1
                if date_diagnostics(parse_mail_date(raw), raw, header, occurrence):
                    self._flag("DateHeaderDefect")
        for part in message.walk():
            self._append_defects(part, part.get_content_type())
            if not all(str(value).isascii() for _, value in part.raw_items()) and mime_header_view(part)[1]:
                self._flag("MimeHeaderDefect")
        return self

    def _flag(self, category: str) -> None:
        self._has_defects = True
        self._defects_categories.add(category)


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]++"
_LABEL = r"[A-Za-z0-9]++(?:-++[A-Za-z0-9]++)*+"  # a DNS label: no hyphen at either end
_ADDRESS = rf"{_ATEXT}(?:\.{_ATEXT})*+@{_LABEL}(?:\.{_LABEL})++"
_MAILBOX = rf"""[ \t]*+(?:{_ADDRESS}|(?:"[^"\\\r\n]*+"|[A-Za-z0-9 ]++)?[ \t]*+<{_ADDRESS}>)[ \t]*+"""
_PLAIN_ADDRESSES = re.compile(rf"{_MAILBOX}(?:,{_MAILBOX})*+")


def _plain_addresses(value: object) -> bool:
    """'Name <a@b.com>, "Other" <c@d.org>': ASCII mailboxes with nothing to diagnose."""
    return (isinstance(value, str) and len(value) < 2000 and value.isascii() and "=?" not in value
            and _PLAIN_ADDRESSES.fullmatch(value) is not None)


def read_mime(raw: bytes) -> tuple[email.message.Message, set[str]]:
    """Parse a whole message once (mail-parser over the stdlib parser).

    Returns the message tree and mail-parser's defect categories, which become
    warnings. Leading blank lines and padding (seen in real wrapped mail) are
    dropped first, or the parser would read every header as body.
    """
    raw = raw.lstrip()
    if b"\r\r\n" in raw[:4096]:
        # "\r\r\n" line ends (a wrapper that added CR to CRLF) would read as blank lines.
        raw = raw.replace(b"\r\r\n", b"\r\n")
    try:  # mail-parser's own guard (MailParser._parse_guarded)
        parsed = _MimeCheck(message_from_bytes(raw))
    except RecursionError as exc:
        raise MailParserRecursionError(
            "Message nesting too deep to parse (possible malicious multipart structure)") from exc
    return parsed.message, set(parsed.defects_categories)


_FEED = 8192  # what email.parser.Parser.parse feeds at a time


def message_from_bytes(raw: bytes) -> email.message.Message:
    """`email.message_from_bytes(raw)`, the same message, with fewer copies of the email: the
    stdlib reads its text through a StringIO (4 bytes a character) and joins each body back
    from line strings - ten times the email's size at its peak. Here the text is fed as it is,
    and a single-part message's body (all after a header block the stdlib reads whole) is its
    payload as decoded, never split into lines."""
    body = _single_part_body(raw)
    if body > 0:
        message = _feed(raw[:body].decode("ascii", "surrogateescape"))
        if message.get_content_maintype() not in ("multipart", "message"):
            message.set_payload(str(memoryview(raw)[body:], "ascii", "surrogateescape"))  # its lines, joined
            return message
    return _feed(raw.decode("ascii", "surrogateescape"))


def _feed(text: str) -> email.message.Message:
    parser = email.feedparser.FeedParser(policy=email.policy.compat32)
    for start in range(0, len(text), _FEED):
        parser.feed(text[start:start + _FEED])
    return parser.close()


def _single_part_body(raw: bytes) -> int:
    """Where the body starts when every line before the first blank one is a header line as the
    stdlib's feedparser reads them (so its headers end exactly there); 0: not so."""
    ends = [found + length for separator, length in ((b"\r\n\r\n", 4), (b"\n\n", 2))
            if (found := raw.find(separator, 0, _HEADER_BLOCK)) >= 0]
    if not ends:
        return 0
    body = min(ends)
    block = raw[:body]
    if block.count(b"\r") != block.count(b"\r\n") or b"\nFrom " in block:
        return 0  # a bare CR ends a line for the feedparser; a "From " line after the first may be body
    lowered = block.lower()
    if b"multipart" in lowered or b"message/" in lowered:
        return 0  # most likely multipart: its headers would be read twice
    lines = block.replace(b"\r\n", b"\n").split(b"\n")[:-2]
    return body if all(_FEED_HEADER.match(line) for line in lines) else 0


_HEADER_BLOCK = 256 * 1024  # a header block longer than this is left to the stdlib
_FEED_HEADER = re.compile(email.feedparser.headerRE.pattern.encode("latin-1"))  # its header or continuation line


def _html_tree(html: str) -> etree._Element | None:
    if not html or not html.strip():
        return None
    try:
        # Bytes let lxml honour a <meta charset>; a str with one raises, so encode.
        return lxml.html.document_fromstring(html.encode("utf-8", "surrogatepass"), parser=_html_parser())
    except (etree.ParserError, ValueError, UnicodeError):
        return None


def _stopped_early() -> str | None:
    """After `_html_tree` built a tree in this thread: a warning when libxml2 stopped before the
    document's end (nested deeper than its 256 levels, another resource limit), which it does
    without raising, dropping the rest."""
    fatal = _html_parser().error_log.filter_from_fatals()  # this thread's parser: its last parse's log
    if not fatal:
        return None
    if "depth" in fatal[0].message:
        return Cut("HTML nested deeper than 255 levels: the rest of it not read")
    return Cut(f"HTML: the parser stopped ({fatal[0].message.strip()}): the rest of it not read")


class _CachedCssSelect:
    """`cssselect` as lxml.html has it, with each selector translated to XPath once:
    merchant parsers run the same selectors on every row of every email."""

    def cssselect(self, expr: str, translator: str = "html") -> list[etree._Element]:
        return _css_selector(expr, translator)(self)


@lru_cache(maxsize=1024)
def _css_selector(expr: str, translator: str) -> CSSSelector:
    return CSSSelector(expr, translator=translator)


class _ElementClassLookup(lxml.html.HtmlElementClassLookup):
    """lxml.html's element classes (forms, inputs...), each with the cached cssselect."""

    _element = type("HtmlElement", (_CachedCssSelect, lxml.html.HtmlElement), {})

    def __init__(self) -> None:
        super().__init__(mixins=[("*", _CachedCssSelect)])

    def lookup(self, node_type: str, document: object, namespace: str | None, name: str) -> type | None:
        if node_type == "element":
            return self._element_classes.get(name.lower(), self._element)
        return super().lookup(node_type, document, namespace, name)


_LOOKUP = _ElementClassLookup()
_PARSERS = threading.local()  # one parser per thread: its error log is then this thread's parse's


def _html_parser() -> lxml.html.HTMLParser:
    parser = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = _PARSERS.parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, huge_tree=False)
        parser.set_element_class_lookup(_LOOKUP)
    return parser


# visible_text's walk as XSLT: libxslt walks the tree in C, several times faster than Python.
_VISIBLE_TEXT = etree.XSLT(etree.XML(f"""\
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
<xsl:output method="text" encoding="utf-8"/>
<xsl:template match="{'|'.join(_DROP_TAGS)}|comment()|processing-instruction()"/>
<xsl:template match="{'|'.join(_BLOCK_TAGS)}"><xsl:text>&#10;</xsl:text><xsl:apply-templates/><xsl:text>&#10;</xsl:text></xsl:template>
<xsl:template match="{'|'.join(_CELL_TAGS)}"><xsl:text> | </xsl:text><xsl:apply-templates/></xsl:template>
</xsl:stylesheet>"""))  # fmt: skip


def visible_text(tree: etree._Element) -> str:
    """The text a reader sees, one line per block, cells separated by ' | '.

    Works on any element (merchant parsers read sub-trees): its text, its children's
    and its own tail. Block tags open and close a line, table cells are preceded by
    ' | ', script/style/head/title and comments are dropped (their tails are kept).
    """
    if isinstance(tree.tag, str):
        try:
            text = str(_VISIBLE_TEXT(tree))
        except etree.XSLTApplyError:  # deeper than libxslt recurses: the Python walk decides
            text = None
        if text is not None:
            return normalize_lines(text + (tree.tail or ""))
    return _visible_text_walk(tree)


def html_text(html: str) -> str:
    """The visible text of an HTML document (as `Email.html_text`); "" when it has none."""
    tree = _html_tree(html)
    return visible_text(tree) if tree is not None else ""


def _visible_text_walk(tree: etree._Element) -> str:
    parts: list[str] = []
    block = frozenset(_BLOCK_TAGS)
    cells = frozenset(_CELL_TAGS)
    drop = frozenset(_DROP_TAGS)

    def walk(el: etree._Element) -> None:
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag in drop:
            if el.tail:
                parts.append(el.tail)
            return
        if tag in block:
            parts.append("\n")
        elif tag in cells:
            parts.append(" | ")
        if el.text and tag:
            parts.append(el.text)
        for child in el:
            walk(child)
        if tag in block:
            parts.append("\n")
        if el.tail:
            parts.append(el.tail)

    try:
        walk(tree)
    except RecursionError:  # absurdly deep HTML: fall back to flat text
        return normalize_lines(tree.text_content())
    return normalize_lines("".join(parts))


_SPACE_RUN = re.compile(r"[ \t\u2000-\u200a\u202f\u3000]+")  # no "\n": same per line as on the whole text
_PIPE_RUN = re.compile(r"(\s*\|\s*)+")


# Whitespace str.split() splits on but _SPACE_RUN does not collapse (besides "\n", "\r", "\xa0").
_OTHER_SPACES = "\x0b\x0c\x1c\x1d\x1e\x1f\x85\u1680\u2028\u2029\u205f"


def normalize_lines(text: str) -> str:
    """Collapse spaces, strip each line (and stray cell bars at its ends), drop empty lines."""
    text = text.replace("\r", "").replace("\xa0", " ").replace("\u200b", "")
    if not any(char in text for char in _OTHER_SPACES):
        # Fast path, same result: with no other whitespace, split/join is _SPACE_RUN + strip.
        lines = []
        for line in text.split("\n"):
            if not line or line.isspace():  # most lines of an HTML body: indentation
                continue
            line = " ".join(line.split()).strip(" |")
            if "|" in line:
                line = _PIPE_RUN.sub(" | ", line)
            if line:
                lines.append(line)
        return "\n".join(lines)
    lines = []
    text = _SPACE_RUN.sub(" ", text)
    for line in text.split("\n"):
        line = line.strip(" |")
        if "|" in line:
            line = _PIPE_RUN.sub(" | ", line)
        line = line.strip()
        if line:
            lines.append(line)
    return "\n".join(lines)


def unquote_text(text: str) -> str:
    """Drop '> ' quoting (Apple Mail and others quote forwarded text)."""
    return re.sub(r"(?m)^[ \t]*(?:>[ \t]?)+", "", text)


@dataclass
class Email:
    """The unwrapped email: the ORIGINAL message's headers and bodies."""

    original: Headers
    text: str = ""
    html: str | None = None
    envelope: Headers = field(default_factory=Headers)
    forwarded: bool = False
    forwarded_by: str | None = None
    warnings: list[str] = field(default_factory=list)
    cache: dict[str, object] = field(default_factory=dict, repr=False)  # per-email results (schema.org)
    mime: email.message.Message | None = field(default=None, repr=False)  # the read message, for attachments

    @cached_property
    def tree(self) -> etree._Element | None:
        """The HTML body parsed once (lxml); None when there is no HTML. Its markup was cut to
        a receipt's number of elements before (parsers.bounded.cut_elements); a warning when
        the parser stopped early."""
        tree = _html_tree(self.html) if self.html else None
        if tree is not None and (cut := _stopped_early()):
            self.warnings.append(cut)
        return tree

    @property
    def cut(self) -> bool:
        """Part of what the readers would have seen was left out (parsers.bounded's caps, the
        layout's): what they read is not the whole email."""
        return any(isinstance(warning, Cut) for warning in self.warnings)

    @cached_property
    def html_text(self) -> str:
        return visible_text(self.tree) if self.tree is not None else ""

    @cached_property
    def plain_text(self) -> str:
        return normalize_lines(unquote_text(self.text))

    @cached_property
    def prefers_text(self) -> bool:
        """The HTML part says far less than the text part (a stub or a shell around a "view
        online" link, with the receipt in text/plain): the text part is the body to read."""
        if self.tree is None or not self.text or len(self.html_text) >= 2000:
            return False
        return len(self.html_text) * 3 < len(self.plain_text)

    @cached_property
    def body_text(self) -> str:
        """Visible text: from the HTML when there is some (and it is not a stub), else the plain text."""
        if self.prefers_text:
            return self.plain_text
        return self.html_text or self.plain_text

    @cached_property
    def language(self) -> str | None:
        return detect_language(self)

    @property
    def sender_domain(self) -> str | None:
        return registrable_domain(self.original.from_addr)
