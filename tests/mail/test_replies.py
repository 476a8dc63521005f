"""The "who are you?" reply against a real SMTP server (the `smtp` fixture): only an unknown
sender whose From our MX authenticated gets one, at most one a day, never robots or lists, and
it leaves with an empty envelope sender and RFC 3834's headers. On SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
import secrets
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlmodel import col, select, update

from purchaseshare.db import session_scope
from purchaseshare.models import LoginAttempt, OutboxMail, Purchase, RawEmail
from tests.mail.helpers import deliver, ingest, note, passing, random_domain, random_sender


def outbox_rows(settings) -> list[OutboxMail]:
    with session_scope(settings) as session:
        return list(session.exec(select(OutboxMail)).all())


def reason_of(settings, raw_id: int) -> str:
    with session_scope(settings) as session:
        return session.get(RawEmail, raw_id).reason or ""


@pytest.mark.parametrize("forgery", [
    "no Authentication-Results at all",
    "a pass stamped by another server",
    "DKIM passes for another domain",
    "SPF passes for another domain",
    "DMARC fails",
])
def test_a_spoofed_from_gets_no_mail(settings, smtp, forgery):
    victim = random_sender()
    other = random_sender()
    results = {
        "no Authentication-Results at all": None,
        "a pass stamped by another server": passing(victim, "dmarc", authserv="mx.attacker.example"),
        "DKIM passes for another domain": passing(other, "dkim"),
        "SPF passes for another domain": passing(other, "spf"),
        "DMARC fails": f"mx.purchaseshare.test; dmarc=fail header.from={victim.rpartition('@')[2]}",
    }[forgery]
    headers = {"Authentication-Results": results} if results else {}
    outcome = ingest(settings, note(victim, settings.inbox_address, headers=headers))
    assert outcome.status == "quarantined" and outcome.mail_ids == []
    reason = reason_of(settings, outcome.raw_email_id)
    assert "no reply sent" in reason and "not authenticated" in reason and victim in reason
    assert outbox_rows(settings) == []
    assert smtp.messages() == []


@pytest.mark.parametrize("method", ["dmarc", "dkim", "spf"])
def test_an_authenticated_unknown_sender_gets_exactly_one_reply_a_day(settings, smtp, method):
    sender = random_sender()
    first_raw = note(sender, settings.inbox_address, headers={"Authentication-Results": passing(sender, method)})
    first = ingest(settings, first_raw)
    second = ingest(settings, note(sender, settings.inbox_address, headers={
        "Authentication-Results": passing(sender, method)}))
    assert first.status == second.status == "quarantined"
    assert len(first.mail_ids) == 1 and second.mail_ids == []
    assert "in the last 24 hours" in reason_of(settings, second.raw_email_id)
    assert deliver(settings, first.mail_ids + first.mail_ids) == ["sent", "sent"]  # a redelivered job: no resend

    [sent] = smtp.messages()
    assert sent["mail_from"] == "<>"  # MAIL FROM:<> (the null path): nothing answers or bounces back to it
    assert sent["rcpt_tos"] == [sender]
    reply = email.message_from_bytes(sent["data"], policy=email.policy.default)
    original = email.message_from_bytes(first_raw, policy=email.policy.default)
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["In-Reply-To"] == original["Message-ID"] == reply["References"]
    assert reply["From"] == settings.inbox_address and "Who sent this?" in reply["Subject"]

    # The day is counted in the database, whichever worker asks: a day later the sender may get one again.
    with session_scope(settings) as session:
        session.exec(update(LoginAttempt).where(col(LoginAttempt.key).startswith("auto-reply:"))  # type: ignore[call-overload]
                     .values(created_at=LoginAttempt.created_at - timedelta(hours=25)))
        session.commit()
    third = ingest(settings, note(sender, settings.inbox_address, headers={
        "Authentication-Results": passing(sender, method)}))
    assert len(third.mail_ids) == 1


def test_the_daily_limit_is_per_address_and_case_blind(settings, smtp):
    sender = random_sender()
    one = ingest(settings, note(sender, settings.inbox_address, headers={"Authentication-Results": passing(sender)}))
    shouted = sender.upper().replace(".EXAMPLE", ".example")
    two = ingest(settings, note(shouted, settings.inbox_address, headers={"Authentication-Results": passing(sender)}))
    other = random_sender()
    three = ingest(settings, note(other, settings.inbox_address, headers={"Authentication-Results": passing(other)}))
    assert len(one.mail_ids) == 1 and two.mail_ids == [] and len(three.mail_ids) == 1


ROBOTS = {
    "Auto-Submitted: auto-generated": {"Auto-Submitted": "auto-generated"},
    "Auto-Submitted: auto-replied": {"Auto-Submitted": "auto-replied; owner-email=x@y.example"},
    "Precedence: bulk": {"Precedence": "bulk"},
    "Precedence: list": {"Precedence": "list"},
    "Precedence: junk": {"Precedence": "junk"},
    "List-Id": {"List-Id": "Friends of teapots <teapots.lists.example>"},
    "List-Unsubscribe": {"List-Unsubscribe": "<mailto:leave@lists.example>"},
    "null envelope sender": {"Return-Path": "<>"},
    "Exchange asks for none": {"X-Auto-Response-Suppress": "All"},
}


@pytest.mark.parametrize("case", sorted(ROBOTS))
def test_list_and_automatic_mail_get_no_reply(settings, smtp, case):
    sender = random_sender()
    outcome = ingest(settings, note(sender, settings.inbox_address, headers={
        "Authentication-Results": passing(sender), **ROBOTS[case]}))
    assert outcome.status == "quarantined" and outcome.mail_ids == []
    assert "no reply sent" in reason_of(settings, outcome.raw_email_id)
    assert outbox_rows(settings) == [] and smtp.messages() == []


@pytest.mark.parametrize("local", ["postmaster", "noreply", "own"])
def test_robot_and_own_addresses_get_no_reply(settings, smtp, local):
    sender = settings.inbox_address if local == "own" else f"{local}@{random_domain()}"
    outcome = ingest(settings, note(sender, "someone@elsewhere.example", headers={
        "Authentication-Results": passing(sender)}, subject="Hello there"))
    assert outcome.status == "quarantined" and outcome.mail_ids == []
    assert outbox_rows(settings) == [] and smtp.messages() == []


def test_auto_submitted_no_is_a_person_and_may_get_the_reply(settings, smtp):
    sender = random_sender()
    outcome = ingest(settings, note(sender, settings.inbox_address, headers={
        "Authentication-Results": passing(sender), "Auto-Submitted": "no"}))
    assert len(outcome.mail_ids) == 1
    assert deliver(settings, outcome.mail_ids) == ["sent"] and len(smtp.messages()) == 1


def test_a_known_senders_unreadable_mail_follows_the_same_rules(settings, smtp):
    """The "could not read this" reply to a verified sender's From is an automatic reply too."""
    from purchaseshare.users import add_sender_address, create_user

    sender = random_sender()
    with session_scope(settings) as session:
        owner = create_user(session, "ada", email=f"ada@{random_domain()}")
        add_sender_address(session, owner, sender, verified=True)
        session.commit()

    def unreadable(extra: dict[str, str]) -> bytes:
        message = EmailMessage()
        message["From"], message["To"] = sender, settings.inbox_address
        message["Subject"] = f"Your order confirmation {secrets.token_hex(2)}"
        message["Message-ID"] = make_msgid()
        message["Authentication-Results"] = passing(sender)
        for name, value in extra.items():
            message[name] = value
        message.set_content("Thank you for your order! We will email you when it ships.")
        return message.as_bytes()

    listed = ingest(settings, unreadable({"List-Id": "<orders.lists.example>"}))
    plain = ingest(settings, unreadable({}))
    assert listed.status == plain.status == "unparsed"
    # Had the list mail been answered, the daily limit would have kept the second from a reply.
    assert listed.mail_ids == [] and len(plain.mail_ids) == 1
    assert deliver(settings, plain.mail_ids) == ["sent"], outbox_rows(settings)[0].error
    [sent] = smtp.messages()
    assert sent["rcpt_tos"] == [sender] and sent["mail_from"] == "<>"
    with session_scope(settings) as session:
        assert session.exec(select(Purchase)).all() == []
