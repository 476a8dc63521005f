"""Storing and processing received mail, in-process (no Redis): de-duplication, attribution,
purchases private by default, refunds, replies, retries, retention, reparse — on SQLite and
PostgreSQL (the `settings` fixture)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlmodel import select

from purchaseshare.clock import utcnow
from purchaseshare.mailstore import store_raw
from purchaseshare.models import OutboxMail, Purchase, PurchaseItem, RawEmail
from purchaseshare.processing import claim_stale, process_raw_email, purge_expired_raw
from purchaseshare.reparse import reparse_raw_email
from purchaseshare.users import add_sender_address, create_user
from tests import wrapping
from tests.helpers import FIXTURES

AMAZON = (FIXTURES / "amazon" / "amazon_3_multi_item.eml").read_bytes()
AMAZON_GOLDEN = json.loads((FIXTURES / "amazon" / "amazon_3_multi_item.json").read_text())
TGTG_ORDER = (FIXTURES / "too_good_to_go" / "too_good_to_go_1_de.eml").read_bytes()
TGTG_CANCEL = (FIXTURES / "too_good_to_go" / "too_good_to_go_3_cancelled.eml").read_bytes()
NEWSLETTER = (FIXTURES / "_generic" / "generic_6_newsletter.eml").read_bytes()
AUTH_PASS = "Authentication-Results: mx.purchaseshare.test; dkim=pass header.d=example.org; spf=pass smtp.mailfrom=alice@example.org\r\n"


def _user(session, handle="alice", email="alice@example.org"):
    user = create_user(session, handle, email=email)
    session.commit()
    return user


def _ingest(session, settings, raw: bytes, user=None):
    stored = store_raw(session, raw, source="test", user_id=user.id if user else None,
                       attributed_by="cli" if user else None)
    return process_raw_email(stored.raw_email.id, settings)


def _count(session, model) -> int:
    return len(session.exec(select(model)).all())


def test_raw_email_is_stored_once_for_the_same_bytes_or_message_id(session):
    first = store_raw(session, AMAZON, source="a")
    again = store_raw(session, AMAZON, source="b")
    resent = store_raw(session, AMAZON.replace(b"\nSubject:", b"\nX-Resent: yes\nSubject:", 1), source="c")
    assert first.created and not again.created and not resent.created
    assert again.raw_email.id == first.raw_email.id == resent.raw_email.id
    assert _count(session, RawEmail) == 1
    stored = session.get(RawEmail, first.raw_email.id)
    assert stored.raw == AMAZON and len(stored.sha256) == 64 and stored.status == "received"


def test_purchase_is_private_by_default_with_decimal_money(session, settings):
    alice = _user(session)
    outcome = _ingest(session, settings, AMAZON, alice)
    assert outcome.status == "parsed" and outcome.purchase_id
    session.expire_all()
    purchase = session.get(Purchase, outcome.purchase_id)
    items = session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == purchase.id)
                         .order_by(PurchaseItem.position)).all()
    assert purchase.user_id == alice.id and purchase.review == "new" and purchase.published_at is None
    assert purchase.total == Decimal(AMAZON_GOLDEN["total"]) and isinstance(purchase.total, Decimal)
    assert purchase.currency == AMAZON_GOLDEN["currency"]
    assert purchase.order_number == AMAZON_GOLDEN["order_number"]
    assert [item.name for item in items] == [item["name"] for item in AMAZON_GOLDEN["items"]]
    assert all(not item.approved for item in items)
    assert [item.unit_price for item in items] == [Decimal(item["unit_price"]) for item in AMAZON_GOLDEN["items"]]


@pytest.mark.parametrize("style", ["gmail", "outlook", "apple", "attachment"])
def test_the_same_order_forwarded_again_is_one_purchase(session, settings, style):
    alice = _user(session)
    first = _ingest(session, settings, AMAZON, alice)
    forwarded = _ingest(session, settings, wrapping.wrap(AMAZON, style, "alice@example.org"), alice)
    assert forwarded.status == "parsed" and forwarded.purchase_id == first.purchase_id
    assert "already stored" in forwarded.reason
    assert _count(session, RawEmail) == 2 and _count(session, Purchase) == 1


def test_processing_twice_is_a_no_op(session, settings):
    alice = _user(session)
    stored = store_raw(session, AMAZON, source="t", user_id=alice.id, attributed_by="cli")
    one = process_raw_email(stored.raw_email.id, settings)
    two = process_raw_email(stored.raw_email.id, settings)
    assert (one.status, one.purchase_id) == (two.status, two.purchase_id)
    session.expire_all()
    assert session.get(RawEmail, stored.raw_email.id).attempts == 1
    assert _count(session, Purchase) == 1 and _count(session, PurchaseItem) == len(AMAZON_GOLDEN["items"])


def test_cancellation_updates_the_matching_purchase(session, settings):
    alice = _user(session)
    order = _ingest(session, settings, TGTG_ORDER, alice)
    cancel = _ingest(session, settings, TGTG_CANCEL, alice)
    assert cancel.status == "applied" and cancel.purchase_id == order.purchase_id
    session.expire_all()
    assert session.get(Purchase, order.purchase_id).status == "cancelled"
    assert _count(session, Purchase) == 1


def test_cancellation_without_its_order_creates_nothing(session, settings):
    alice = _user(session)
    outcome = _ingest(session, settings, TGTG_CANCEL, alice)
    assert outcome.status == "not_purchase" and "not stored" in outcome.reason
    assert _count(session, Purchase) == 0


def test_newsletter_is_not_a_purchase_and_says_why(session, settings):
    alice = _user(session)
    outcome = _ingest(session, settings, NEWSLETTER, alice)
    assert outcome.status == "not_purchase" and "newsletter" in outcome.reason
    assert _count(session, Purchase) == 0


def _receipt_to(to: str, sender: str = "alice@example.org", extra_headers: str = "") -> bytes:
    forwarded = wrapping.wrap(AMAZON, "gmail", sender)
    forwarded = forwarded.replace(f"To: {wrapping.INBOX}".encode(), f"To: {to}".encode(), 1)
    return extra_headers.encode() + forwarded


def test_plus_address_token_attributes_the_mail(session, settings):
    alice = _user(session)
    raw = _receipt_to(settings.forwarding_address(alice.forwarding_token), sender="someone@else.example")
    outcome = _ingest(session, settings, raw)
    assert outcome.status == "parsed"
    session.expire_all()
    row = session.get(RawEmail, outcome.raw_email_id)
    assert (row.user_id, row.attributed_by) == (alice.id, "token")


def test_auto_forward_keeping_the_merchants_headers_is_attributed_by_delivered_to(session, settings):
    alice = _user(session)
    raw = f"Delivered-To: {settings.forwarding_address(alice.forwarding_token)}\r\n".encode() + AMAZON
    outcome = _ingest(session, settings, raw)
    assert outcome.status == "parsed"
    assert session.get(Purchase, outcome.purchase_id).user_id == alice.id


def test_verified_sender_with_passing_authentication_results(session, settings):
    alice = _user(session)
    add_sender_address(session, alice, "alice@example.org", verified=True)
    session.commit()
    outcome = _ingest(session, settings, _receipt_to(settings.inbox_address, extra_headers=AUTH_PASS))
    assert outcome.status == "parsed"
    assert session.get(Purchase, outcome.purchase_id).user_id == alice.id


@pytest.mark.parametrize("auth, verified, why", [
    ("", True, "did not pass"),  # no Authentication-Results at all: a From alone proves nothing
    (AUTH_PASS.replace("mx.purchaseshare.test", "mx.attacker.example"), True, "did not pass"),  # not our server
    (AUTH_PASS.replace("dkim=pass", "dkim=fail").replace("spf=pass", "spf=softfail"), True, "did not pass"),
    (AUTH_PASS.replace("header.d=example.org", "header.d=evil.example").replace(
        "smtp.mailfrom=alice@example.org", "smtp.mailfrom=x@evil.example"), True, "did not pass"),  # not aligned
    (AUTH_PASS, False, "unverified"),
])
def test_unproven_senders_are_quarantined(session, settings, auth, verified, why):
    alice = _user(session)
    add_sender_address(session, alice, "alice@example.org", verified=verified)
    session.commit()
    outcome = _ingest(session, settings, _receipt_to(settings.inbox_address, extra_headers=auth))
    assert outcome.status == "quarantined" and why in outcome.reason
    assert _count(session, Purchase) == 0
    assert _count(session, OutboxMail) == 0  # no SMTP_URL: no reply to strangers
    row = session.get(RawEmail, outcome.raw_email_id)
    assert row.raw is not None and row.user_id is None  # kept for operators, attributed to nobody


def test_unknown_sender_gets_a_reply_when_smtp_is_configured(session, settings):
    # Only when our MX authenticated its From (issue 16: a forged From gets nothing, tests/mail).
    settings.smtp_url = "smtp://127.0.0.1:1"
    auth = "Authentication-Results: mx.purchaseshare.test; dmarc=pass header.from=example.net\r\n"
    outcome = _ingest(session, settings, _receipt_to(settings.inbox_address, sender="stranger@example.net",
                                                     extra_headers=auth))
    assert outcome.status == "quarantined" and outcome.mail_ids
    mail = session.get(OutboxMail, outcome.mail_ids[0])
    assert mail.to_addr == "stranger@example.net" and "Who sent this?" in mail.subject


def test_unreadable_receipt_from_a_known_user_gets_a_reply_with_the_reason(session, settings):
    alice = _user(session)
    message = EmailMessage()
    message["From"] = "Shop <orders@tiny-shop.example>"
    message["To"] = "alice@example.org"
    message["Subject"] = "Your order confirmation"
    message["Message-ID"] = make_msgid()
    message.set_content("Thank you for your order! We will email you when it ships.")
    outcome = _ingest(session, settings, message.as_bytes(), alice)
    assert outcome.status == "unparsed" and outcome.reason
    mail = session.get(OutboxMail, outcome.mail_ids[0])
    assert mail.to_addr == "alice@example.org" and "could not read" in mail.subject
    assert outcome.reason in mail.body


def test_empty_mail_is_kept_and_failed_with_a_reason(session, settings):
    stored = store_raw(session, b"  \r\n", source="test")
    assert stored.raw_email.status == "failed" and "empty" in stored.raw_email.reason
    assert process_raw_email(stored.raw_email.id, settings).status == "failed"


def test_stale_received_mail_is_claimed_again_but_fresh_mail_is_not(session, settings):
    alice = _user(session)
    old = store_raw(session, AMAZON, source="t", user_id=alice.id).raw_email
    fresh = store_raw(session, TGTG_ORDER, source="t", user_id=alice.id).raw_email
    old.queued_at = utcnow() - timedelta(seconds=settings.requeue_after_seconds + 5)
    fresh.queued_at = utcnow()
    session.add_all([old, fresh])
    session.commit()
    assert claim_stale(session, settings) == [old.id]
    assert claim_stale(session, settings) == []  # claimed: queued_at moved on


def test_retention_purges_raw_bytes_but_keeps_the_purchase(session, settings):
    alice = _user(session)
    outcome = _ingest(session, settings, AMAZON, alice)
    assert purge_expired_raw(session, settings) == 0  # default: kept until the user deletes it
    alice.raw_retention_days = 30
    row = session.get(RawEmail, outcome.raw_email_id)
    row.processed_at = utcnow() - timedelta(days=31)
    session.add_all([alice, row])
    session.commit()
    assert purge_expired_raw(session, settings) == 1
    session.expire_all()
    row = session.get(RawEmail, outcome.raw_email_id)
    assert row.raw is None and row.raw_purged_at is not None and row.sha256
    assert session.get(Purchase, outcome.purchase_id) is not None


def test_reparse_refreshes_an_untouched_purchase_and_keeps_a_reviewed_one(session, settings):
    alice = _user(session)
    outcome = _ingest(session, settings, AMAZON, alice)
    item = session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == outcome.purchase_id)).first()
    item.name = "wrong name from an older parser"
    session.add(item)
    session.commit()
    reparse_raw_email(outcome.raw_email_id, settings)
    session.expire_all()
    names = [i.name for i in session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == outcome.purchase_id))]
    assert "wrong name from an older parser" not in names and len(names) == len(AMAZON_GOLDEN["items"])
    first = session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == outcome.purchase_id)).first()
    first.approved, first.name = True, "the owner's own correction"
    session.add(first)
    session.commit()
    reparse_raw_email(outcome.raw_email_id, settings)
    session.expire_all()
    kept = session.get(PurchaseItem, first.id)
    assert kept is not None and kept.approved and kept.name == "the owner's own correction"


def test_reparse_gives_a_quarantined_mail_another_chance_once_the_sender_is_verified(session, settings):
    alice = _user(session)
    add_sender_address(session, alice, "alice@example.org")
    session.commit()
    outcome = _ingest(session, settings, _receipt_to(settings.inbox_address, extra_headers=AUTH_PASS))
    assert outcome.status == "quarantined"
    add_sender_address(session, alice, "alice@example.org", verified=True)
    session.commit()
    again = reparse_raw_email(outcome.raw_email_id, settings)
    assert again.status == "parsed" and session.get(Purchase, again.purchase_id).user_id == alice.id


def test_an_email_whose_attempts_never_finish_is_failed_instead_of_retried_forever(session, settings):
    alice = _user(session)
    stored = store_raw(session, AMAZON, source="t", user_id=alice.id, attributed_by="cli").raw_email
    stored.attempts = settings.max_attempts * 2  # every earlier attempt died with its worker
    session.add(stored)
    session.commit()
    outcome = process_raw_email(stored.id, settings)
    assert outcome.status == "failed" and "never finished" in outcome.reason
    assert _count(session, Purchase) == 0


def test_losing_a_race_on_the_purchase_links_to_the_winner_and_keeps_the_attribution(session, settings, monkeypatch):
    """Another worker stored the same order between our lookup and our insert: the unique key
    refuses ours, and the retry (after a rollback that also undid the token attribution of this
    not-yet-committed attempt) must link to that purchase, for the same user."""
    from purchaseshare import processing

    alice = _user(session)
    first = _ingest(session, settings, AMAZON, alice)
    raw = _receipt_to(settings.forwarding_address(alice.forwarding_token), sender="someone@else.example")
    stored = store_raw(session, raw, source="t").raw_email  # no user yet: the token decides
    real_find, calls = processing.find_purchase, []

    def miss_once(*args, **kwargs):
        calls.append(1)
        return None if len(calls) == 1 else real_find(*args, **kwargs)

    monkeypatch.setattr(processing, "find_purchase", miss_once)
    outcome = process_raw_email(stored.id, settings)
    assert len(calls) == 2  # the first lookup missed, the insert was refused, the retry found it
    assert outcome.status == "parsed" and outcome.purchase_id == first.purchase_id
    session.expire_all()
    row = session.get(RawEmail, stored.id)
    assert (row.user_id, row.attributed_by) == (alice.id, "token")
    assert _count(session, Purchase) == 1
