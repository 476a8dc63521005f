"""Building the emails the outgoing-mail tests receive: random names and domains, a small receipt
or note as the body, and the header fields that decide whether we may answer."""

from __future__ import annotations

import random
import secrets
from email.message import EmailMessage
from email.utils import make_msgid

from purchaseshare.mailer import deliver_outbox
from purchaseshare.mailstore import store_raw
from purchaseshare.processing import Outcome, process_raw_email

AUTHSERV = "mx.purchaseshare.test"  # the conftest's PURCHASESHARE_AUTHSERV_ID
WORDS = ["kettle", "lamp", "notebook", "scarf", "teapot", "blanket", "mug", "pencil case"]


def random_domain() -> str:
    return f"{secrets.token_hex(3)}-{random.choice(['shop', 'mail', 'home', 'post'])}.example"


def random_sender() -> str:
    return f"{random.choice(['ana', 'bo', 'chen', 'dara', 'eli'])}.{secrets.token_hex(2)}@{random_domain()}"


def passing(sender: str, method: str = "dmarc", authserv: str = AUTHSERV) -> str:
    """An Authentication-Results value showing `method` passing, aligned with the sender's domain."""
    domain = sender.rpartition("@")[2]
    what = {"dmarc": f"dmarc=pass header.from={domain}",
            "dkim": f"dkim=pass header.d={domain}",
            "spf": f"spf=pass smtp.mailfrom=bounces@{domain}"}[method]
    return f"{authserv}; {what}"


def note(sender: str, to: str, *, headers: dict[str, str] | None = None, subject: str | None = None) -> bytes:
    """A short email from `sender`: "here is my order of a <thing> for <price>"."""
    thing = random.choice(WORDS)
    message = EmailMessage()
    message["From"] = f"{sender.split('@')[0].title()} <{sender}>"
    message["To"] = to
    message["Subject"] = subject or f"My {thing} order"
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(f"Hello,\n\nI bought a {thing} for {random.randint(3, 90)}.{random.randint(10, 99)} EUR.\n")
    return message.as_bytes()


def ingest(settings, raw: bytes) -> Outcome:
    """Into the inbox as the IMAP door stores it (nobody known yet), then processed."""
    from purchaseshare.db import session_scope

    with session_scope(settings) as session:
        stored = store_raw(session, raw, source="test")
    return process_raw_email(stored.raw_email.id, settings)


def deliver(settings, mail_ids: list[int]) -> list[str]:
    return [deliver_outbox(mail_id, settings) for mail_id in mail_ids]
