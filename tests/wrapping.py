"""Forward a raw fixture email the way real mail clients do (a test helper).

Each style takes the original's raw bytes and the forwarder's address and returns the
raw bytes of the forward:
- inline: `gmail`, `outlook` (From/Sent/To/Subject block; `original_message=True` for the
  "-----Original Message-----" variant), `outlook_web`, `apple` (text quoted with "> ",
  HTML in a blockquote), `thunderbird` (moz-forward-container), `yahoo` (the text's header
  fields run together on one line) - each in en, fr, de, es, it labels. Like the real
  clients, the forward's HTML carries the original's HTML body and its text part the
  original's text, and the original's attached files are forwarded with it;
- `attachment`: the original as a message/rfc822 part;
- nested: `attachment_in_attachment`, `gmail_of_apple` (a Gmail forward of an Apple Mail
  forward), and `nest_attachments(raw, forwarder, depth)`.
The original is read with the standard library only, never with the code under test.
"""

from __future__ import annotations

import email
import email.header
import email.message
import email.policy
import html as html_lib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, getaddresses, make_msgid, parsedate_to_datetime

import lxml.html

LANGUAGES = ("en", "fr", "de", "es", "it")
INBOX = "inbox@purchaseshare.example"

_DAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
    "it": ("lunedì", "martedì", "mercoledì", "giovedì", "venerdì", "sabato", "domenica"),
}
_MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"),
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
           "octobre", "novembre", "décembre"),
    "de": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September",
           "Oktober", "November", "Dezember"),
    "es": ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre",
           "octubre", "noviembre", "diciembre"),
    "it": ("gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto",
           "settembre", "ottobre", "novembre", "dicembre"),
}  # fmt: skip

# Per client and language: marker line, labels (from, date, to, subject), subject prefix.
_GMAIL = {
    "en": ("---------- Forwarded message ---------", ("From", "Date", "To", "Subject"), "Fwd"),
    "fr": ("---------- Message transféré ---------", ("De", "Date", "À", "Objet"), "Fwd"),
    "de": ("---------- Weitergeleitete Nachricht ---------", ("Von", "Date", "To", "Subject"), "Fwd"),
    "es": ("---------- Mensaje reenviado ---------", ("De", "Date", "To", "Subject"), "Fwd"),
    "it": ("---------- Messaggio inoltrato ---------", ("Da", "Date", "To", "Subject"), "Fwd"),
}
_OUTLOOK = {
    "en": ("-----Original Message-----", ("From", "Sent", "To", "Subject"), "FW"),
    "fr": ("-----Message d'origine-----", ("De", "Envoyé", "À", "Objet"), "TR"),
    "de": ("-----Ursprüngliche Nachricht-----", ("Von", "Gesendet", "An", "Betreff"), "WG"),
    "es": ("-----Mensaje original-----", ("De", "Enviado el", "Para", "Asunto"), "RV"),
    "it": ("-----Messaggio originale-----", ("Da", "Inviato", "A", "Oggetto"), "I"),
}
_APPLE = {
    "en": ("Begin forwarded message:", ("From", "Date", "To", "Subject"), "Fwd"),
    "fr": ("Début du message réexpédié :", ("De", "Date", "À", "Objet"), "Fwd"),
    "de": ("Anfang der weitergeleiteten Nachricht:", ("Von", "Datum", "An", "Betreff"), "Fwd"),
    "es": ("Inicio del mensaje reenviado:", ("De", "Fecha", "Para", "Asunto"), "Fwd"),
    "it": ("Inizio messaggio inoltrato:", ("Da", "Data", "A", "Oggetto"), "I"),
}
_THUNDERBIRD = {
    "en": ("-------- Forwarded Message --------", ("From", "Date", "To", "Subject"), "Fwd"),
    "fr": ("-------- Message transféré --------", ("De", "Date", "Pour", "Sujet"), "Fwd"),
    "de": ("-------- Weitergeleitete Nachricht --------", ("Von", "Datum", "An", "Betreff"), "WG"),
    "es": ("-------- Mensaje reenviado --------", ("De", "Fecha", "Para", "Asunto"), "Fwd"),
    "it": ("-------- Messaggio inoltrato --------", ("Da", "Data", "A", "Oggetto"), "I"),
}
_YAHOO = {
    "en": ("----- Forwarded Message -----", ("From", "Sent", "To", "Subject"), "Fwd"),
    "fr": ("----- Message transmis -----", ("De", "Envoyé", "À", "Objet"), "TR"),
    "de": ("----- Weitergeleitete Nachricht -----", ("Von", "Gesendet", "An", "Betreff"), "WG"),
    "es": ("----- Mensaje reenviado -----", ("De", "Enviado", "Para", "Asunto"), "RV"),
    "it": ("----- Messaggio inoltrato -----", ("Da", "Inviato", "A", "Oggetto"), "I"),
}
_COLON = {"fr": " :"}  # French puts a space before the colon


@dataclass
class Original:
    """What a mail client shows of the message it forwards."""

    sender: str  # 'Name <addr>' or 'addr'
    sender_addr: str
    sender_name: str
    to: str
    subject: str
    date: datetime
    text: str
    html: str  # the body's inner HTML (plus the head's styles and JSON-LD)
    attachments: list[email.message.Message]
    raw: bytes
    has_html: bool  # a plain-text original is forwarded as plain text (Apple Mail, Thunderbird)


# ---------------------------------------------------------------------------------------------
# Reading the original


def read_original(raw: bytes) -> Original:
    message = email.message_from_bytes(raw.lstrip(), policy=email.policy.compat32)
    sender = _header(message, "from")
    (name, addr), *_ = getaddresses([sender]) or [("", "")]
    date = _date(_header(message, "date"))
    text = html = None
    attachments = []
    for part in _own_parts(message):
        if part.get_content_maintype() == "message" and part is not message:
            attachments.append(part)
            continue
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if part.get_content_disposition() == "attachment" or ctype not in ("text/plain", "text/html"):
            if part.get_content_maintype() in ("application", "image", "message") and part is not message:
                attachments.append(part)
            continue
        data = part.get_payload(decode=True) or b""
        body = data.decode(part.get_content_charset() or "utf-8", errors="replace")
        if ctype == "text/html" and html is None:
            html = body
        elif ctype == "text/plain" and text is None:
            text = body
    inner_html = _inner_html(html) if html else _text_to_html(text or "")
    if text is None:
        text = _html_to_text(html or "")
    return Original(
        sender=sender or addr, sender_addr=addr, sender_name=name, to=_header(message, "to"),
        subject=_header(message, "subject"), date=date, text=text.replace("\r\n", "\n"),
        html=inner_html, attachments=attachments, raw=raw, has_html=html is not None,
    )  # fmt: skip


def _header(message: email.message.Message, name: str) -> str:
    value = message.get(name)
    if value is None:
        return ""
    decoded = str(email.header.make_header(email.header.decode_header(str(value))))
    return re.sub(r"\s+", " ", decoded).strip()


def _date(value: str) -> datetime:
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return datetime(2024, 1, 2, 10, 30, tzinfo=UTC)


def _own_parts(message: email.message.Message):
    stack = [message]
    while stack:
        part = stack.pop()
        yield part
        if part.is_multipart() and part.get_content_maintype() != "message":
            stack.extend(reversed(part.get_payload()))


_PARSER = lxml.html.HTMLParser(encoding="utf-8")


def _inner_html(document: str) -> str:
    """The body's content, with the head's <style> and JSON-LD carried along (Apple Mail
    and Thunderbird keep both; keeping them everywhere keeps the test about unwrapping)."""
    tree = lxml.html.document_fromstring(document.encode("utf-8"), parser=_PARSER)
    kept = [lxml.html.tostring(el, encoding="unicode") for el in tree.xpath(
        '//head//style | //head//script[@type="application/ld+json"]')]  # fmt: skip
    body = tree.find("body")
    if body is None:
        return "".join(kept) + lxml.html.tostring(tree, encoding="unicode")
    inner = (html_lib.escape(body.text) if body.text else "") + "".join(
        lxml.html.tostring(child, encoding="unicode") for child in body
    )
    lang = tree.get("lang")
    opening = f'<div lang="{html_lib.escape(lang)}">' if lang else "<div>"
    return "".join(kept) + opening + inner + "</div>"


def _text_to_html(text: str) -> str:
    return "<div>" + "<br>\n".join(html_lib.escape(line) for line in text.replace("\r\n", "\n").split("\n")) + "</div>"


def _html_to_text(document: str) -> str:
    if not document.strip():
        return ""
    tree = lxml.html.document_fromstring(document.encode("utf-8"), parser=_PARSER)
    for bad in tree.xpath("//style | //script | //head"):
        bad.drop_tree()
    for block in tree.xpath("//br | //p | //div | //tr | //li | //h1 | //h2 | //h3 | //table"):
        block.tail = "\n" + (block.tail or "")
    return re.sub(r"\n\s*\n+", "\n\n", tree.text_content()).strip()


# ---------------------------------------------------------------------------------------------
# Dates as each client prints them


def _offset(date: datetime, style: str) -> str:
    minutes = int((date.utcoffset() or timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    if style == "rfc":
        return f"{sign}{hours:02d}{rest:02d}"
    return f"{style}{sign}{hours}" + (f":{rest:02d}" if rest else "")


def _clock(date: datetime, lang: str, seconds: bool = False) -> str:
    if lang == "en":
        hour = date.hour % 12 or 12
        return f"{hour}:{date.minute:02d}{f':{date.second:02d}' if seconds else ''} {'AM' if date.hour < 12 else 'PM'}"
    return f"{date.hour:02d}:{date.minute:02d}" + (f":{date.second:02d}" if seconds else "")


_FR_SHORT_MONTHS = ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc.")


def gmail_date(date: datetime, lang: str) -> str:
    day, month = _DAYS[lang][date.weekday()], _MONTHS[lang][date.month - 1]
    return {
        "en": f"{day[:3]}, {month[:3]} {date.day}, {date.year} at {_clock(date, 'en')}",
        "fr": f"{day[:3]}. {date.day} {_FR_SHORT_MONTHS[date.month - 1]} {date.year} à {_clock(date, 'fr')}",
        "de": f"{day[:2]}., {date.day}. {month[:3]}. {date.year} um {_clock(date, 'de')} Uhr",
        "es": f"{day[:3]}, {date.day} {month[:3]} {date.year} a las {date.hour}:{date.minute:02d}",
        "it": f"{day[:3]} {date.day} {month[:3]} {date.year} alle ore {_clock(date, 'it')}",
    }[lang]


def outlook_date(date: datetime, lang: str) -> str:
    day, month = _DAYS[lang][date.weekday()], _MONTHS[lang][date.month - 1]
    return {
        "en": f"{day}, {month} {date.day}, {date.year} {_clock(date, 'en')}",
        "fr": f"{day} {date.day} {month} {date.year} {_clock(date, 'fr')}",
        "de": f"{day}, {date.day}. {month} {date.year} {_clock(date, 'de')}",
        "es": f"{day}, {date.day} de {month} de {date.year} {date.hour}:{date.minute:02d}",
        "it": f"{day} {date.day} {month} {date.year} {_clock(date, 'it')}",
    }[lang]


def apple_date(date: datetime, lang: str) -> str:
    month = _MONTHS[lang][date.month - 1]
    zone = _offset(date, "GMT" if lang == "en" else "UTC")
    return {
        "en": f"{month} {date.day}, {date.year} at {_clock(date, 'en', seconds=True)} {zone}",
        "fr": f"{date.day} {month} {date.year} à {_clock(date, 'fr', seconds=True)} {zone}",
        "de": f"{date.day}. {month} {date.year} um {_clock(date, 'de', seconds=True)} {zone}",
        "es": f"{date.day} de {month} de {date.year}, {_clock(date, 'es', seconds=True)} {zone}",
        "it": f"{date.day} {month} {date.year} {_clock(date, 'it', seconds=True)} {zone}",
    }[lang]


def yahoo_date(date: datetime, lang: str) -> str:
    day, month = _DAYS[lang][date.weekday()], _MONTHS[lang][date.month - 1]
    clock = _clock(date, lang, seconds=True)
    zone = _offset(date, "GMT" if lang == "en" else "UTC")
    return {
        "en": f"{day}, {month} {date.day}, {date.year}, {clock} {zone}",
        "fr": f"{day} {date.day} {month} {date.year}, {clock} {zone}",
        "de": f"{day}, {date.day}. {month} {date.year}, {clock} {zone}",
        "es": f"{day}, {date.day} de {month} de {date.year} {clock} {zone}",
        "it": f"{day} {date.day} {month} {date.year}, {clock} {zone}",
    }[lang]


# ---------------------------------------------------------------------------------------------
# Building the forward


def _forward_message(original: Original, forwarder: str, subject: str, text: str, html: str | None,
                     lang: str) -> bytes:  # fmt: skip
    message = email.message.EmailMessage(policy=email.policy.SMTP)
    message["From"] = f"Forwarding Person <{forwarder}>"
    message["To"] = INBOX
    message["Subject"] = subject
    message["Date"] = format_datetime(original.date + timedelta(hours=2))
    message["Message-ID"] = make_msgid(domain=forwarder.split("@")[-1])
    message["Content-Language"] = {"en": "en-US", "fr": "fr-FR", "de": "de-DE", "es": "es-ES", "it": "it-IT"}[lang]
    message.set_content(text, charset="utf-8")
    if html is not None and original.has_html:
        message.add_alternative(html, subtype="html", charset="utf-8")
    for part in original.attachments:
        if part.get_content_maintype() == "message":
            message.make_mixed()
            message.attach(_message_part(part.get_payload(0)))
            continue
        data = part.get_payload(decode=True)
        if data is None:
            continue
        maintype, subtype = part.get_content_type().split("/", 1)
        message.add_attachment(data, maintype=maintype, subtype=subtype,
                               filename=part.get_filename() or f"attachment.{subtype}")
    return message.as_bytes()


def _label(lang: str, label: str) -> str:
    return f"{label}{_COLON.get(lang, ':')}"


def _prefixed(prefix: str, subject: str) -> str:
    return f"{prefix}: {subject}"


def _sender_html(original: Original) -> str:
    if original.sender_name:
        return (f'<strong class="gmail_sendername" dir="auto">{html_lib.escape(original.sender_name)}</strong> '
                f'<span dir="auto">&lt;<a href="mailto:{original.sender_addr}">{original.sender_addr}</a>&gt;</span>')
    return f'<span dir="auto">&lt;<a href="mailto:{original.sender_addr}">{original.sender_addr}</a>&gt;</span>'


def gmail(raw: bytes, forwarder: str, lang: str = "en") -> bytes:
    original = read_original(raw)
    marker, (l_from, l_date, l_to, l_subject), prefix = _GMAIL[lang]
    date = gmail_date(original.date, lang)
    text = (f"\n\n{marker}\n{_label(lang, l_from)} {original.sender}\n{_label(lang, l_date)} {date}\n"
            f"{_label(lang, l_subject)} {original.subject}\n{_label(lang, l_to)} {original.to}\n\n\n{original.text}\n")
    html = (f'<div dir="ltr"><br><br><div class="gmail_quote gmail_quote_container">'
            f'<div dir="ltr" class="gmail_attr">{html_lib.escape(marker)}<br>'
            f"{_label(lang, l_from)} {_sender_html(original)}<br>"
            f"{_label(lang, l_date)} {html_lib.escape(date)}<br>"
            f"{_label(lang, l_subject)} {html_lib.escape(original.subject)}<br>"
            f"{_label(lang, l_to)} {html_lib.escape(original.to)}<br></div><br><br>"
            f"{original.html}</div></div>")
    return _forward_message(original, forwarder, _prefixed(prefix, original.subject), text, html, lang)


def outlook(raw: bytes, forwarder: str, lang: str = "en", original_message: bool = False) -> bytes:
    """Outlook desktop. Its text part opens the block with an underscore rule, or with
    "-----Original Message-----" (older versions, plain-text mode)."""
    original = read_original(raw)
    marker, (l_from, l_sent, l_to, l_subject), prefix = _OUTLOOK[lang]
    sent = outlook_date(original.date, lang)
    sender = (f"{original.sender_name} [mailto:{original.sender_addr}]" if original.sender_name
              else original.sender_addr)
    rule = marker if original_message else "_" * 32
    text = (f"FYI\n\n{rule}\n{_label(lang, l_from)} {sender}\n{_label(lang, l_sent)} {sent}\n"
            f"{_label(lang, l_to)} {original.to}\n{_label(lang, l_subject)} {original.subject}\n\n{original.text}\n")
    head = f'<p class="MsoNormal">{html_lib.escape(marker)}</p>' if original_message else ""
    html = ('<html><head><meta name="Generator" content="Microsoft Word 15 (filtered medium)"></head>'
            '<body lang="EN-US"><div class="WordSection1"><p class="MsoNormal">FYI<o:p></o:p></p>'
            f'<p class="MsoNormal"><o:p>&nbsp;</o:p></p>{head}'
            '<div><div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0in 0in 0in">'
            f'<p class="MsoNormal"><b>{_label(lang, l_from)}</b> {html_lib.escape(sender)}<br>'
            f"<b>{_label(lang, l_sent)}</b> {html_lib.escape(sent)}<br>"
            f"<b>{_label(lang, l_to)}</b> {html_lib.escape(original.to)}<br>"
            f"<b>{_label(lang, l_subject)}</b> {html_lib.escape(original.subject)}<o:p></o:p></p></div></div>"
            f'<p class="MsoNormal"><o:p>&nbsp;</o:p></p>{original.html}</div></body></html>')
    return _forward_message(original, forwarder, _prefixed(prefix, original.subject), text, html, lang)


def outlook_web(raw: bytes, forwarder: str, lang: str = "en") -> bytes:
    original = read_original(raw)
    _, (l_from, l_sent, l_to, l_subject), prefix = _OUTLOOK[lang]
    sent = outlook_date(original.date, lang)
    text = (f"\n\n{'_' * 32}\n{_label(lang, l_from)} {original.sender}\n{_label(lang, l_sent)} {sent}\n"
            f"{_label(lang, l_to)} {original.to}\n{_label(lang, l_subject)} {original.subject}\n\n{original.text}\n")
    html = ('<html><head></head><body dir="ltr"><div><br></div>'
            '<hr style="display:inline-block;width:98%" tabindex="-1">'
            '<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri, sans-serif" style="font-size:11pt">'
            f"<b>{_label(lang, l_from)}</b> {html_lib.escape(original.sender)}<br>"
            f"<b>{_label(lang, l_sent)}</b> {html_lib.escape(sent)}<br>"
            f"<b>{_label(lang, l_to)}</b> {html_lib.escape(original.to)}<br>"
            f"<b>{_label(lang, l_subject)}</b> {html_lib.escape(original.subject)}</font><div>&nbsp;</div></div>"
            f"{original.html}</body></html>")
    return _forward_message(original, forwarder, _prefixed(prefix, original.subject), text, html, lang)


def apple(raw: bytes, forwarder: str, lang: str = "en") -> bytes:
    original = read_original(raw)
    marker, (l_from, l_date, l_to, l_subject), prefix = _APPLE[lang]
    date = apple_date(original.date, lang)
    fields = ((l_from, original.sender), (l_subject, original.subject), (l_date, date), (l_to, original.to))
    quoted = "\n".join(f"> {line}" if line else ">" for line in original.text.split("\n"))
    text = ("\n\nSent from my iPhone\n\n" f"{marker}\n\n" + "".join(f"> {_label(lang, k)} {v}\n" for k, v in fields)
            + ">\n" + quoted + "\n")
    html = ('<html><head><meta http-equiv="content-type" content="text/html; charset=utf-8"></head>'
            '<body dir="auto"><div dir="ltr"></div><div dir="ltr"><br>'
            f"<blockquote type=\"cite\">{html_lib.escape(marker)}<br><br></blockquote></div>"
            '<blockquote type="cite"><div dir="ltr">'
            + "".join(f'<div style="margin: 0px;"><span><b>{_label(lang, k)} </b></span>'
                      f"<span>{html_lib.escape(v)}</span></div>" for k, v in fields)
            + f'<br></div></blockquote><blockquote type="cite">{original.html}</blockquote></body></html>')
    return _forward_message(original, forwarder, _prefixed(prefix, original.subject), text, html, lang)


def thunderbird(raw: bytes, forwarder: str, lang: str = "en") -> bytes:
    original = read_original(raw)
    marker, (l_from, l_date, l_to, l_subject), prefix = _THUNDERBIRD[lang]
    date = format_datetime(original.date)
    fields = ((l_subject, original.subject), (l_date, date), (l_from, original.sender), (l_to, original.to))
    text = f"\n\n\n{marker}\n" + "".join(f"{_label(lang, k)} \t{v}\n" for k, v in fields) + f"\n\n\n{original.text}\n"
    rows = "".join(f'<tr><th valign="BASELINE" nowrap="nowrap" align="RIGHT">{_label(lang, k)} </th>'
                   f"<td>{html_lib.escape(v)}</td></tr>" for k, v in fields)
    html = ('<html><head><meta http-equiv="content-type" content="text/html; charset=UTF-8"></head><body>'
            f'<p><br></p><div class="moz-forward-container"><br><br>{html_lib.escape(marker)}'
            f'<table class="moz-email-headers-table" cellspacing="0" cellpadding="0" border="0"><tbody>{rows}'
            f"</tbody></table><br><br>{original.html}</div></body></html>")
    return _forward_message(original, forwarder, _prefixed(prefix, original.subject), text, html, lang)


def yahoo(raw: bytes, forwarder: str, lang: str = "en") -> bytes:
    """Yahoo: the text part runs the header fields together on the marker's line."""
    original = read_original(raw)
    marker, (l_from, l_sent, l_to, l_subject), prefix = _YAHOO[lang]
    sent = yahoo_date(original.date, lang)
    fields = ((l_from, original.sender), (l_to, original.to), (l_sent, sent), (l_subject, original.subject))
    text = f"\n\n   {marker} " + "".join(f"{_label(lang, k)} {v}" for k, v in fields) + f"\n {original.text}\n"
    html = ('<html><head></head><body><div class="ydp-wrapper"><div dir="ltr"><br></div>'
            f'<div id="yahoo_quoted" class="yahoo_quoted"><div style="font-family:Helvetica,Arial;font-size:13px">'
            f"<div>{html_lib.escape(marker)}</div>"
            + "".join(f"<div><b>{_label(lang, k)}</b> {html_lib.escape(v)}</div>" for k, v in fields)
            + f"<div><br></div><div><br></div>{original.html}</div></div></div></body></html>")
    return _forward_message(original, forwarder, _prefixed(prefix, original.subject), text, html, lang)


def attachment(raw: bytes, forwarder: str, lang: str = "en") -> bytes:
    """Forward as attachment: a short note plus the original as message/rfc822."""
    original = read_original(raw)
    message = email.message.EmailMessage(policy=email.policy.SMTP)
    message["From"] = f"Forwarding Person <{forwarder}>"
    message["To"] = INBOX
    message["Subject"] = _prefixed("Fwd", original.subject)
    message["Date"] = format_datetime(original.date + timedelta(hours=2))
    message["Message-ID"] = make_msgid(domain=forwarder.split("@")[-1])
    message.set_content("See the attached email.\n", charset="utf-8")
    message.make_mixed()
    message.attach(_message_part(email.message_from_bytes(raw.lstrip(), policy=email.policy.compat32)))
    return message.as_bytes()


def _message_part(inner: email.message.Message) -> email.message.MIMEPart:
    part = email.message.MIMEPart(policy=email.policy.SMTP)
    part.set_content(inner)  # message/rfc822, 7bit/8bit: no transfer encoding
    part.add_header("Content-Disposition", "attachment", filename="forwarded.eml")
    return part


def attachment_in_attachment(raw: bytes, forwarder: str, lang: str = "en") -> bytes:
    return attachment(attachment(raw, "someone.else@example.net"), forwarder)


def nest_attachments(raw: bytes, forwarder: str, depth: int) -> bytes:
    for level in range(depth - 1):
        raw = attachment(raw, f"level{level}@example.net")
    return attachment(raw, forwarder)


def gmail_of_apple(raw: bytes, forwarder: str, lang: str = "en") -> bytes:
    """Someone forwarded it from an iPhone; the user forwards that from Gmail."""
    return gmail(apple(raw, "someone.else@example.net", lang), forwarder, lang)


Style = Callable[..., bytes]
STYLES: dict[str, Style] = {
    "gmail": gmail,
    "outlook": outlook,
    "outlook_original_message": lambda raw, forwarder, lang="en": outlook(raw, forwarder, lang, original_message=True),
    "outlook_web": outlook_web,
    "apple": apple,
    "thunderbird": thunderbird,
    "yahoo": yahoo,
    "attachment": attachment,
    "attachment_in_attachment": attachment_in_attachment,
    "gmail_of_apple": gmail_of_apple,
}
INLINE_STYLES = ("gmail", "outlook", "outlook_original_message", "outlook_web", "apple", "thunderbird", "yahoo")


def wrap(raw: bytes, style: str, forwarder: str, lang: str = "en") -> bytes:
    return STYLES[style](raw, forwarder, lang)
