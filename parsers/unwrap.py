"""Unwrap forwards and recover the ORIGINAL sender, date and subject.

Three shapes, tried outside in:
1. the original attached (message/rfc822 or message/global, nested any depth up to a cap),
   or pasted whole into the body as raw RFC 5322 text (some API-sent wrappers do that, even
   base64- or quoted-printable-encoded once more);
2. an inline forward: a "Forwarded message" marker and/or a From/Date/Subject block in the
   text and/or the HTML (Gmail, Outlook, Apple Mail, Thunderbird, Yahoo; en/fr/de/es/it/nl) -
   quotequail first, our multilingual header-block reader where it does not fit. The
   forwarder's note and the header block are cut off both bodies (the HTML tree is cut in
   place: it is still parsed only once);
3. no forward: the merchant's own headers (auto-forwarding rules keep them).
"""

from __future__ import annotations

import base64
import binascii
import email
import email.message
import quopri
import re
from dataclasses import dataclass
from datetime import datetime

import lxml.html
import quotequail
from lxml import etree

from parsers.bounded import trim_raw
from parsers.message import (
    Body,
    Email,
    Headers,
    attached_messages,
    body_of,
    decode_bytes,
    headers_of,
    looks_like_headers,
    parse_date,
    read_bare_body,
    read_mime,
    split_address,
    unquote_text,
    visible_text,
)
from parsers.normalize import quick_datetime

MAX_DEPTH = 16  # forwards of forwards: real threads reach ~12 (crisp's gmail variant 14)

FORWARD_SUBJECT = re.compile(
    r"^\s*(?:\[?(?:fwd?|fw|tr|wg|i|rv|enc|doorst|vs|vb|trs|reenv)\s*:\s*\]?\s*)+", re.IGNORECASE
)
# "Re:", "AW:" (de), "R:" (it), "SV:" (sv/da/no), "Antw:" (nl), "RES:" (pt), "ODP:" (pl)
REPLY_SUBJECT = re.compile(r"^\s*(?:re|aw|r|sv|antw|res|odp)\s*:", re.IGNORECASE)

# Marker lines that open a forwarded block, by client and language.
_MARKERS = (
    r"-+\s*(?:Forwarded|Original) [Mm]essage\s*-+",
    r"Begin forwarded message\s*:",
    r"-+\s*Message transféré\s*-+",
    r"-+\s*Message transmis\s*-+",
    r"-+\s*Message d'origine\s*-+",
    r"-+\s*Message original\s*-+",
    r"Début du message (?:réexpédié|transféré)\s*:",
    r"-+\s*(?:Weitergeleitete|Ursprüngliche) (?:Nachricht|E-Mail)\s*-+",
    r"Anfang der weitergeleiteten (?:Nachricht|E-Mail)\s*:",
    r"-+\s*Mensaje (?:reenviado|original)\s*-+",
    r"Inicio del mensaje reenviado\s*:",
    r"-+\s*Messaggio (?:inoltrato|originale)\s*-+",
    r"Inizio messaggio inoltrato\s*:",
    r"-+\s*(?:Doorgestuurd|Oorspronkelijk) bericht\s*-+",
    r"-+\s*Пересылаемое сообщение\s*-+",
    r"_{20,}",
)
MARKER = re.compile(r"^[ \t>]*+(?:" + "|".join(_MARKERS) + r")[ \t]*$", re.MULTILINE | re.IGNORECASE)

_LABELS = {
    "from": ("from", "de", "von", "da", "van", "från", "от кого", "от", "od"),
    "date": ("date", "sent", "datum", "gesendet", "envoyé", "envoyé le", "inviato",
             "enviado", "enviado el", "fecha", "data", "verzonden", "sendt", "skickat", "дата"),
    "subject": ("subject", "objet", "sujet", "betreff", "oggetto", "asunto", "assunto",
                "onderwerp", "ämne", "тема"),
    "to": ("to", "à", "a", "an", "para", "pour", "aan", "till", "кому"),
    "cc": ("cc", "copie", "copie à", "kopie", "kopie (cc)", "cc (kopie)", "copia"),
    "reply_to": ("reply-to", "antwort an", "répondre à", "rispondi a", "responder a"),
}  # fmt: skip
_LABEL_TO_FIELD = {label: name for name, labels in _LABELS.items() for label in labels}
_LABEL_ALTERNATION = "|".join(sorted(map(re.escape, _LABEL_TO_FIELD), key=len, reverse=True))
# A label at a line start, maybe bold (*From:*), maybe with a space before the colon (FR).
LABEL_LINE = re.compile(
    rf"^[ \t>]*+\*?({_LABEL_ALTERNATION})\s?\*?[ \t]*:[ \t]*\*?[ \t]*(.*)$", re.IGNORECASE
)
# Labels run together on one line (Yahoo): "De : x@y.comÀ : ...Envoyé : ... UTC+1Objet : ...".
# Yahoo capitalises each label, so a label may follow any character but a capital letter.
_CAPITALISED = "|".join(
    sorted((re.escape(label[0].upper()) + f"(?i:{re.escape(label[1:])})" for label in _LABEL_TO_FIELD),
           key=len, reverse=True)
)
INLINE_LABEL = re.compile(rf"(?<![A-Z])({_CAPITALISED})\s?:\s")


def _label_match(line: str) -> re.Match[str] | None:
    """LABEL_LINE.match, with the cheap test first: every label line has a colon."""
    return LABEL_LINE.match(line) if ":" in line else None


def _marker_match(line: str) -> re.Match[str] | None:
    """MARKER.match, with the cheap test first: every marker has a "-", ":" or "_"."""
    return MARKER.match(line) if ("-" in line or ":" in line or "_" in line) else None


_YAHOO_MARKER = re.compile(
    r"^[ \t>]*+-+\s*(?:Message transmis|Forwarded Message|Weitergeleitete Nachricht|"
    r"Mensaje reenviado|Messaggio inoltrato|Doorgestuurd bericht)\s*-+\s*(.+)$", re.IGNORECASE
)
_DATE_LANGUAGES = ["en", "fr", "de", "es", "it", "nl", "pt", "ru"]
# Time-zone names dateparser does not know (Apple Mail in German writes them).
_TZ_NAMES = {"OESZ": "+0300", "OEZ": "+0200", "MESZ": "+0200", "MEZ": "+0100", "WESZ": "+0100", "WEZ": "+0000"}
_STANDARD_HEADERS = frozenset(("from", "to", "cc", "bcc", "date", "subject", "reply-to"))


@dataclass
class Block:
    """One forwarded header block: its fields (from, date, subject, to, ...) in order."""

    fields: dict[str, str]
    marker: bool  # a "Forwarded message"-style line opened it

    @property
    def names(self) -> list[str]:
        return list(self.fields)


# ---------------------------------------------------------------------------------------------
# Entry point


def unwrap(raw: bytes) -> Email:
    """Bytes -> the ORIGINAL message, with how it was forwarded."""
    if not looks_like_headers(raw) or starts_with_forward_block(raw):
        body = read_bare_body(raw)
        return unwrap_inline(Email(original=Headers(), text=body.text, html=body.html, warnings=body.notes))

    raw, notes = trim_raw(raw)  # a large email's oversized bodies cut before the MIME parse copies them
    message, defects = read_mime(raw)
    del raw  # the message holds what is read from here on
    envelope = headers_of(message)
    current, original, depth = message, envelope, 0
    body = body_of(current)  # decoded once per level: the common path has one level
    defects |= body.defects
    notes += body.notes
    while (inner := inner_message(current, body)) is not None:
        if depth == MAX_DEPTH:
            notes.append(f"forward nested deeper than {MAX_DEPTH} levels; read level {MAX_DEPTH}")
            break
        depth += 1
        current, original = inner, headers_of(inner)
        body = body_of(current)
        defects |= body.defects
        notes += body.notes
    warnings = [f"MIME defect: {name}" for name in sorted(defects)] + notes
    result = Email(
        original=original,
        text=body.text,
        html=body.html,
        envelope=envelope,
        forwarded=depth > 0,
        forwarded_by=envelope.from_addr if depth else None,
        warnings=warnings,
        mime=current,
    )
    return unwrap_inline(result)


def starts_with_forward_block(raw: bytes) -> bool:
    """A bare body that opens with a forwarded header block ("From: x / Sent: y / Subject: z")
    parses as RFC 5322 headers; tell it from a real message by what real headers never do:
    a non-header label (Sent:, Von:, Objet:), no blank line before the body, or a Date a
    mail client printed for people ("Thursday, 28 October 2021 at 12:46")."""
    text = decode_bytes(raw.lstrip()[:4000], None)
    names: list[str] = []
    values: dict[str, str] = {}
    separated = False
    lines = text.splitlines()
    for line in lines[:-1] if len(raw) > 4000 else lines:  # a last line cut off is no evidence
        if not line.strip():
            separated = True
            break
        if line[:1] in " \t":
            continue
        found = re.match(r"^([^:\s][^:]*?)\s?:\s*(.*)$", line)
        if not found or found.group(1).lower() not in _LABEL_TO_FIELD:
            if found and names and re.fullmatch(r"[!-9;-~]+", found.group(1)):
                return False  # a real header field (Message-ID, MIME-Version, X-...)
            break
        names.append(found.group(1).lower())
        values.setdefault(_LABEL_TO_FIELD[names[-1]], found.group(2))
    else:
        return False  # a header section longer than we looked at: a real message
    if "from" not in values or len(names) < 2:
        return False
    date = values.get("date")
    return (not separated or any(name not in _STANDARD_HEADERS for name in names)
            or (date is not None and parse_date(date) is None))


# ---------------------------------------------------------------------------------------------
# Attached or pasted originals


def inner_message(message: email.message.Message, body: Body) -> email.message.Message | None:
    """The message this one carries: attached, or pasted whole into its text body (`body`)."""
    attached = attached_messages(message)
    if attached:
        return attached[0]
    if message.get_content_maintype() not in ("text", "multipart"):
        return None
    text = body.text.strip()
    if not text or body.html:
        return None
    candidate = text.encode("utf-8", "surrogateescape")
    if _BASE64_BLOB.fullmatch(text[:4000]) and len(text) > 200:
        try:
            candidate = base64.b64decode(re.sub(r"\s+", "", text), validate=True)
        except (binascii.Error, ValueError):
            return None
    candidate = candidate.lstrip()
    if len(_WHOLE_QP.findall(re.split(rb"\r?\n\r?\n", candidate[:65536], maxsplit=1)[0])) >= 2:
        # The whole raw message quoted-printable-encoded once more (headers too): undo it once.
        candidate = quopri.decodestring(candidate)
    if looks_like_raw_message(candidate):
        return email.message_from_bytes(candidate.lstrip())
    return None


_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/=\s]+")
# "i=3D1; a=3Drsa-sha256": an ARC-Seal that went through quoted-printable. (Soft line
# breaks are no sign: base64 signature values end lines with "=" too.)
_WHOLE_QP = re.compile(rb"=3D", re.IGNORECASE)
_RAW_HEADER_NAMES = re.compile(
    rb"^(?:received|delivered-to|return-path|from|to|subject|date|message-id|mime-version|"
    rb"content-type|arc-[a-z-]+|dkim-signature|x-[a-z0-9-]+|authentication-results):",
    re.IGNORECASE,
)


def looks_like_raw_message(data: bytes) -> bool:
    """A whole RFC 5322 message: several known header lines, then From and a body."""
    data = data.lstrip()
    if not looks_like_headers(data):
        return False
    head = re.split(rb"\r?\n\r?\n", data[:65536], maxsplit=1)[0]
    lines = [line for line in head.splitlines() if line and not line[:1].isspace()]
    known = sum(1 for line in lines if _RAW_HEADER_NAMES.match(line))
    has_from = any(line.lower().startswith(b"from:") for line in lines)
    return has_from and known >= 3 and known >= len(lines) * 0.6


# ---------------------------------------------------------------------------------------------
# Inline forwards


def unwrap_inline(result: Email) -> Email:
    """Follow inline forward blocks down to the innermost one, in the text and the HTML."""
    trusted = result.forwarded or bool(FORWARD_SUBJECT.match(result.original.subject or ""))
    text_blocks: list[Block] = []
    rest = ""
    if result.text.strip():
        text_blocks, rest = follow_blocks(unquote_text(result.text), trusted, result.warnings)
    html_blocks: list[Block] = []
    if result.html:
        html_blocks = _unwrap_html(result, trusted)
    blocks = text_blocks if len(text_blocks) >= len(html_blocks) else html_blocks
    if not blocks:
        return result
    if not result.forwarded:
        result.forwarded = True
        result.forwarded_by = result.original.from_addr
        result.envelope = result.original
    result.original = headers_from_block(blocks[-1].fields)
    if text_blocks:
        result.text = rest  # the forwarded part only, without the forwarder's note
    return result


def follow_blocks(text: str, trusted: bool, warnings: list[str] | None = None) -> tuple[list[Block], str]:
    """Every nested forward block in `text`, outermost first, and the text after the last."""
    blocks: list[Block] = []
    while (found := find_forward_block(text, trust_bare_block=trusted)) is not None:
        if len(blocks) == MAX_DEPTH:
            if warnings is not None:
                warnings.append(f"inline forwards nested deeper than {MAX_DEPTH} levels; read level {MAX_DEPTH}")
            break
        block, text = found
        blocks.append(block)
        trusted = bool(FORWARD_SUBJECT.match(block.fields.get("subject", "")))
    return blocks, text


_QUOTEQUAIL_FROM = re.compile(r"^[> ]*+(?:\* *+)?(?:from|von|de|от кого|från|van) *:", re.IGNORECASE | re.MULTILINE)


def find_forward_block(text: str, *, trust_bare_block: bool) -> tuple[Block, str] | None:
    """Find the first forwarded header block; return it and the text after it.

    A block needs a marker line, an e-mail address in its From, or a full
    From/Date/Subject set, unless the subject already says it is a forward:
    itineraries have "From: SFO" lines too. A bare block whose subject says "Re:" is a
    quoted reply inside the forwarded message, not one more forward.
    """
    if not text or not text.strip():
        return None
    found = _read_block(text, trust_bare_block=trust_bare_block)
    if found is not None:
        return found
    # quotequail tries ~30 regexes on every line, but it only finds a forward's From on a
    # "From:"-like line (its HEADER_MAP): skip it when there is none.
    unwrapped = quotequail.unwrap(text) if _QUOTEQUAIL_FROM.search(text) else None
    if unwrapped and unwrapped.get("type") == "forward" and unwrapped.get("from"):
        fields = {k: _clean(unwrapped[k]) for k in ("from", "date", "subject", "to") if unwrapped.get(k)}
        head = text[: text.find(unwrapped["from"])] if unwrapped["from"] in text else unwrapped.get("text_top", "")
        block = Block(fields, marker=bool(MARKER.search(head[-400:])))
        if _acceptable(block, trust_bare_block=trust_bare_block):
            return block, unwrapped.get("text") or ""
    return None


def _acceptable(block: Block, *, trust_bare_block: bool) -> bool:
    fields = block.fields
    if not fields.get("from"):
        return False
    if block.marker or trust_bare_block:
        return True
    if REPLY_SUBJECT.match(fields.get("subject", "")):
        return False
    has_address = split_address(fields["from"])[0] is not None
    return has_address or ("subject" in fields and "date" in fields)


def _read_block(text: str, *, trust_bare_block: bool) -> tuple[Block, str] | None:
    lines = _join_empty_labels(text.split("\n"))
    marker_at = None
    for index, line in enumerate(lines):
        yahoo = _one_line_block(line)
        if yahoo:
            return Block(yahoo, marker=True), "\n".join(lines[index + 1 :])
        if _marker_match(line):
            marker_at = index
            break
    start = (marker_at + 1) if marker_at is not None else 0
    for index in range(start, len(lines)):
        fields, end = _label_block(lines, index)
        if fields.get("from") and len(fields) >= 2:
            block = Block(fields, marker=marker_at is not None and index <= start + 3)
            if _acceptable(block, trust_bare_block=trust_bare_block):
                return block, "\n".join(lines[end:])
            if block.marker:
                break
            continue
        if marker_at is not None and index > start + 3:
            break
    return None


def _join_empty_labels(lines: list[str]) -> list[str]:
    """A label alone on its line takes the next line as its value: HTML header tables
    (Thunderbird's moz-email-headers-table) put label and value in separate cells."""
    joined: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        match = _label_match(line)
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if match and not match.group(2).strip() and following.strip() and not _label_match(following):
            joined.append(f"{line.rstrip()} {following.strip()}")
            index += 2
            continue
        joined.append(line)
        index += 1
    return joined


def _label_block(lines: list[str], start: int) -> tuple[dict[str, str], int]:
    """Read consecutive 'Label: value' lines. A value may wrap onto one more line when
    another label follows it (Gmail wraps "From: Name <" before a long address)."""
    fields: dict[str, str] = {}
    index = start
    while index < len(lines):
        match = _label_match(lines[index])
        if not match:
            stripped = lines[index].strip(" >")
            following = lines[index + 1] if index + 1 < len(lines) else ""
            if fields and stripped and index > start and _label_match(following) and not _marker_match(following):
                last = list(fields)[-1]
                fields[last] = _clean(f"{fields[last]} {stripped}")
                index += 1
                continue
            break
        name = _LABEL_TO_FIELD[match.group(1).lower()]
        if index == start and name != "from" and not _starts_block(lines, index):
            return {}, index
        if name in fields and "from" in fields:
            break  # a second From/Subject: the next block starts here
        fields.setdefault(name, _clean(match.group(2)))
        index += 1
    return fields, index


def _starts_block(lines: list[str], index: int) -> bool:
    """Thunderbird and some French clients put Subject/Objet before From: allow a
    block to open on any label when a From follows within a few lines."""
    for line in lines[index : index + 6]:
        match = _label_match(line)
        if match and _LABEL_TO_FIELD[match.group(1).lower()] == "from":
            return True
        if not match:
            return False
    return False


def _one_line_block(line: str) -> dict[str, str] | None:
    """Yahoo writes the whole header block on the marker's line."""
    marker = _YAHOO_MARKER.match(line) if "-" in line else None
    if not marker:
        return None
    rest = marker.group(1)
    found = list(INLINE_LABEL.finditer(rest))
    fields: dict[str, str] = {}
    for here, after in zip(found, [*found[1:], None], strict=False):
        value = rest[here.end() : after.start() if after else len(rest)].strip()
        fields.setdefault(_LABEL_TO_FIELD[here.group(1).lower()], _clean(value))
    return fields if fields.get("from") else None


def _clean(value: str) -> str:
    """Drop the bold stars Gmail's text part puts around values ("*Buchung*")."""
    value = value.strip()
    if len(value) > 2 and value.startswith("*") and value.endswith("*"):
        value = value[1:-1].strip()
    return value


# ---------------------------------------------------------------------------------------------
# The HTML part: find the blocks in its visible text, cut the parsed tree after each one.


def _unwrap_html(result: Email, trusted: bool) -> list[Block]:
    tree = result.tree
    if tree is None:
        return []
    blocks: list[Block] = []
    text = result.html_text
    cut = False
    while len(blocks) < MAX_DEPTH:
        found = find_forward_block(text, trust_bare_block=trusted)
        if found is None:
            break
        block = found[0]
        if not cut_tree_after_block(tree, block.names):
            # Can't tell where the block ends in the markup: keep the whole HTML.
            if blocks:
                break
            blocks.append(block)
            return blocks
        blocks.append(block)
        cut = True
        text = visible_text(tree)
        trusted = bool(FORWARD_SUBJECT.match(block.fields.get("subject", "")))
    if cut:
        # The forwarder's <html> replaced the original's: keep a lang the original declared.
        declared = tree.xpath("(//body//*[@lang])[1]/@lang")
        if declared and not tree.get("lang"):
            tree.set("lang", declared[0])
        result.html = lxml.html.tostring(tree, encoding="unicode")
        for name in ("html_text", "body_text", "plain_text", "language"):
            result.__dict__.pop(name, None)
        result.__dict__["tree"] = tree
    return blocks


_BLOCK_LEVEL = frozenset(("p", "div", "tr", "li", "table", "blockquote", "section", "article",
                          "h1", "h2", "h3", "h4", "h5", "h6", "pre", "body", "center"))  # fmt: skip


def cut_tree_after_block(tree: etree._Element, names: list[str]) -> bool:
    """Remove from the tree everything up to the end of the header block whose fields are
    `names` (in order): the forwarder's note, the marker, the block itself."""
    body = tree.find("body")
    root = body if body is not None else tree
    wanted = 0
    last: tuple[etree._Element, bool] | None = None
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        for is_tail, segment in ((False, element.text), (True, element.tail)):
            if not segment or not segment.strip():
                continue
            match = _label_match(segment.strip())
            if not match:
                continue
            name = _LABEL_TO_FIELD[match.group(1).lower()]
            if wanted == 0 and name != names[0]:
                continue
            if name in names[wanted:]:
                wanted = names.index(name, wanted) + 1
                last = (element, is_tail)
        if wanted >= len(names):
            break
    if last is None or wanted < len(names):
        return False
    element, is_tail = last
    holder = element.getparent() if is_tail else element
    if holder is None:
        return False
    block = holder
    while block is not root and block.tag not in _BLOCK_LEVEL and block.getparent() is not None:
        block = block.getparent()
    point = block
    if block is not root:
        after = False
        for node in block.iter():
            if node is element:
                after = True
            elif after and node.tag == "br":
                point = node
                break
    else:
        point = element
    _drop_up_to(point, root)
    return True


def _drop_up_to(point: etree._Element, root: etree._Element) -> None:
    """Drop everything before `point` in document order, and `point` itself (not its tail)."""
    node = point
    while node is not root:
        parent = node.getparent()
        if parent is None:
            break
        for sibling in list(node.itersiblings(preceding=True)):
            parent.remove(sibling)
        parent.text = None
        node = parent
    tail = point.tail
    parent = point.getparent()
    if parent is None:
        return
    parent.remove(point)
    if tail:
        parent.text = (parent.text or "") + tail


# ---------------------------------------------------------------------------------------------
# Header values


def headers_from_block(fields: dict[str, str]) -> Headers:
    from_addr, from_name = split_address(fields.get("from"))
    to_addr, to_name = split_address(fields.get("to"))
    date_text = fields.get("date")
    return Headers(
        from_addr=from_addr,
        from_name=from_name,
        to=[to_addr] if to_addr else [],
        to_names=[to_name] if to_name else [],
        subject=(fields.get("subject") or "").strip() or None,
        date=(parse_date(date_text) if date_text and _RFC_DATE.match(date_text) else None)
        or parse_loose_datetime(date_text),
    )


# "Wed, 3 Nov 2021 15:51:30 +0100": the stdlib reads other shapes leniently and wrongly
# ("Thursday, March 7, 2024 2:05 PM" -> 02:05).
_RFC_DATE = re.compile(r"^\s*(?:[A-Za-z]{3},?\s+)?\d{1,2}\s+[A-Za-z]{3}\s+\d{2,4}\s+\d{1,2}:\d{2}")


def parse_loose_datetime(text: str | None) -> datetime | None:
    """Dates as mail clients print them: 'Thu, Jun 1, 2023 at 8:47 AM', '27. Okt. 2021 um 09:31'."""
    if not text:
        return None
    cleaned = text.replace("\u202f", " ").replace("\xa0", " ")
    cleaned = re.sub(r"\s+(?:at|à|um|alle(?: ore)?|a las|a la|om|kl\.)\s+", " ", cleaned)
    cleaned = re.sub(r"\s+Uhr\b", "", cleaned)
    cleaned = re.sub(r"\b(" + "|".join(_TZ_NAMES) + r")\b", lambda m: _TZ_NAMES[m.group(1)], cleaned)
    quick = quick_datetime(" ".join(cleaned.split()), _DATE_LANGUAGES)  # the common shapes, fast
    if quick is not None:
        return quick
    import dateparser  # slow to import; only forwarded mail with a localized date needs it

    try:
        return dateparser.parse(cleaned, languages=_DATE_LANGUAGES, settings={"PREFER_DAY_OF_MONTH": "first"})
    except (ValueError, OverflowError, TypeError):
        return None
