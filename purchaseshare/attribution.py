"""Whose email is it? Decided from the OUTER headers (the forward as it reached our inbox).

1. Sent to the user's secret plus-address (inbox+TOKEN@domain) in To/Cc/Delivered-To/
   X-Original-To or the envelope recipient: that user. Works for auto-forwarding rules too,
   which keep the merchant's From.
2. From one of a user's VERIFIED sender addresses. With `require_sender_auth` on, the receiving
   server's Authentication-Results (only those stamped with our authserv-id; anyone can write
   the header, only our MX stamps that id) must show dkim, spf or dmarc passing for the From
   domain, so a spoofed From is not enough.
Anything else is quarantined with the reason.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import logging
from dataclasses import dataclass
from email.utils import getaddresses, parseaddr

import authres
from sqlmodel import Session, select

from purchaseshare.config import Settings
from purchaseshare.models import SenderAddress, User

log = logging.getLogger(__name__)

RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Forwarded-To", "To", "Cc")


@dataclass
class Attribution:
    user: User | None
    how: str | None  # token | sender
    reason: str | None = None  # why nobody was found (shown to operators)


def read_headers(raw: bytes) -> email.message.Message:
    """Header fields only: cheap, and never the body (that is the pipeline's one MIME parse)."""
    # Cut at the blank line: the header parser would still split the body into lines (~1 ms/64 KB).
    ends = [i for i in (raw.find(b"\n\n"), raw.find(b"\n\r\n")) if i >= 0]
    return email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw[:min(ends) + 1] if ends else raw)


def attribute(session: Session, raw: bytes, settings: Settings, envelope_to: str | None = None,
              headers: email.message.Message | None = None) -> Attribution:
    """`headers`: read_headers(raw) when the caller has it already."""
    headers = read_headers(raw) if headers is None else headers
    token_user = _by_token(session, headers, settings, envelope_to)
    if token_user is not None:
        return Attribution(token_user, "token")
    sender = parseaddr(str(headers.get("From", "")))[1].strip().lower()
    if not sender:
        return Attribution(None, None, "no sender address and no forwarding token")
    address = session.exec(select(SenderAddress).where(SenderAddress.address == sender)).first()
    if address is None or address.verified_at is None:
        what = "an unverified" if address is not None else "an unknown"
        return Attribution(None, None, f"sent from {what} address ({sender}) without a forwarding token")
    if settings.require_sender_auth and not sender_authenticated(headers, sender, settings.authserv_id):
        return Attribution(None, None, f"sender {sender} is verified but this mail did not pass "
                                       f"DKIM/SPF/DMARC at our server ({settings.authserv_id or 'no authserv-id set'})")
    return Attribution(session.get(User, address.user_id), "sender")


def _by_token(session: Session, headers: email.message.Message, settings: Settings,
              envelope_to: str | None) -> User | None:
    values = [str(v) for name in RECIPIENT_HEADERS for v in headers.get_all(name, [])]
    if envelope_to:
        values.append(envelope_to)
    for _name, address in getaddresses(values):
        token = plus_token(address, settings)
        if token:
            user = session.exec(select(User).where(User.forwarding_token == token)).first()
            if user is not None:
                return user
    return None


def plus_token(address: str, settings: Settings) -> str | None:
    local, _, domain = address.strip().lower().rpartition("@")
    if domain != settings.inbox_domain or "+" not in local:
        return None
    base, _, token = local.partition("+")
    return token if base == settings.inbox_local and token else None


def sender_authenticated(headers: email.message.Message, sender: str, authserv_id: str | None) -> bool:
    """True when an Authentication-Results header from OUR server shows a pass for the From domain."""
    if not authserv_id:
        return False
    domain = sender.rpartition("@")[2]
    for value in headers.get_all("Authentication-Results", []):
        try:
            parsed = authres.AuthenticationResultsHeader.parse_value(" ".join(str(value).split()))
        except Exception:  # a malformed header from anyone: ignore it, it proves nothing
            log.debug("unreadable Authentication-Results: %r", value)
            continue
        if str(parsed.authserv_id).lower() != authserv_id.lower():
            continue
        for result in parsed.results:
            if str(result.result).lower() == "pass" and _aligned(result, domain):
                return True
    return False


def _aligned(result, domain: str) -> bool:
    """The passing identity is the From domain (or its parent, relaxed alignment)."""
    wanted = {"dkim": ("header", "d"), "spf": ("smtp", "mailfrom"), "dmarc": ("header", "from")}
    key = wanted.get(str(result.method).lower())
    if key is None:
        return False
    for prop in result.properties:
        if (prop.type, prop.name) == key:
            value = str(prop.value).lower().rpartition("@")[2]
            if domain == value or domain.endswith("." + value):
                return True
    return False
