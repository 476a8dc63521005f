"""Unwrap forwards and recover the ORIGINAL sender, date and subject.

Three shapes, tried outside in:
1. the original attached (message/rfc822 or message/global, nested any depth up to a cap),
   or pasted whole into the body as raw RFC 5322 text (some API-sent wrappers do that);
2. an inline forward: a "Forwarded message" marker and/or a From/Date/Subject block in the
   text (Gmail, Outlook, Apple Mail, Thunderbird, Yahoo; en/fr/de/es/it/nl) - quotequail
   first, our multilingual header-block reader where it does not fit;
3. no forward: the merchant's own headers (auto-forwarding rules keep them).
"""

from __future__ import annotations

import base64
import binascii
import email
import email.message
import re
from datetime import datetime

import quotequail

from parsers.message import (
    Email,
    Headers,
    attached_messages,
    body_of,
    headers_of,
    looks_like_headers,
    parse_date,
    read_bare_body,
    read_mime,
    split_address,
    unquote_text,
)

MAX_DEPTH = 10

FORWARD_SUBJECT = re.compile(
    r"^\s*(?:\[?(?:fwd?|fw|tr|wg|i|rv|enc|doorst|vs|vb|trs|reenv)\s*:\s*\]?\s*)+", re.IGNORECASE
)

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
    r"_{20,}",
)
MARKER = re.compile(r"^[ \t>]*(?:" + "|".join(_MARKERS) + r")[ \t]*$", re.MULTILINE | re.IGNORECASE)

_LABELS = {
    "from": ("from", "de", "von", "da", "van", "från", "от кого", "od"),
    "date": ("date", "sent", "datum", "gesendet", "envoyé", "envoyé le", "inviato",
             "enviado", "enviado el", "fecha", "data", "verzonden", "sendt", "skickat"),
    "subject": ("subject", "objet", "sujet", "betreff", "oggetto", "asunto", "assunto",
                "onderwerp", "ämne", "тема"),
    "to": ("to", "à", "a", "an", "para", "pour", "aan", "till", "кому"),
    "cc": ("cc", "copie", "copie à", "kopie", "kopie (cc)", "cc (kopie)", "copia"),
}  # fmt: skip
_LABEL_TO_FIELD = {label: name for name, labels in _LABELS.items() for label in labels}
_LABEL_ALTERNATION = "|".join(sorted(map(re.escape, _LABEL_TO_FIELD), key=len, reverse=True))
# A label at a line start, maybe bold (*From:*), maybe with a space before the colon (FR).
LABEL_LINE = re.compile(
    rf"^[ \t>]*\*?({_LABEL_ALTERNATION})\s?\*?[ \t]*:[ \t]*\*?[ \t]*(.*)$", re.IGNORECASE
)
# Labels run together on one line (Yahoo): "De : x@y.comÀ : ...Objet : ..."
INLINE_LABEL = re.compile(rf"(?<![\w@.])({_LABEL_ALTERNATION})\s?:\s", re.IGNORECASE)


def unwrap(raw: bytes) -> Email:
    """Bytes -> the ORIGINAL message, with how it was forwarded."""
    if not looks_like_headers(raw):
        body = read_bare_body(raw)
        return unwrap_inline(Email(original=Headers(), text=body.text, html=body.html))

    message, defects = read_mime(raw)
    envelope = headers_of(message)
    warnings = [f"MIME defect: {name}" for name in defects]
    current, original, depth = message, envelope, 0
    while (inner := inner_message(current)) is not None:
        if depth == MAX_DEPTH:
            warnings.append(f"forward nested deeper than {MAX_DEPTH} levels; read level {MAX_DEPTH}")
            break
        depth += 1
        current, original = inner, headers_of(inner)
    body = body_of(current)
    result = Email(
        original=original,
        text=body.text,
        html=body.html,
        envelope=envelope,
        forwarded=depth > 0,
        forwarded_by=envelope.from_addr if depth else None,
        warnings=warnings,
    )
    return unwrap_inline(result)


def inner_message(message: email.message.Message) -> email.message.Message | None:
    """The message this one carries: attached, or pasted whole into its text body."""
    attached = attached_messages(message)
    if attached:
        return attached[0]
    if message.get_content_maintype() not in ("text", "multipart"):
        return None
    text = body_of(message).text.strip()
    if not text or body_of(message).html:
        return None
    candidate = text.encode("utf-8", "surrogateescape")
    if _BASE64_BLOB.fullmatch(text[:4000]) and len(text) > 200:
        try:
            candidate = base64.b64decode(re.sub(r"\s+", "", text), validate=True)
        except (binascii.Error, ValueError):
            return None
    if looks_like_raw_message(candidate):
        return email.message_from_bytes(candidate.lstrip())
    return None


_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/=\s]+")
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


def unwrap_inline(result: Email) -> Email:
    """Follow inline forward blocks down to the innermost one."""
    text = unquote_text(result.text) if result.text.strip() else result.html_text
    subject_says_forward = bool(FORWARD_SUBJECT.match(result.original.subject or ""))
    for _ in range(MAX_DEPTH):
        found = find_forward_block(text, trust_bare_block=subject_says_forward or result.forwarded)
        if found is None:
            break
        fields, text = found
        if not result.forwarded:
            result.forwarded = True
            result.forwarded_by = result.original.from_addr
            result.envelope = result.original
        result.original = headers_from_block(fields)
        subject_says_forward = bool(FORWARD_SUBJECT.match(result.original.subject or ""))
    else:
        result.warnings.append(f"inline forwards nested deeper than {MAX_DEPTH} levels")
    if result.forwarded and result.text.strip():
        result.text = text  # the forwarded part only, without the forwarder's note
    return result


def find_forward_block(text: str, *, trust_bare_block: bool) -> tuple[dict[str, str], str] | None:
    """Find the first forwarded header block; return its fields and the text after it.

    A block needs a marker line or an e-mail address in its From, unless the subject
    already says it is a forward: itineraries have "From: SFO" lines too.
    """
    if not text:
        return None
    unwrapped = quotequail.unwrap(text)
    if unwrapped and unwrapped.get("type") == "forward" and unwrapped.get("from"):
        fields = {k: unwrapped[k] for k in ("from", "date", "subject", "to") if unwrapped.get(k)}
        rest = unwrapped.get("text") or ""
        if _acceptable(fields, marker=True, trust_bare_block=trust_bare_block, text=text):
            return fields, rest
    return _read_block(text, trust_bare_block=trust_bare_block)


def _acceptable(fields: dict[str, str], *, marker: bool, trust_bare_block: bool, text: str) -> bool:
    has_address = split_address(fields.get("from"))[0] is not None
    return has_address or trust_bare_block or (marker and bool(MARKER.search(text[:20000])))


def _read_block(text: str, *, trust_bare_block: bool) -> tuple[dict[str, str], str] | None:
    lines = text.split("\n")
    marker_at = None
    for index, line in enumerate(lines):
        if MARKER.match(line):
            marker_at = index
            break
        yahoo = _one_line_block(line)
        if yahoo:
            return yahoo, "\n".join(lines[index + 1 :])
    start = (marker_at + 1) if marker_at is not None else 0
    for index in range(start, len(lines)):
        fields, end = _label_block(lines, index)
        if fields.get("from") and len(fields) >= 2:
            if _acceptable(fields, marker=marker_at is not None, trust_bare_block=trust_bare_block, text=text):
                return fields, "\n".join(lines[end:])
        if marker_at is not None and index > start + 3:
            break
    return None


def _label_block(lines: list[str], start: int) -> tuple[dict[str, str], int]:
    """Read consecutive 'Label: value' lines (values may wrap onto one more line)."""
    fields: dict[str, str] = {}
    index = start
    while index < len(lines):
        match = LABEL_LINE.match(lines[index])
        if not match:
            stripped = lines[index].strip(" >")
            if fields and stripped and not fields.get("_continued") and index > start:
                last = list(fields)[-1]
                fields[last] = f"{fields[last]} {stripped}"
                fields["_continued"] = "1"
                index += 1
                continue
            break
        fields.pop("_continued", None)
        name = _LABEL_TO_FIELD[match.group(1).lower()]
        if index == start and name != "from" and not _starts_block(lines, index):
            return {}, index
        fields.setdefault(name, match.group(2).strip())
        index += 1
    fields.pop("_continued", None)
    return fields, index


def _starts_block(lines: list[str], index: int) -> bool:
    """Thunderbird and some French clients put Subject/Objet before From: allow a
    block to open on any label when a From follows within a few lines."""
    for line in lines[index : index + 6]:
        match = LABEL_LINE.match(line)
        if match and _LABEL_TO_FIELD[match.group(1).lower()] == "from":
            return True
    return False


def _one_line_block(line: str) -> dict[str, str] | None:
    """Yahoo writes the whole header block on the marker's line."""
    marker = re.match(r"^[ \t>]*-+\s*(?:Message transmis|Forwarded Message|Weitergeleitete Nachricht|"
                      r"Mensaje reenviado|Messaggio inoltrato)\s*-+\s*(.+)$", line, re.IGNORECASE)
    if not marker:
        return None
    rest = marker.group(1)
    found = list(INLINE_LABEL.finditer(rest))
    fields: dict[str, str] = {}
    for here, after in zip(found, found[1:] + [None], strict=False):
        value = rest[here.end() : after.start() if after else len(rest)].strip()
        fields.setdefault(_LABEL_TO_FIELD[here.group(1).lower()], value)
    return fields if fields.get("from") else None


def headers_from_block(fields: dict[str, str]) -> Headers:
    from_addr, from_name = split_address(fields.get("from"))
    date_text = fields.get("date")
    return Headers(
        from_addr=from_addr,
        from_name=from_name,
        to=[a for a in (split_address(fields.get("to"))[0],) if a],
        subject=(fields.get("subject") or "").strip() or None,
        date=parse_date(date_text) or parse_loose_datetime(date_text),
    )


def parse_loose_datetime(text: str | None) -> datetime | None:
    """Dates as mail clients print them: 'Thu, Jun 1, 2023 at 8:47 AM', '27. Okt. 2021 um 09:31'."""
    if not text:
        return None
    import dateparser  # slow to import; only forwarded mail with a localized date needs it

    cleaned = re.sub(r"\s+(?:at|à|um|alle|a las|om)\s+", " ", text.replace("\u202f", " "))
    cleaned = re.sub(r"\s+Uhr\b", "", cleaned)
    parsed = dateparser.parse(cleaned, settings={"RETURN_AS_TIMEZONE_AWARE": False,
                                                 "PREFER_DAY_OF_MONTH": "first"})
    return parsed
