"""Outgoing mail. Every message is first a row in `outbox_mail` (committed with whatever caused
it); with SMTP_URL set the `send_mail` actor delivers it, otherwise it stays in the outbox for
the operator (and the demo) to read. Bodies are jinja2 templates in purchaseshare/templates/mail.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import jinja2
from sqlmodel import Session, select

from purchaseshare.clock import utcnow
from purchaseshare.config import Settings
from purchaseshare.models import OutboxMail, RawEmail, User

TEMPLATES = Path(__file__).with_name("templates") / "mail"


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    # Plain-text mail: no HTML escaping, but undefined variables are errors, not blanks.
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=False,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render(template: str, **context: object) -> tuple[str, str]:
    """(subject, body): the template's first line is `Subject: ...`."""
    text = _environment().get_template(f"{template}.txt").render(**context)
    first, _, body = text.partition("\n")
    return first.removeprefix("Subject:").strip(), body.lstrip("\n")


def queue_mail(session: Session, *, to: str, template: str, user_id: int | None, purpose: str,
               dedupe_key: str | None = None, **context: object) -> OutboxMail | None:
    """Add a mail to the outbox in the caller's transaction; None if this dedupe_key was queued."""
    if dedupe_key and session.exec(select(OutboxMail).where(OutboxMail.dedupe_key == dedupe_key)).first():
        return None
    subject, body = render(template, **context)
    mail = OutboxMail(user_id=user_id, to_addr=to, subject=subject, body=body, purpose=purpose,
                      dedupe_key=dedupe_key)
    session.add(mail)
    session.flush()
    return mail


def queue_reply(session: Session, raw: RawEmail, template: str, settings: Settings) -> list[int]:
    """A reply about a received email ("we could not read this receipt", "who are you?")."""
    user = session.get(User, raw.user_id) if raw.user_id else None
    # A token-attributed mail may be an auto-forward still carrying the merchant's From: reply
    # to the account instead. An unknown sender gets the reply at its From.
    to = raw.from_addr if (user is None or raw.attributed_by == "sender") else user.email
    if not to:
        return []
    mail = queue_mail(session, to=to, template=template, user_id=user.id if user else None,
                      purpose=f"reply-{template}", dedupe_key=f"reply:{raw.id}", subject=raw.subject or "",
                      reason=raw.reason or "", user=user, inbox=settings.inbox_address,
                      forwarding_address=settings.forwarding_address(user.forwarding_token) if user else None)
    if mail is None or mail.id is None:
        return []
    raw.replied_at = utcnow()
    return [mail.id]


def deliver(mail: OutboxMail, settings: Settings) -> None:
    """Send one outbox mail over SMTP_URL (smtp://, smtps:// or smtp+starttls://user:pass@host:port)."""
    if not settings.smtp_url:
        raise RuntimeError("SMTP_URL is not set: the mail stays in the outbox")
    url = urlsplit(settings.smtp_url)
    message = EmailMessage()
    message["From"] = settings.inbox_address
    message["To"] = mail.to_addr
    message["Subject"] = mail.subject
    message["Message-ID"] = make_msgid(domain=settings.inbox_domain)
    message["Auto-Submitted"] = "auto-replied"  # RFC 3834: no auto-reply loops
    message.set_content(mail.body)
    port = url.port or (465 if url.scheme == "smtps" else 25)
    smtp_class = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
    with smtp_class(url.hostname or "localhost", port, timeout=30) as smtp:
        if url.scheme == "smtp+starttls":
            smtp.starttls(context=ssl.create_default_context())
        if url.username:
            smtp.login(unquote(url.username), unquote(url.password or ""))
        smtp.send_message(message)
