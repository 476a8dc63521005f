"""Turn one stored raw email into its outcome: attribute it, run the pipeline, store the purchase.

`process_raw_email(raw_id)` is what the `parse_email` actor runs. It is idempotent (an email
already in a final status is left alone) and race-safe (unique keys on purchases; a loser of a
race re-reads and links to the winner's row), so a message delivered twice by the queue, or
retried after a worker was killed, never makes two purchases.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, and_, col, or_, select, update

from parsers.model import Item
from parsers.templates import Template as LearnedLayout
from purchaseshare import bounces, gmail, learning, memory, pipeline, quota
from purchaseshare.attribution import attribute, read_headers
from purchaseshare.clock import utcnow
from purchaseshare.config import Settings
from purchaseshare.db import session_scope
from purchaseshare.item_images import queue_sync
from purchaseshare.mailer import queue_reply, reply
from purchaseshare.models import Purchase, PurchaseItem, RawEmail, RawStatus, Template, User
from purchaseshare.pipeline import ParseResult

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    raw_email_id: int
    status: str
    purchase_id: int | None = None
    reason: str | None = None
    mail_ids: list[int] = field(default_factory=list)  # replies to send after the commit


def process_raw_email(raw_id: int, settings: Settings) -> Outcome:
    with session_scope(settings) as session:
        raw = _claim(session, raw_id, settings)  # the row, its bytes and its attempt: one statement
        if raw is None:  # not `received` (final), given up on, or gone: what the row says
            return _not_claimed(session, raw_id, settings)
        if raw.raw is None:
            _finish(raw, RawStatus.FAILED, "the raw email was purged before it could be parsed")
            session.commit()
            return _outcome(raw)
        # Nothing below writes before the final commit: the row is written once more, with its
        # outcome (each write of raw_email rewrites the whole row, its bytes too, on SQLite).
        with session.no_autoflush:
            return _process(session, raw, settings)


def _claim(session: Session, raw_id: int, settings: Settings) -> RawEmail | None:
    """The row, loaded by the UPDATE that counts this attempt (attempts + 1, committed before the
    parse: an email that kills its worker is counted), when it is still `received` and under the
    attempts cap. None otherwise (nothing written)."""
    claimed = session.execute(
        update(RawEmail)
        .where(col(RawEmail.id) == raw_id, col(RawEmail.status) == RawStatus.RECEIVED.value,
               col(RawEmail.attempts) < settings.max_attempts * 2)
        .values(attempts=col(RawEmail.attempts) + 1)
        .returning(RawEmail)
        .execution_options(synchronize_session=False)
    ).scalars().first()
    session.commit()
    return claimed


def _not_claimed(session: Session, raw_id: int, settings: Settings) -> Outcome:
    raw = session.get(RawEmail, raw_id)
    if raw is None:
        return Outcome(raw_id, "missing", reason="no such raw email (deleted?)")
    if not RawStatus(raw.status).is_final and raw.attempts >= settings.max_attempts * 2:
        # Only an email that kills its worker outright (no exception to count) gets here:
        # stop redelivering it forever. Concurrent duplicate deliveries add a few attempts,
        # hence the margin over max_attempts.
        _finish(raw, RawStatus.FAILED, f"gave up after {raw.attempts} attempts that never finished "
                                       "(the worker stopped while reading this email)")
        session.commit()
    return _outcome(raw)


def _process(session: Session, raw: RawEmail, settings: Settings) -> Outcome:
    raw_id = raw.id or 0
    assert raw.raw is not None
    mail_ids: list[int] = []
    headers = read_headers(raw.raw)  # once, for the bounce check and the attribution
    if bounces.looks_like_bounce(headers):
        # Never a purchase, never answered; a hard bounce of our own mail marks its address.
        note = bounces.record(session, bounces.read_bounce(raw.raw))
        _finish(raw, RawStatus.NOT_PURCHASE if raw.user_id else RawStatus.QUARANTINED, note)
        session.commit()
        return _outcome(raw)
    if raw.user_id is None:
        who = attribute(session, raw.raw, settings, raw.envelope_to, headers=headers)
        if who.user is None:
            _finish(raw, RawStatus.QUARANTINED, who.reason)
            if settings.smtp_url and raw.from_addr:
                ids, why = reply(session, raw, "unknown_sender", settings)
                mail_ids += ids
                if why:  # quarantined silently: the operator sees why nobody was answered
                    raw.reason = f"{who.reason}; no reply sent: {why}"
            session.commit()
            return _outcome(raw, mail_ids)
        # No unique key holds user_id: the row keeps its `inbox` dedup scope, so giving it an
        # owner never collides with a row that owner (or anyone) already has (mailstore).
        raw.user_id, raw.attributed_by = who.user.id, who.how
    owner = (raw.user_id, raw.attributed_by)
    over = quota.refusal(session, settings, raw.user_id, raw.size, excluding=raw.id)
    if over:  # the row stays, visible and failed; the bytes go, or the quota would bound nothing
        raw.raw, raw.raw_purged_at = None, utcnow()
        _finish(raw, RawStatus.FAILED, f"not kept: {over} (the original is still in the mailbox you sent it "
                                       "from)")
        session.commit()
        return _outcome(raw, mail_ids)
    # Read once here, so /settings/forwarding never parses a stored email on a page view.
    confirm_url = gmail.confirmation_url(raw.raw) if gmail.is_confirmation(raw.from_addr, raw.size) else None
    result = pipeline.run(raw.raw, source=f"raw_email:{raw.id}", templates=_templates(session, raw.user_id))
    learning.record(session, result.template_hits, result.template_misses)
    memory.give_back(raw.size)  # the parse is over: its garbage goes back to the system
    for attempt in range(3):  # a unique-key race with another worker: re-read and link
        try:
            raw.confirm_url = confirm_url
            applied = _apply(session, raw, result, settings)
            session.commit()
            mail_ids += applied
            break
        except IntegrityError:
            session.rollback()
            reread = session.get(RawEmail, raw_id)
            if reread is None or attempt == 2:
                raise
            raw = reread
            if RawStatus(raw.status).is_final:
                return _outcome(raw, mail_ids)  # the other worker finished this very email
            # The rollback also undid this attempt's attribution (never committed): redo it.
            raw.user_id, raw.attributed_by = owner
    return _outcome(raw, mail_ids)


_ANY_TEMPLATE = select(Template.id).where(col(Template.sender_domain) == bindparam("domain")).limit(1)


def _templates(session: Session, user_id: int | None) -> Callable[[str | None], Sequence[LearnedLayout]]:
    """learning.loader, asked only when the sender has a learned template at all: most have none,
    and one indexed lookup is cheaper than the join learning.usable runs for every email."""
    usable = learning.loader(session, user_id)

    def load(domain: str | None) -> Sequence[LearnedLayout]:
        if not domain or session.connection().execute(_ANY_TEMPLATE, {"domain": domain}).first() is None:
            return []
        return usable(domain)

    return load


def _outcome(raw: RawEmail, mail_ids: list[int] | None = None) -> Outcome:
    return Outcome(raw.id or 0, raw.status, raw.purchase_id, raw.reason, mail_ids or [])


def _finish(raw: RawEmail, status: RawStatus, reason: str | None) -> None:
    raw.status, raw.reason, raw.processed_at = status.value, reason, utcnow()


def _apply(session: Session, raw: RawEmail, result: ParseResult, settings: Settings) -> list[int]:
    raw.result_json = json.dumps(result.to_json(), ensure_ascii=False)
    if result.status == "error":
        _finish(raw, RawStatus.FAILED, f"could not read this email: {result.error}")
        return queue_reply(session, raw, "unreadable", settings)
    if result.status == "unparsed":
        _finish(raw, RawStatus.UNPARSED, result.reason)
        return queue_reply(session, raw, "unreadable", settings)
    if result.status == "purchase":
        purchase = find_purchase(session, raw.user_id, result) or _create_purchase(session, raw, result)
        raw.purchase_id = purchase.id
        same = purchase.source_raw_id != raw.id
        if same and result.personal:  # another email of the order: its personal values are secrets too
            known = json.loads(purchase.personal_terms) if purchase.personal_terms else []
            purchase.personal_terms = json.dumps(list(dict.fromkeys([*known, *result.personal])), ensure_ascii=False)
        _finish(raw, RawStatus.PARSED, f"same order as purchase #{purchase.id}, already stored" if same else None)
        return []
    if result.kind in ("refund", "cancellation"):
        purchase = find_purchase(session, raw.user_id, result, by_message_id=False)
        if purchase is not None:
            _apply_refund(purchase, result)
            raw.purchase_id = purchase.id
            _finish(raw, RawStatus.APPLIED, f"{result.kind} applied to purchase #{purchase.id}")
            return []
        _finish(raw, RawStatus.NOT_PURCHASE, f"{result.kind} for an order we have not stored")
        return []
    _finish(raw, RawStatus.NOT_PURCHASE, result.reason)
    return []


def find_purchase(session: Session, user_id: int | None, result: ParseResult,
                  by_message_id: bool = True) -> Purchase | None:
    """The same order stored before: same original Message-ID, else same merchant + order number."""
    keys = []
    if by_message_id and result.message_id:
        keys.append(Purchase.original_message_id == result.message_id)
    if result.order_number:
        keys.append(and_(Purchase.merchant_domain == result.merchant.get("domain"),
                         Purchase.order_number == result.order_number))
    if not keys or user_id is None:
        return None
    return session.exec(select(Purchase).where(Purchase.user_id == user_id, or_(*keys))).first()


def parsed_fields(result: ParseResult) -> dict:
    """The purchase's columns that come from a parse (new purchases, and re-parses)."""
    return {
        "merchant_name": result.merchant.get("name"), "merchant_domain": result.merchant.get("domain"),
        "order_number": result.order_number, "order_date": result.order_date, "currency": result.currency,
        "total": result.total, "subtotal": result.subtotal, "shipping": result.shipping, "tax": result.tax,
        "discount": result.discount, "parser": result.parser, "confidence": result.confidence,
        "personal_terms": personal_terms_json(result),
    }


def personal_terms_json(result: ParseResult) -> str | None:
    """The email's own personal values as the purchase stores them (private; redaction secrets)."""
    return json.dumps(result.personal, ensure_ascii=False) if result.personal else None


def add_items(session: Session, purchase_id: int, items: list[Item], approved: bool = False) -> None:
    """Parsed items as the purchase's rows, in the email's order."""
    approved_at = utcnow() if approved else None
    for position, item in enumerate(items):
        session.add(PurchaseItem(
            purchase_id=purchase_id, position=position, name=item.name, quantity=item.quantity,
            unit_price=item.unit_price, line_total=item.line_total, url=item.url, image=item.image,
            sku=item.sku, variant=item.variant, approved=approved, approved_at=approved_at,
        ))
    if approved and items:  # shared as it arrives (the owner's default): store its images after the commit
        queue_sync(session, purchase_id)


def _create_purchase(session: Session, raw: RawEmail, result: ParseResult) -> Purchase:
    user = session.get(User, raw.user_id)
    share = bool(user and user.default_share_items)
    purchase = Purchase(
        user_id=raw.user_id, source_raw_id=raw.id, original_message_id=result.message_id,
        kind=result.kind or "order", **parsed_fields(result),
        warnings=json.dumps(result.warnings, ensure_ascii=False) if result.warnings else None,
        published_at=utcnow() if share and result.items else None,
    )
    session.add(purchase)
    session.flush()  # the id, and the unique keys checked now rather than at commit
    add_items(session, purchase.id or 0, result.items, approved=share)
    return purchase


def _apply_refund(purchase: Purchase, result: ParseResult) -> None:
    if result.kind == "cancellation":
        purchase.status = "cancelled"
    else:
        refunded = result.total
        partial = refunded is not None and purchase.total is not None and refunded < purchase.total
        purchase.status = "partially_refunded" if partial else "refunded"
        purchase.refunded = refunded
    purchase.updated_at = utcnow()


def mark_failed(raw_id: int, error: str, settings: Settings) -> None:
    """Retries exhausted: the user sees `failed` and why, instead of the email vanishing."""
    with session_scope(settings) as session:
        raw = session.get(RawEmail, raw_id)
        if raw is None or RawStatus(raw.status).is_final:
            return
        raw.last_error = error
        _finish(raw, RawStatus.FAILED, f"could not be processed after {raw.attempts} attempts: {error}")
        session.commit()


def mark_too_costly(raw_id: int, detail: str, settings: Settings) -> None:
    """The worker's hard limit stopped this email's parse (workers.actors): failed for good, with
    the reason its owner sees. No retry: it would only be stopped again."""
    memory.give_back(memory.LARGE + 1)  # what the interrupted parse left goes back to the system
    with session_scope(settings) as session:
        raw = session.get(RawEmail, raw_id)
        if raw is None or RawStatus(raw.status).is_final:
            return  # it finished (and committed) just as the limit struck
        raw.last_error = f"{pipeline.TOO_COSTLY}: {detail}"
        _finish(raw, RawStatus.FAILED, f"could not read this email: {pipeline.TOO_COSTLY} ({detail})")
        session.commit()


def record_error(raw_id: int, error: str, settings: Settings) -> int:
    """Keep the last transient error on the row (visible while retries go on); returns attempts."""
    with session_scope(settings) as session:
        raw = session.get(RawEmail, raw_id)
        if raw is None:
            return 0
        raw.last_error = error[:2000]
        session.commit()
        return raw.attempts


def claim_stale(session: Session, settings: Settings, limit: int = 1000) -> list[int]:
    """Raw emails still `received` long after they were queued (a lost queue message, a queue
    that was down at enqueue time): mark them queued now and return them to be sent again."""
    cutoff = utcnow() - timedelta(seconds=settings.requeue_after_seconds)
    ids = list(session.exec(select(RawEmail.id).where(  # ids only: this runs every few seconds
        RawEmail.status == RawStatus.RECEIVED.value,
        or_(RawEmail.queued_at.is_(None), RawEmail.queued_at < cutoff),  # type: ignore[union-attr]
    ).order_by(RawEmail.id).limit(limit)).all())
    if ids:
        session.exec(update(RawEmail).where(col(RawEmail.id).in_(ids)).values(queued_at=utcnow()))  # type: ignore[call-overload]
    session.commit()
    return [raw_id for raw_id in ids if raw_id is not None]


def purge_expired_raw(session: Session, settings: Settings) -> int:
    """Retention: drop raw bytes N days after a successful parse; the purchase stays."""
    done = (RawStatus.PARSED.value, RawStatus.APPLIED.value, RawStatus.NOT_PURCHASE.value)
    rows = session.exec(
        select(RawEmail.id, RawEmail.processed_at, User.raw_retention_days)
        .join(User, RawEmail.user_id == User.id)
        .where(RawEmail.status.in_(done), RawEmail.raw_purged_at.is_(None))  # type: ignore[attr-defined,union-attr]
    ).all()
    now = utcnow()
    expired = []
    for raw_id, processed_at, user_days in rows:
        days = user_days if user_days is not None else settings.raw_retention_days
        if days is not None and processed_at is not None and _aware(processed_at) <= now - timedelta(days=days):
            expired.append(raw_id)
    if expired:  # one UPDATE: loading the rows would read the very bytes being dropped
        session.exec(update(RawEmail).where(col(RawEmail.id).in_(expired)).values(raw=None, raw_purged_at=now))  # type: ignore[call-overload]
    session.commit()
    return len(expired)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
