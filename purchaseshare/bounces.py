"""Bounces and delivery-status notifications that reach the inbox.

Our verification, reset and notification mail goes out with the inbox address as its envelope
sender, so the bounces come back here. They are recognised before attribution: never parsed as
purchases, never answered. A hard bounce (5.x.x) of OUR verification or reset mail - matched by
the Message-ID we sent (purchaseshare.mailer records it before DATA), found in the returned
headers - marks the outbox row `bounced` and the address undeliverable, which the user sees.

Recognised: RFC 3464 reports (multipart/report; report-type=delivery-status), and the common
non-standard bounces: from MAILER-DAEMON/postmaster, or with an empty envelope sender and a
bounce subject. Their codes are read from the report's Status fields, else from the text.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import re
from dataclasses import dataclass, field
from email.utils import parseaddr

from sqlmodel import Session, col, select

from purchaseshare.clock import utcnow
from purchaseshare.models import OutboxMail, SenderAddress, User

ROBOT_LOCALS = {"mailer-daemon", "postmaster"}
# Only with an empty envelope sender (a shop's "Delivery notification" about a parcel has one).
# Servers localize these subjects (Exchange: "Nicht zustellbar: ...", "Non remis : ..."): the
# product's languages, each with its servers' usual words.
BOUNCE_SUBJECT_WORDS = {
    "en": r"undeliver|delivery status notification|delivery (failure|has failed)|returned mail|failure notice|"
          r"mail delivery failed|delivery problem",
    "de": r"unzustellbar|nicht zustellbar|zustellung fehlgeschlagen|unzustellbare nachricht",
    "fr": r"non remis|non distribu|échec de (la )?(remise|distribution)",
    "es": r"no se puede entregar|no entregado|error de entrega|entrega fallida",
    "it": r"non recapitabile|mancato recapito|impossibile recapitare",
    "nl": r"onbestelbaar|niet bezorgd|bezorging mislukt",
    "pt": r"não (é possível )?entreg|não foi entregue|falha na entrega",
    "sv": r"olevererbar|ej levererbar|kunde inte levereras",
    "pl": r"niedostarczaln|niedoręczon|nie można dostarczyć",
}
SUBJECT = re.compile("|".join(BOUNCE_SUBJECT_WORDS.values()), re.I)
STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
SMTP_CODE = re.compile(r"^\s*([45]\d\d)[ -]", re.M)
MESSAGE_ID = re.compile(r"^Message-ID:\s*(<[^<>\s]+>)", re.I | re.M)
MARKED_PURPOSES = ("verify", "reset")  # our mail whose loss locks a user out: they are told


@dataclass
class Bounce:
    hard: bool  # a permanent failure (5.x.x): the address does not take mail
    status: str | None  # "5.1.1", or an SMTP code from a non-standard bounce
    diagnostic: str  # what the remote server said, one line
    recipients: list[str] = field(default_factory=list)  # Final-Recipient addresses (may be empty)
    message_ids: list[str] = field(default_factory=list)  # of the returned (original) message


def looks_like_bounce(headers: email.message.Message) -> bool:
    """From the header fields alone (cheap: every email goes through this)."""
    content_type = str(headers.get("Content-Type", "")).lower()
    if "multipart/report" in content_type and "delivery-status" in content_type:
        return True
    sender = parseaddr(str(headers.get("From", "")))[1].strip().lower()
    if sender.rpartition("@")[0] in ROBOT_LOCALS:
        return True
    null_sender = str(headers.get("Return-Path", "")).replace(" ", "") == "<>"
    return null_sender and bool(SUBJECT.search(str(headers.get("Subject", ""))))


def read_bounce(raw: bytes) -> Bounce:
    """What the bounce says (call it for mail `looks_like_bounce` accepted)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    statuses: list[str] = []
    diagnostics: list[str] = []
    recipients: list[str] = []
    message_ids: list[str] = []
    texts: list[str] = []
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            for block in part.get_payload():  # the per-message block, then one per recipient
                if not isinstance(block, email.message.Message):
                    continue
                if block.get("Status"):
                    statuses.append(str(block["Status"]).strip())
                if block.get("Diagnostic-Code"):
                    diagnostics.append(" ".join(str(block["Diagnostic-Code"]).split()))
                final = str(block.get("Final-Recipient", "") or block.get("Original-Recipient", ""))
                if final:
                    recipients.append(final.rpartition(";")[2].strip().strip("<>").lower())
        elif kind in ("message/rfc822", "message/global"):
            for inner in part.get_payload() if part.is_multipart() else []:
                if isinstance(inner, email.message.Message) and inner.get("Message-ID"):
                    message_ids.append(str(inner["Message-ID"]).strip())
        elif kind in ("text/rfc822-headers", "text/plain") and not part.is_multipart():
            texts.append(_text(part))
    text = "\n".join(texts)
    message_ids += MESSAGE_ID.findall(text)
    if not statuses:  # a non-standard bounce: its codes are somewhere in the text
        statuses = [".".join(found) for found in STATUS.findall(text)] or SMTP_CODE.findall(text)
    status = next((s for s in statuses if s.startswith("5")), statuses[0] if statuses else None)
    diagnostic = diagnostics[0] if diagnostics else _first_error_line(text)
    return Bounce(hard=bool(status and status.startswith("5")), status=status, diagnostic=diagnostic[:500],
                  recipients=list(dict.fromkeys(recipients)), message_ids=list(dict.fromkeys(message_ids)))


def record(session: Session, bounce: Bounce) -> str:
    """Mark what a hard bounce of our own mail means; returns the reason the raw email shows."""
    what = f"a bounce ({bounce.status or 'no status code'}{': ' + bounce.diagnostic if bounce.diagnostic else ''})"
    ours = _our_mail(session, bounce)
    if ours is None:
        return f"{what}; not about any mail we sent: not answered, not read as a purchase"
    if not bounce.hard:
        return f"{what} about our mail #{ours.id} to {ours.to_addr}: a delay, not a failure; nothing marked"
    now, reason = utcnow(), f"{bounce.status}: {bounce.diagnostic}" if bounce.diagnostic else str(bounce.status)
    ours.state, ours.error = "bounced", f"bounced: {reason}"
    if ours.purpose in MARKED_PURPOSES and ours.user_id is not None:
        user = session.get(User, ours.user_id)
        if user is not None and user.email == ours.to_addr:
            user.email_bounced_at, user.email_bounce_reason = now, reason
        address = session.exec(select(SenderAddress).where(SenderAddress.user_id == ours.user_id,
                                                           SenderAddress.address == ours.to_addr)).first()
        if address is not None:
            address.bounced_at, address.bounce_reason = now, reason
        return f"{what} about our {ours.purpose} mail #{ours.id}: {ours.to_addr} marked undeliverable"
    return f"{what} about our mail #{ours.id} to {ours.to_addr}: marked bounced"


def _our_mail(session: Session, bounce: Bounce) -> OutboxMail | None:
    """The mail we sent that this bounce returns: by its Message-ID (random, ours), and for the
    address the report names when it names one."""
    if not bounce.message_ids:
        return None
    for mail in session.exec(select(OutboxMail).where(col(OutboxMail.message_id).in_(bounce.message_ids))).all():
        if not bounce.recipients or mail.to_addr.lower() in bounce.recipients:
            return mail
    return None


def _text(part: email.message.Message) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
    except (LookupError, ValueError):
        content = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
    return content if isinstance(content, str) else content.decode("utf-8", "replace")


def _first_error_line(text: str) -> str:
    for line in text.splitlines():
        if STATUS.search(line) or SMTP_CODE.match(line):
            return " ".join(line.split())
    return ""
