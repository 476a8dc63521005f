"""Reading raw email bytes: MIME parsed once, bodies decoded, HTML parsed at most once.

`read_mime` is the only place that parses a whole message; `Email` is the view every
later stage works on (the ORIGINAL message after `parsers.unwrap` took the forward
apart). Its HTML tree and visible text are built lazily, once.
"""

from __future__ import annotations

import email
import email.message
import logging
import quopri
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from functools import cached_property

import lxml.html
import mailparser
from lxml import etree
from mailparser.utils import decode_header_part, mime_header_view

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
    subject: str | None = None
    date: datetime | None = None
    message_id: str | None = None
    content_language: str | None = None


@dataclass
class Body:
    text: str = ""
    html: str | None = None
    defects: frozenset[str] = frozenset()  # "CharsetDecodeDefect" when a declared charset failed


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
    text = decode_header_part(re.sub(r"\r?\n(?=[ \t])", "", str(value)))
    return re.sub(r"\s+", " ", text).strip() or None


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
    to = [addr.lower() for _, addr in getaddresses(
        [str(v) for key in ("to", "delivered-to", "x-original-to") for v in message.get_all(key, [])]
    ) if addr]  # fmt: skip
    return Headers(
        from_addr=from_addr,
        from_name=from_name,
        to=to,
        subject=decode_header(message.get("subject")),
        date=parse_date(decode_header(message.get("date"))),
        message_id=(decode_header(message.get("message-id")) or "").strip("<> ") or None,
        content_language=decode_header(message.get("content-language")),
    )


def _payload_text(part: email.message.Message, defects: set[str] | None = None) -> str:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding: keep what is there
        data = None
    if data is None:
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    if defects is not None and _charset_fails(part, data):
        defects.add("CharsetDecodeDefect")
    return decode_bytes(data, part.get_content_charset())


def _charset_fails(part: email.message.Message, data: bytes) -> bool:
    """mail-parser's CharsetDecodeDefect test for a body part (it decodes bodies itself;
    we decode them once, here): the declared charset (default UTF-8) cannot read the bytes."""
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    payload = part._payload
    if (not cte or cte in ("7bit", "8bit")) and isinstance(payload, str):
        try:
            payload.encode("utf-8")
            return False
        except UnicodeEncodeError:
            pass
    if not data:
        return False
    try:
        data.decode(part.get_content_charset("utf-8")).encode("utf-8")
    except (LookupError, UnicodeError):
        return True
    return False


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
    """The message's own text and HTML bodies (every inline part, in order)."""
    texts: list[str] = []
    htmls: list[str] = []
    defects: set[str] = set()
    for part in walk_own_parts(message):
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        ctype = part.get_content_type()
        if ctype == "text/html":
            htmls.append(_payload_text(part, defects))
        elif ctype == "text/plain" or (part is message and part.get_content_maintype() == "text"):
            texts.append(_payload_text(part, defects))
    return Body(text="\n".join(t for t in texts if t), html="\n".join(htmls) if htmls else None,
                defects=frozenset(defects))


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
        return Body(html=text)
    return Body(text=text)


class _MimeCheck(mailparser.MailParser):
    """mail-parser's reading of a message, without the parts the pipeline does not use.

    `from_bytes` builds the stdlib message (mail-parser's own entry point and its
    recursion guard) and `parse` keeps mail-parser's diagnostics: its header checks
    (address, Date and Received headers), every MIME part's parser defects and its
    MIME-header check. It skips what `MailParser.parse` adds on top - decoding every
    header, body and attachment into its own dictionaries - which cost as much as the
    MIME parse itself: `body_of` decodes the bodies once (and reports the one body
    defect mail-parser finds there, CharsetDecodeDefect).
    """

    def parse(self) -> _MimeCheck:
        self._reset()  # mail-parser's header diagnostics
        if self.message is None:
            return self
        for part in self.message.walk():
            self._append_defects(part, part.get_content_type())
            if mime_header_view(part)[1]:
                self._has_defects = True
                self._defects_categories.add("MimeHeaderDefect")
        return self


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
    parsed = _MimeCheck.from_bytes(raw)
    return parsed.message, set(parsed.defects_categories)


def _html_tree(html: str) -> etree._Element | None:
    if not html or not html.strip():
        return None
    try:
        # Bytes let lxml honour a <meta charset>; a str with one raises, so encode.
        return lxml.html.document_fromstring(html.encode("utf-8", "surrogatepass"),
                                             parser=_HTML_PARSER)
    except (etree.ParserError, ValueError, UnicodeError):
        return None


_HTML_PARSER = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, huge_tree=False)


def visible_text(tree: etree._Element) -> str:
    """The text a reader sees, one line per block, cells separated by ' | '."""
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


def normalize_lines(text: str) -> str:
    lines = []
    text = _SPACE_RUN.sub(" ", text.replace("\r", "").replace("\xa0", " ").replace("\u200b", ""))
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

    def attachments(self, content_type: str) -> list[bytes]:
        """Decoded attached files of one type ("application/pdf"; also found by file extension)."""
        suffix = "." + content_type.rsplit("/", 1)[-1]
        found = []
        for part in walk_own_parts(self.mime) if self.mime is not None else ():
            name = str(part.get_filename() or "").lower()
            if part.get_content_type() == content_type or name.endswith(suffix):
                data = part.get_payload(decode=True)
                if isinstance(data, bytes) and data:
                    found.append(data)
        return found

    @cached_property
    def tree(self) -> etree._Element | None:
        """The HTML body parsed once (lxml); None when there is no HTML."""
        return _html_tree(self.html) if self.html else None

    @cached_property
    def html_text(self) -> str:
        return visible_text(self.tree) if self.tree is not None else ""

    @cached_property
    def plain_text(self) -> str:
        return normalize_lines(unquote_text(self.text))

    @cached_property
    def body_text(self) -> str:
        """Visible text: from the HTML when there is some, else the plain text."""
        return self.html_text or self.plain_text

    @cached_property
    def language(self) -> str | None:
        return detect_language(self)

    @property
    def sender_domain(self) -> str | None:
        return registrable_domain(self.original.from_addr)
