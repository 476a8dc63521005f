"""Verification and reset mail through the real app and a real SMTP server, and what their bounces
do when they come back to the inbox: recognised, never parsed or answered, and a hard bounce of
our verification mail marks the address and tells its user. On SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
import re
import secrets
from email.utils import make_msgid

import pytest
from sqlmodel import select

from purchaseshare.db import session_scope
from purchaseshare.mailer import deliver_outbox
from purchaseshare.models import OutboxMail, Purchase, SenderAddress, User
from tests.helpers import FIXTURES
from tests.mail.helpers import ingest, random_domain, random_sender
from tests.web.conftest import PASSWORD, post

HTML = {"accept": "text/html"}
AMAZON = (FIXTURES / "amazon" / "amazon_3_multi_item.eml").read_bytes()


def sign_up(client, address: str) -> str:
    handle = f"h{secrets.token_hex(3)}"
    response = post(client, "/signup", {"handle": handle, "display_name": handle.title(), "email": address,
                                        "password": PASSWORD}, page="/signup")
    assert response.status_code == 303, response.text
    return handle


def send_all(settings, purpose: str) -> OutboxMail:
    """Deliver the queued mail of this purpose (what the send_mail job does after the request)."""
    with session_scope(settings) as session:
        [mail] = session.exec(select(OutboxMail).where(OutboxMail.purpose == purpose)).all()
    assert deliver_outbox(mail.id, settings) == "sent"
    with session_scope(settings) as session:
        return session.get(OutboxMail, mail.id)


def received(smtp, to: str) -> tuple[dict, email.message.EmailMessage]:
    [found] = [m for m in smtp.messages() if m["rcpt_tos"] == [to]]
    return found, email.message_from_bytes(found["data"], policy=email.policy.default)


def link(settings, message: email.message.EmailMessage, route: str) -> str:
    body = message.get_content()
    found = re.search(re.escape(settings.base_url) + rf"(/{route}/[A-Za-z0-9_.\-]+)", body)
    assert found, body
    return found.group(1)


def test_verification_and_reset_mail_arrive_with_the_right_links(settings, smtp, client, other_client):
    address = random_sender()
    sign_up(client, address)
    verify = send_all(settings, "verify")
    envelope, message = received(smtp, address)
    assert envelope["mail_from"] == settings.inbox_address  # not a reply: its bounces come back to us
    assert message["Message-ID"] == verify.message_id and message["Auto-Submitted"] == "auto-generated"
    path = link(settings, message, "verify")
    assert client.get(path, headers=HTML).status_code == 200
    assert post(client, path, page=path).status_code == 303
    with session_scope(settings) as session:
        assert session.exec(select(SenderAddress).where(SenderAddress.address == address)).one().verified_at

    assert post(other_client, "/reset", {"email": address}, page="/reset").status_code == 200
    send_all(settings, "reset")
    [reset] = [m for m in smtp.messages() if b"/reset/" in m["data"]]
    path = link(settings, email.message_from_bytes(reset["data"], policy=email.policy.default), "reset")
    form = other_client.get(path, headers=HTML)
    assert form.status_code == 200 and "password" in form.text.lower()
    new = "another long passphrase"
    changed = post(other_client, path, {"password": new, "confirm": new}, page=path)
    assert changed.status_code == 303


def dsn(inbox: str, original: email.message.EmailMessage, recipient: str, status: str, action: str) -> bytes:
    """An RFC 3464 report as a receiving MTA writes it, returning the original's headers."""
    host = f"mx.{random_domain()}"
    headers = "".join(f"{name}: {value}\r\n" for name, value in original.items())
    return (f"Return-Path: <>\r\nFrom: Mail Delivery System <MAILER-DAEMON@{host}>\r\nTo: {inbox}\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: {make_msgid(domain=host)}\r\n"
            "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="=b="\r\n\r\n'
            "--=b=\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message could not\r\n"
            "be delivered to one or more recipients.\r\n\r\n"
            f"--=b=\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; {host}\r\n\r\n"
            f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
            f"Diagnostic-Code: smtp; {status[0]}50 {status} <{recipient}>: Recipient address rejected\r\n\r\n"
            f"--=b=\r\nContent-Type: text/rfc822-headers\r\n\r\n{headers}\r\n--=b=--\r\n").encode()


def plain_bounce(inbox: str, original: email.message.EmailMessage, recipient: str) -> bytes:
    """The non-standard kind (qmail and friends): text from MAILER-DAEMON, original quoted."""
    host = random_domain()
    headers = "".join(f"{name}: {value}\n" for name, value in original.items())
    return (f"From: MAILER-DAEMON@{host}\nTo: {inbox}\nSubject: failure notice\nMessage-ID: {make_msgid()}\n\n"
            f"Hi. This is the qmail-send program at {host}.\nI'm afraid I wasn't able to deliver your message "
            f"to the following addresses.\n\n<{recipient}>:\n550 5.1.1 mailbox unavailable\n\n"
            f"--- Below this line is a copy of the message.\n\n{headers}\nHello\n").encode()


@pytest.mark.parametrize("kind", ["rfc3464", "non-standard"])
def test_a_hard_bounce_of_our_verification_mail_marks_the_address_and_tells_the_user(settings, smtp, client,
                                                                                     other_client, kind):
    address = random_sender()
    handle = sign_up(client, address)
    verify = send_all(settings, "verify")
    _, original = received(smtp, address)
    bounce = (dsn(settings.inbox_address, original, address, "5.1.1", "failed") if kind == "rfc3464"
              else plain_bounce(settings.inbox_address, original, address))
    outcome = ingest(settings, bounce)
    assert outcome.status == "quarantined" and outcome.mail_ids == []  # never answered
    assert "marked undeliverable" in outcome.reason and "5.1.1" in outcome.reason
    with session_scope(settings) as session:
        assert session.get(OutboxMail, verify.id).state == "bounced"
        assert len(session.exec(select(OutboxMail)).all()) == 1  # no reply to the bounce
        user = session.exec(select(User).where(User.email == address)).one()
        assert user.email_bounced_at is not None and "5.1.1" in user.email_bounce_reason
        assert session.exec(select(SenderAddress).where(SenderAddress.address == address)).one().bounced_at
    page = client.get("/settings/addresses", headers=HTML).text
    [line] = [text for text in page.splitlines() if "bounced" in text]
    assert address in line and "5.1.1" in line and "does not take mail" in line
    # Signing in (on another browser) says it once too.
    signed_in = post(other_client, "/login", {"handle": handle, "password": PASSWORD}, page="/login")
    after = other_client.get(signed_in.headers["location"], headers=HTML).text
    assert f"Our mail to {address} bounced" in after and "5.1.1" in after
    assert len(smtp.messages()) == 1


def test_a_delay_notice_or_a_bounce_naming_someone_else_marks_nothing(settings, smtp, client):
    address = random_sender()
    sign_up(client, address)
    send_all(settings, "verify")
    _, original = received(smtp, address)
    delayed = ingest(settings, dsn(settings.inbox_address, original, address, "4.4.1", "delayed"))
    forged = ingest(settings, dsn(settings.inbox_address, original, random_sender(), "5.1.1", "failed"))
    assert "a delay, not a failure" in delayed.reason and "not about any mail we sent" in forged.reason
    with session_scope(settings) as session:
        assert session.exec(select(User).where(User.email == address)).one().email_bounced_at is None
        assert session.exec(select(OutboxMail)).one().state == "sent"
    assert "bounced" not in client.get("/settings/addresses", headers=HTML).text


def test_a_bounce_is_never_parsed_as_a_purchase_nor_answered(settings, smtp, client):
    """Even sent to a user's forwarding address and carrying a whole receipt as the returned message."""
    sign_up(client, random_sender())
    with session_scope(settings) as session:
        user = session.exec(select(User)).one()
        forwarding = settings.forwarding_address(user.forwarding_token)
        session.exec(select(OutboxMail)).one()  # the welcome mail, never sent: no Message-ID to match
    receipt = email.message_from_bytes(AMAZON, policy=email.policy.default)
    bounce = (f"From: Mail Delivery Subsystem <mailer-daemon@{random_domain()}>\r\nTo: {forwarding}\r\n"
              "Subject: Delivery Status Notification (Failure)\r\nMIME-Version: 1.0\r\n"
              'Content-Type: multipart/report; report-type=delivery-status; boundary="zz"\r\n\r\n'
              "--zz\r\nContent-Type: text/plain\r\n\r\nAddress not found.\r\n"
              "--zz\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
              "Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
              "--zz\r\nContent-Type: message/rfc822\r\n\r\n").encode() + receipt.as_bytes() + b"\r\n--zz--\r\n"
    outcome = ingest(settings, bounce)
    assert outcome.status == "quarantined" and outcome.mail_ids == [] and outcome.purchase_id is None
    assert "not about any mail we sent" in outcome.reason
    with session_scope(settings) as session:
        assert session.exec(select(Purchase)).all() == []
        assert len(session.exec(select(OutboxMail)).all()) == 1
    assert smtp.messages() == []


@pytest.mark.parametrize("purpose", ["reset", "notification"])
def test_a_hard_bounce_marks_the_account_address_only_for_reset_mail(settings, smtp, client, other_client, purpose):
    from purchaseshare.mailer import queue_mail

    address = random_sender()
    sign_up(client, address)
    with session_scope(settings) as session:
        user = session.exec(select(User)).one()
        session.exec(select(OutboxMail)).one()  # the welcome mail stays queued: only ours below is sent
        mail = queue_mail(session, to=address, template="signup_existing", user_id=user.id, purpose=purpose,
                          user=user, login_url="x", reset_url="y", base_url="z")
        session.commit()
        mail_id = mail.id
    assert deliver_outbox(mail_id, settings) == "sent"
    _, original = received(smtp, address)
    outcome = ingest(settings, dsn(settings.inbox_address, original, address, "5.2.1", "failed"))
    with session_scope(settings) as session:
        assert session.get(OutboxMail, mail_id).state == "bounced"
        user = session.exec(select(User)).one()
        row = session.exec(select(SenderAddress).where(SenderAddress.address == address)).one()
    if purpose == "reset":
        assert "marked undeliverable" in outcome.reason
        assert user.email_bounced_at is not None and "5.2.1" in user.email_bounce_reason
        assert row.bounced_at is not None  # the same address is also a (pending) sender address
    else:  # a notification's loss locks nobody out: the row says bounced, the user is not told
        assert "marked bounced" in outcome.reason
        assert user.email_bounced_at is None and row.bounced_at is None
