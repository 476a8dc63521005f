"""Gmail's forwarding confirmation: when a user adds their plus-address as a forwarding address,
Google mails it a code (in the Subject) and a link (in the body). The worker reads the link once,
when it processes that email (`confirmation_url`); /settings/forwarding only shows what was stored.
"""

from __future__ import annotations

import re
from email import policy
from email.parser import BytesParser

SENDER = "forwarding-noreply@google.com"
MAX_SIZE = 1024 * 1024  # Google's confirmations are a few kB: anything bigger is not one
CODE = re.compile(r"\(#(\d{5,12})\)")
_LINK = re.compile(r"https://mail(?:-settings)?\.google\.com/mail/[^\s<>\"']+")


def is_confirmation(from_addr: str | None, size: int) -> bool:
    return (from_addr or "").lower() == SENDER and size <= MAX_SIZE


def confirmation_url(raw: bytes) -> str | None:
    """Google's confirmation link in the body, or None (a malformed part: the code alone is shown)."""
    if len(raw) > MAX_SIZE:
        return None
    try:
        body = BytesParser(policy=policy.default).parsebytes(raw).get_body(preferencelist=("plain", "html"))
        found = _LINK.search(body.get_content() if body is not None else "")
    except (LookupError, ValueError, AttributeError):
        return None
    return found.group(0)[:500] if found else None
