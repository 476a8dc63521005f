"""May we answer this email automatically? (RFC 3834, and no backscatter.)

A "who are you?" reply goes to a From address nobody checked. From is anyone's to write, so an
answer to a forged From is mail to a stranger (backscatter), which gets our address and IP
blocklisted, after which verification and reset mail stop arriving. So:
- an unknown sender is answered only when OUR MX authenticated that From (DMARC pass, or SPF/DKIM
  pass aligned with the From domain, in Authentication-Results stamped with our authserv-id);
- no automatic reply ever goes to automatic mail (Auto-Submitted other than "no"), bulk or list
  mail (Precedence, List-Id, List-Unsubscribe), a null envelope sender, MAILER-DAEMON/postmaster,
  no-reply addresses, or ourselves;
- one automatic reply per address per 24 hours at most, counted in the database (ratelimit.take:
  serialized per key, so two workers cannot both send one).
The replies themselves go out with an empty envelope sender and Auto-Submitted: auto-replied
(purchaseshare.mailer), so nothing answers them back.
"""

from __future__ import annotations

import email.message
from datetime import timedelta
from email.utils import parseaddr

from sqlmodel import Session

from purchaseshare import ratelimit
from purchaseshare.attribution import sender_authenticated
from purchaseshare.config import Settings

PER_DAY: list[ratelimit.Rule] = [(1, timedelta(days=1))]
ROBOT_LOCALS = {"mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply", "do-not-reply", "bounce",
                "bounces"}
BULK = {"bulk", "list", "junk"}


def refusal(headers: email.message.Message, settings: Settings, *, require_auth: bool) -> str | None:
    """Why this email must get no automatic reply at its From; None when it may get one.
    `require_auth`: the sender is unknown, so its From must be authenticated at our MX."""
    auto = _value(headers, "Auto-Submitted").split(";")[0].strip().lower()
    if auto and auto != "no":
        return f"it is automatic mail (Auto-Submitted: {auto})"
    precedence = _value(headers, "Precedence").lower()
    if precedence in BULK:
        return f"it is {precedence} mail (Precedence: {precedence})"
    for name in ("List-Id", "List-Unsubscribe"):
        if headers.get(name) is not None:
            return f"it came from a mailing list ({name})"
    suppress = _value(headers, "X-Auto-Response-Suppress").lower()
    if "all" in suppress or "autoreply" in suppress:  # Exchange's own opt-out of automatic answers
        return f"it asks for no automatic answer (X-Auto-Response-Suppress: {suppress})"
    if _value(headers, "Return-Path").replace(" ", "") == "<>":
        return "its envelope sender is empty (a bounce or another automatic message)"
    sender = parseaddr(_value(headers, "From"))[1].strip().lower()
    if "@" not in sender:
        return "it has no sender address"
    local, _, domain = sender.rpartition("@")
    if local in ROBOT_LOCALS:
        return f"it came from a robot address ({sender})"
    if domain == settings.inbox_domain and local.partition("+")[0] == settings.inbox_local:
        return "it came from our own address"
    if require_auth and not sender_authenticated(headers, sender, settings.authserv_id):
        return (f"its From ({sender}) was not authenticated by our server: no DMARC pass, nor SPF/DKIM pass "
                f"aligned with {domain}, in Authentication-Results from {settings.authserv_id or '(no authserv-id set)'}"
                " - a forged From would make our reply backscatter")
    return None


def take_daily_slot(session: Session, address: str) -> bool:
    """Record an automatic reply to `address` unless it had one in the last 24 hours (the caller
    commits it with the reply itself, so a rollback gives the slot back)."""
    return ratelimit.take(session, {f"auto-reply:to:{address.strip().lower()}": PER_DAY})


def _value(headers: email.message.Message, name: str) -> str:
    return " ".join(str(headers.get(name, "") or "").split())
