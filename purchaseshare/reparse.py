"""Run a stored email through the pipeline again after a parser changed.

An email that gave no purchase (unparsed, failed, not a purchase, quarantined) simply goes
back to `received` and through `process_raw_email` again. A purchase the email created is
refreshed from the new result only while its owner has not touched it (still in the inbox,
nothing approved): the owner's approvals, captions and corrections always win. Either way the
parse has the worker's per-email time limit (purchaseshare.limits.time_limit).
"""

from __future__ import annotations

import json

from sqlmodel import select

from purchaseshare import learning, limits, memory, pipeline
from purchaseshare.clock import utcnow
from purchaseshare.config import Settings
from purchaseshare.db import session_scope
from purchaseshare.models import Purchase, PurchaseItem, RawEmail, RawStatus
from purchaseshare.processing import (
    Outcome,
    add_items,
    mark_too_costly,
    parsed_fields,
    personal_terms_json,
    process_raw_email,
)


def reparse_raw_email(raw_id: int, settings: Settings) -> Outcome:
    """Parse a stored email again, within the per-email time limit the worker gives a first
    parse (PURCHASESHARE_PARSE_TIME_LIMIT_MS): past it the email ends as its first parse would
    (failed, "too large/complex to read"), or, when it made a purchase, keeps that purchase."""
    milliseconds = limits.parse_time_limit_ms()
    try:
        with limits.time_limit(milliseconds):
            return _reparse(raw_id, settings)
    except limits.TimeUp:
        return _stopped(raw_id, f"stopped after {milliseconds / 1000:g} s", settings)


def _stopped(raw_id: int, detail: str, settings: Settings) -> Outcome:
    """The time limit stopped the reparse: an email that had a final status (a purchase) keeps its result."""
    mark_too_costly(raw_id, detail, settings)  # failed for good, unless the email is final
    with session_scope(settings) as session:
        raw = session.get(RawEmail, raw_id)
        if raw is None:
            return Outcome(raw_id, "missing", reason="no such raw email (deleted?)")
        if raw.status != RawStatus.FAILED.value:
            kept = "the stored purchase was kept" if raw.purchase_id else "the earlier result was kept"
            raw.reason = f"parsed again: {pipeline.TOO_COSTLY} ({detail}); {kept}"
            raw.processed_at = utcnow()
            session.commit()
        return Outcome(raw_id, raw.status, raw.purchase_id, raw.reason)


def _reparse(raw_id: int, settings: Settings) -> Outcome:
    with session_scope(settings) as session:
        raw = session.get(RawEmail, raw_id)
        if raw is None:
            return Outcome(raw_id, "missing", reason="no such raw email (deleted?)")
        if raw.raw is None:
            return Outcome(raw_id, raw.status, raw.purchase_id, "raw bytes purged: kept the stored result")
        purchase = session.get(Purchase, raw.purchase_id) if raw.purchase_id else None
        if purchase is None or purchase.source_raw_id != raw.id:
            if raw.status in (RawStatus.PARSED.value, RawStatus.APPLIED.value):
                return Outcome(raw_id, raw.status, raw.purchase_id)  # linked to another email's purchase
            # No purchase came out of it last time (quarantined ones have no user yet and are
            # attributed again: the sender may have verified the address since).
            raw.status, raw.reason, raw.attempts = RawStatus.RECEIVED.value, None, 0
            session.commit()
            return process_raw_email(raw_id, settings)
        result = pipeline.run(raw.raw, source=f"raw_email:{raw.id}", templates=learning.loader(session, raw.user_id))
        learning.record(session, result.template_hits, result.template_misses)
        memory.give_back(raw.size)  # the parse is over: its garbage goes back to the system
        raw.result_json = json.dumps(result.to_json(), ensure_ascii=False)
        items = session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == purchase.id)).all()
        untouched = purchase.review == "new" and not any(item.approved for item in items)
        if result.status == "purchase" and untouched:
            for name, value in parsed_fields(result).items():
                setattr(purchase, name, value)
            for item in items:
                session.delete(item)
            add_items(session, purchase.id or 0, result.items)
            purchase.updated_at = utcnow()
            raw.reason = None
        elif result.status == "purchase":
            # The owner's edits stay, but the redaction secrets follow the parser (never public).
            purchase.personal_terms = personal_terms_json(result)
            raw.reason = "parsed again; the purchase was kept as its owner reviewed it"
        elif result.status == "error":  # too large/complex to read (the memory limit), or another error
            raw.reason = f"parsed again: {result.error}; the stored purchase was kept"
        else:
            raw.reason = f"parsed again as {result.status}; the stored purchase was kept"
        raw.processed_at = utcnow()
        session.commit()
        return Outcome(raw_id, raw.status, raw.purchase_id, raw.reason)


def select_for_reparse(session, merchant: str | None) -> list[int]:
    """Stored emails to parse again: all, or those a merchant's parser read or whose sender is
    one of its domains, plus every email nothing could read yet (a new parser may read it)."""
    rows = session.exec(select(RawEmail.id, RawEmail.status, RawEmail.from_addr, RawEmail.result_json)
                        .where(RawEmail.raw_purged_at.is_(None)).order_by(RawEmail.id)).all()
    if merchant is None:
        return [row[0] for row in rows]
    from parsers.registry import BY_SLUG

    domains = set(BY_SLUG[merchant].domains)
    chosen = []
    for raw_id, status, from_addr, result_json in rows:
        result = json.loads(result_json) if result_json else {}
        domain = (result.get("merchant") or {}).get("domain") or (from_addr or "").rpartition("@")[2]
        if (result.get("parser") == f"merchant:{merchant}" or domain in domains
                or status in (RawStatus.UNPARSED.value, RawStatus.FAILED.value)):
            chosen.append(raw_id)
    return chosen
