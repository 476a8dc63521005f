"""Outgoing mail. Every message is first a row in `outbox_mail` (committed with whatever caused
it); with SMTP_URL set the `send_mail` actor delivers it (`deliver_outbox`), otherwise it stays in
the outbox for the operator (and the demo) to read. Bodies are jinja2 templates in
purchaseshare/templates/mail.

Delivery is AT MOST ONCE. A row goes queued -> sending -> sent | failed | uncertain:
- MAIL FROM and RCPT TO are asked first; a 4xx there (or a lost connection) leaves the row
  `queued` and the actor retries with backoff; a 5xx makes it `failed` with the server's answer.
- Just before DATA the row is claimed `sending` (with the Message-ID) in its own commit. The
  server's answer to the data is then recorded (`smtp_reply`): `sent`, `queued` again on 4xx,
  `failed` on 5xx.
- A worker that dies between the server's acceptance and that last commit leaves the row
  `sending`. Nothing sends a `sending` row again: the next try marks it `uncertain` and says why.
  The trade-off: a crash in that window may lose one mail (the user asks for a new link), but
  never sends one twice - a second "who are you?" or reset mail is the kind of noise this avoids.
Automatic replies go with an EMPTY envelope sender (MAIL FROM:<>) and Auto-Submitted:
auto-replied (RFC 3834); our other mail with the inbox address as envelope sender, so its bounces
come back to the inbox (purchaseshare.bounces) and name the Message-ID recorded here.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import jinja2
from sqlmodel import Session, col, select, update

from purchaseshare import autoreply
from purchaseshare.attribution import read_headers
from purchaseshare.clock import utcnow
from purchaseshare.config import Settings
from purchaseshare.db import session_scope
from purchaseshare.models import OutboxMail, RawEmail, User

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("templates") / "mail"
MAX_SEND_ATTEMPTS = 10  # 4xx answers before a mail is given up (the actor's backoff spaces them out)
QUEUED, SENDING, SENT, FAILED, UNCERTAIN, BOUNCED = "queued", "sending", "sent", "failed", "uncertain", "bounced"


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
    return reply(session, raw, template, settings)[0]


def reply(session: Session, raw: RawEmail, template: str, settings: Settings) -> tuple[list[int], str | None]:
    """`queue_reply`, and why no reply was queued. When it would go to the email's From, RFC 3834
    decides first (purchaseshare.autoreply): no reply to robots, lists, ourselves or a forged
    unknown sender, and one per address per day."""
    user = session.get(User, raw.user_id) if raw.user_id else None
    # A token-attributed mail may be an auto-forward still carrying the merchant's From: reply
    # to the account instead. An unknown sender gets the reply at its From.
    to_sender = user is None or raw.attributed_by == "sender"
    to = raw.from_addr if to_sender else user.email if user else None
    if not to or raw.raw is None:
        return [], "no address to reply to"
    if to_sender:
        why = autoreply.refusal(read_headers(raw.raw), settings, require_auth=user is None)
        if why is None and not autoreply.take_daily_slot(session, to):
            why = f"{to.lower()} had an automatic reply from us in the last 24 hours"
        if why:
            log.info("raw email %s: no automatic reply: %s", raw.id, why)
            return [], why
    mail = queue_mail(session, to=to, template=template, user_id=user.id if user else None,
                      purpose=f"reply-{template}", dedupe_key=f"reply:{raw.id}", subject=raw.subject or "",
                      reason=raw.reason or "", user=user, inbox=settings.inbox_address,
                      forwarding_address=settings.forwarding_address(user.forwarding_token) if user else None)
    if mail is None or mail.id is None:
        return [], "already replied to this email"
    mail.in_reply_to = raw.message_id
    raw.replied_at = utcnow()
    return [mail.id], None


def is_auto_reply(mail: OutboxMail) -> bool:
    return mail.purpose.startswith("reply-")


def build_message(mail: OutboxMail, settings: Settings) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.inbox_address
    message["To"] = mail.to_addr
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = mail.message_id or make_msgid(domain=settings.inbox_domain)
    # RFC 3834: a reply to a message says so; our other mail is still automatic, never a person.
    message["Auto-Submitted"] = "auto-replied" if is_auto_reply(mail) else "auto-generated"
    if mail.in_reply_to:
        message["In-Reply-To"] = mail.in_reply_to
        message["References"] = mail.in_reply_to
    message.set_content(mail.body)
    return message


def envelope_sender(mail: OutboxMail, settings: Settings) -> str:
    """Empty for automatic replies (nothing may answer or bounce back to them), else the inbox."""
    return "" if is_auto_reply(mail) else settings.inbox_address


def deliver_outbox(mail_id: int, settings: Settings) -> str:
    """Try to deliver one outbox row; returns its state afterwards. "queued" means try again later
    (a 4xx or a connection problem: the actor raises so that dramatiq retries with backoff)."""
    if not settings.smtp_url:
        # Nothing to retry: without a server the mail stays in the outbox, where operators read it.
        log.info("SMTP_URL is not set: outbox mail %s stays in the outbox", mail_id)
        return "unsent"
    with session_scope(settings) as session:
        mail = session.get(OutboxMail, mail_id)
        if mail is None:
            return "missing"
        if mail.state == SENDING:
            # A worker handed it to the server and stopped before recording the answer (or is
            # still on it). The server may have it: at most once, so it is not sent again.
            mail.state = UNCERTAIN
            mail.error = (f"not sent again: a worker stopped after handing this mail (Message-ID {mail.message_id}) "
                          f"to the SMTP server at {mail.sending_at} and before recording its answer; "
                          "the server may or may not have accepted it")
            session.commit()
            return UNCERTAIN
        if mail.state != QUEUED:
            return mail.state
        mail.attempts += 1
        if not mail.message_id:
            mail.message_id = make_msgid(domain=settings.inbox_domain)
        session.commit()
        message = build_message(mail, settings)
        stage = "connect"
        try:
            with _connect(settings) as smtp:
                stage = "MAIL FROM"
                code, answer = smtp.mail(envelope_sender(mail, settings))
                if code != 250:
                    return _refused(session, mail, stage, code, answer)
                stage = "RCPT TO"
                code, answer = smtp.rcpt(mail.to_addr)
                if code not in (250, 251):
                    return _refused(session, mail, stage, code, answer)
                if not _claim(session, mail):
                    smtp.rset()
                    return SENDING  # another worker claimed it between our reads
                stage = "DATA"
                try:
                    # CRLF line ends: smtplib sends bytes as they are, and SMTP lines end in CRLF.
                    code, answer = smtp.data(message.as_bytes(policy=message.policy.clone(linesep="\r\n")))
                except smtplib.SMTPDataError as exc:  # refused at DATA itself, before the content went
                    code, answer = exc.smtp_code, exc.smtp_error
                if code != 250:
                    return _refused(session, mail, stage, code, answer)
                mail.state, mail.sent_at, mail.error = SENT, utcnow(), None
                mail.smtp_reply = _answer(code, answer)
                session.commit()
                return SENT
        except (OSError, smtplib.SMTPException) as exc:
            session.rollback()
            session.refresh(mail)
            if mail.state == SENDING:  # lost while the data went: the server may have it
                mail.state = UNCERTAIN
                mail.error = f"not sent again: the connection failed during DATA ({type(exc).__name__}: {exc})"
            else:
                _retry_or_give_up(mail, f"{stage}: {type(exc).__name__}: {exc}")
            session.commit()
            return mail.state


def _connect(settings: Settings) -> smtplib.SMTP:
    """SMTP_URL: smtp://, smtps:// or smtp+starttls://user:pass@host:port; EHLO done, logged in."""
    url = urlsplit(settings.smtp_url or "")
    port = url.port or (465 if url.scheme == "smtps" else 25)
    smtp_class = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
    smtp = smtp_class(url.hostname or "localhost", port, timeout=30)
    try:
        smtp.ehlo_or_helo_if_needed()
        if url.scheme == "smtp+starttls":
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if url.username:
            smtp.login(unquote(url.username), unquote(url.password or ""))
    except BaseException:
        smtp.close()
        raise
    return smtp


def _claim(session: Session, mail: OutboxMail) -> bool:
    """queued -> sending, in its own commit, just before DATA (one worker only wins it)."""
    claimed = session.exec(update(OutboxMail).where(col(OutboxMail.id) == mail.id, col(OutboxMail.state) == QUEUED)
                           .values(state=SENDING, sending_at=utcnow(), message_id=mail.message_id))  # type: ignore[call-overload]
    session.commit()
    session.refresh(mail)
    return claimed.rowcount == 1


def _refused(session: Session, mail: OutboxMail, stage: str, code: int, answer: bytes | str) -> str:
    reply = _answer(code, answer)
    mail.smtp_reply = reply
    if 400 <= code < 500:
        mail.state = QUEUED  # also after a 4xx to the data itself: the server said it did not take it
        _retry_or_give_up(mail, f"{stage} answered {reply}")
    else:
        mail.state, mail.error = FAILED, f"refused at {stage}: {reply}"
    session.commit()
    return mail.state


def _retry_or_give_up(mail: OutboxMail, why: str) -> None:
    if mail.attempts >= MAX_SEND_ATTEMPTS:
        mail.state, mail.error = FAILED, f"gave up after {mail.attempts} attempts; last: {why}"
    else:
        mail.state, mail.error = QUEUED, f"will retry (attempt {mail.attempts} of {MAX_SEND_ATTEMPTS}): {why}"


def _answer(code: int, answer: bytes | str) -> str:
    text = answer.decode("utf-8", "replace") if isinstance(answer, bytes) else str(answer)
    return f"{code} {' '.join(text.split())}"[:2000]
