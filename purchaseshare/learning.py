"""Templates learned from owners' corrections (issue 14): teach one, find the ones a user's mail
may be read with, count what they read and retire the ones that keep missing.

Whose template: a template reads its teachers' mail only; once two different users' corrections
agree on it (same layout signature, same anchors), it reads everyone's. A template holds
labels and offsets, never a value of the email it was learned from (parsers/templates.py), so
reading another user's mail with it shows them nothing of the teacher's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import func
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from parsers.message import Email
from parsers.model import Item
from parsers.normalize import registrable_domain
from parsers.signature import same_template
from parsers.templates import Correction, learn
from parsers.templates import Template as LearnedLayout
from parsers.unwrap import unwrap
from purchaseshare.clock import utcnow
from purchaseshare.models import Purchase, PurchaseItem, RawEmail, RawStatus, Template, TemplateTeacher

SHARED_AT = 2  # teachers whose corrections agree: from then on it reads everyone's mail
RETIRE_AFTER = 3  # misses, when they outnumber the hits
CATCH_UP_BELOW = 0.6  # a reading less sure than this is read again once its sender is taught
CATCH_UP_LIMIT = 500  # of the owner's most recent emails
LEARNING_LAYERS = ("generic", "schema_org", "learned:", "taught")  # readings a correction can teach from


@dataclass
class Lesson:
    template_id: int | None
    unplaced: list[str]  # corrected fields not found in the email
    caught_up: list[int] = field(default_factory=list)  # the owner's emails to read again


def _layout(row: Template) -> LearnedLayout:
    layout = LearnedLayout.from_json(row.sender_domain, row.signature, row.anchors)
    layout.id = row.id
    return layout


def usable(session: Session, user_id: int | None, sender_domain: str | None) -> list[LearnedLayout]:
    """The templates that may read this user's mail from that sender: their own, and shared ones."""
    if not sender_domain:
        return []
    teachers = (select(TemplateTeacher.template_id, func.count().label("n"))
                .group_by(col(TemplateTeacher.template_id)).subquery())
    mine = select(TemplateTeacher.template_id).where(TemplateTeacher.user_id == user_id)
    rows = session.exec(
        select(Template).join(teachers, teachers.c.template_id == Template.id)
        .where(Template.sender_domain == sender_domain, Template.retired == False,  # noqa: E712
               (teachers.c.n >= SHARED_AT) | col(Template.id).in_(mine))
        .order_by(col(Template.hits).desc())
    ).all()
    return [_layout(row) for row in rows]


def loader(session: Session, user_id: int | None) -> Callable[[str | None], Sequence[LearnedLayout]]:
    """What pipeline.run(templates=...) calls with the email's sender domain, once it knows it."""
    return lambda domain: usable(session, user_id, domain)


def record(session: Session, hits: Sequence[LearnedLayout], misses: Sequence[LearnedLayout]) -> None:
    """Count what the templates read; one that keeps missing retires (its sender changed layout)."""
    for layout, hit in [*((h, True) for h in hits), *((m, False) for m in misses)]:
        row = session.get(Template, layout.id) if layout.id is not None else None
        if row is None:
            continue
        if hit:
            row.hits += 1
        else:
            row.misses += 1
            row.retired = row.misses >= RETIRE_AFTER and row.misses > row.hits
        row.updated_at = utcnow()


def correction_of(purchase: Purchase, items: Sequence[PurchaseItem]) -> Correction:
    """What the owner stands behind: the total, discount and items they can edit, and the read
    breakdown (subtotal, shipping, tax: not on the form) only while it adds up with them;
    otherwise the template finds the breakdown itself (parsers.templates._learn_charges)."""
    taught = [Item(name=i.name, quantity=i.quantity, unit_price=i.unit_price, line_total=i.line_total) for i in items]
    correction = Correction(total=purchase.total, discount=purchase.discount, items=taught)
    prices = [i.line_total for i in taught]
    if purchase.total is None or not prices or any(p is None for p in prices):
        return correction
    items_sum = sum(prices, Decimal(0))  # type: ignore[arg-type]
    base = purchase.subtotal if purchase.subtotal is not None else items_sum
    extras = (purchase.shipping or 0) + (purchase.tax or 0) - (purchase.discount or 0)
    if base == items_sum and base + extras == purchase.total:
        correction.subtotal, correction.shipping, correction.tax = purchase.subtotal, purchase.shipping, purchase.tax
    return correction


def teach(session: Session, user_id: int, purchase: Purchase, mail: Email | None = None) -> Lesson | None:
    """Learn the layout of the purchase's email from what its owner saved. None when there is
    nothing to learn from (typed by hand, a merchant parser's reading, raw bytes purged).
    `mail`: that email, when the caller has read it already (the Teach page)."""
    if purchase.source_raw_id is None or not (purchase.parser or "").startswith(LEARNING_LAYERS):
        return None
    raw = session.get(RawEmail, purchase.source_raw_id)
    if raw is None or raw.raw is None or raw.user_id != user_id:
        return None
    mail = mail if mail is not None else unwrap(raw.raw)
    domain = mail.sender_domain
    if not domain:
        return Lesson(None, ["sender"])
    items = session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == purchase.id)
                         .order_by(col(PurchaseItem.position), col(PurchaseItem.id))).all()
    learned = learn(mail, correction_of(purchase, items), domain)
    if learned.template is None:
        return Lesson(None, learned.unplaced)
    row = _store(session, user_id, learned.template)
    session.commit()
    return Lesson(row.id, learned.unplaced, catch_up(session, user_id, domain, exclude=raw.id))


def _store(session: Session, user_id: int, layout: LearnedLayout) -> Template:
    """Agree with an identical template of the same layout, re-teach the user's own, or add one."""
    anchors = layout.anchors_json()
    rows = session.exec(select(Template).where(Template.sender_domain == layout.sender_domain)).all()
    same = [row for row in rows if same_template(row.signature, layout.signature)]
    taught_by = {row.id: set(session.exec(select(TemplateTeacher.user_id)
                                          .where(TemplateTeacher.template_id == row.id)).all()) for row in same}
    row = next((r for r in same if r.anchors == anchors and not r.retired), None)
    if row is None:
        row = next((r for r in same if user_id in taught_by[r.id]), None)
        if row is not None:  # the owner taught this layout again: the new anchors replace theirs
            if len(taught_by[row.id]) > 1:
                session.delete(session.get(TemplateTeacher, (row.id, user_id)))
                row = None
            else:
                row.anchors, row.signature, row.hits, row.misses, row.retired = anchors, layout.signature, 0, 0, False
    if row is None:
        row = Template(sender_domain=layout.sender_domain, signature=layout.signature, anchors=anchors)
        session.add(row)
        session.flush()
        taught_by[row.id] = set()
    if user_id not in taught_by[row.id]:
        session.add(TemplateTeacher(template_id=row.id, user_id=user_id))
    row.updated_at = utcnow()
    return row


def catch_up(session: Session, user_id: int, sender_domain: str, exclude: int | None = None) -> list[int]:
    """The owner's emails from that sender to read again now that its layout is known: those
    left unparsed, and unreviewed purchases read with little confidence (approvals are kept by
    the reparse, which never overwrites what the owner touched)."""
    raws = session.exec(select(RawEmail).options(defer(RawEmail.raw))  # status and reading only, never the bytes
                        .where(RawEmail.user_id == user_id, RawEmail.id != exclude)
                        .order_by(col(RawEmail.id).desc()).limit(CATCH_UP_LIMIT)).all()
    chosen = []
    for raw in raws:
        if _sender_of(raw) != sender_domain:
            continue
        if raw.status == RawStatus.UNPARSED.value:
            chosen.append(raw.id)
        elif raw.purchase_id is not None:
            purchase = session.get(Purchase, raw.purchase_id)
            if (purchase is not None and purchase.source_raw_id == raw.id and purchase.review == "new"
                    and (purchase.confidence or 0) < CATCH_UP_BELOW):
                chosen.append(raw.id)
    return [raw_id for raw_id in chosen if raw_id is not None]


def _sender_of(raw: RawEmail) -> str | None:
    """The original sender's domain as the last reading saw it (a forward's inner From)."""
    if raw.result_json:
        try:
            return registrable_domain((json.loads(raw.result_json).get("original") or {}).get("from"))
        except (ValueError, AttributeError):
            return None
    return registrable_domain(raw.from_addr)


def user_templates(session: Session, user_id: int) -> list[dict]:
    """The user's templates for their export: domain, signature, anchors, counters."""
    rows = session.exec(select(Template).join(TemplateTeacher, TemplateTeacher.template_id == Template.id)
                        .where(TemplateTeacher.user_id == user_id)).all()
    return [{"id": row.id, "sender_domain": row.sender_domain, "signature": row.signature,
             "anchors": json.loads(row.anchors), "hits": row.hits, "misses": row.misses, "retired": row.retired}
            for row in rows]
