"""Outbox delivery against a real SMTP server (the `smtp` fixture): a 4xx is retried and then
delivered once, a 5xx fails with the server's reason, and a worker killed right after the server
accepted the data never makes the mail go twice. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from purchaseshare.db import session_scope
from purchaseshare.mailer import MAX_SEND_ATTEMPTS, deliver_outbox, queue_mail
from purchaseshare.models import OutboxMail
from purchaseshare.users import create_user
from tests.mail.helpers import random_domain, random_sender

ROOT = Path(__file__).resolve().parents[2]


def queued(settings, to: str, purpose: str = "notification") -> int:
    """One outbox row for a user, as the web app queues its mail."""
    with session_scope(settings) as session:
        user = create_user(session, f"u{os.urandom(3).hex()}", email=to)
        mail = queue_mail(session, to=to, template="signup_existing", user_id=user.id, purpose=purpose, user=user,
                          login_url="https://site.example/login", reset_url="https://site.example/reset",
                          base_url="https://site.example")
        session.commit()
        return mail.id


def row(settings, mail_id: int) -> OutboxMail:
    with session_scope(settings) as session:
        return session.get(OutboxMail, mail_id)


def test_a_4xx_is_retried_then_delivered_once(settings, smtp):
    to = random_sender()
    mail_id = queued(settings, to)
    smtp.script({to: ["451 4.7.1 Greylisted, please try again later", "452 4.2.2 Mailbox full"]})
    assert deliver_outbox(mail_id, settings) == "queued"
    first = row(settings, mail_id)
    assert first.attempts == 1 and "451 4.7.1 Greylisted" in first.error and first.sent_at is None
    assert deliver_outbox(mail_id, settings) == "queued"
    assert "452 4.2.2 Mailbox full" in row(settings, mail_id).error
    assert smtp.messages() == []
    assert deliver_outbox(mail_id, settings) == "sent"
    assert deliver_outbox(mail_id, settings) == "sent"  # the same job again: nothing more leaves
    sent = row(settings, mail_id)
    assert sent.state == "sent" and sent.attempts == 3 and sent.error is None and sent.sent_at is not None
    assert sent.smtp_reply.startswith("250 2.0.0 Ok: queued as")  # the server's answer, recorded
    [message] = smtp.messages()
    assert message["rcpt_tos"] == [to] and message["mail_from"] == settings.inbox_address
    assert f"Message-ID: {sent.message_id}".encode() in message["data"]


def test_the_actor_defers_a_4xx_to_dramatiqs_backoff(settings, smtp):
    from workers.actors import MailDeferred, send_mail

    to = random_sender()
    mail_id = queued(settings, to)
    smtp.script({to: ["421 4.3.2 Service shutting down"]})
    with pytest.raises(MailDeferred):
        send_mail(mail_id)  # what the queued job runs: raising is what makes dramatiq retry later
    send_mail(mail_id)
    assert row(settings, mail_id).state == "sent" and len(smtp.messages()) == 1


def test_without_a_mail_server_the_job_ends_and_the_mail_stays_in_the_outbox(settings):
    """No SMTP_URL (the demo, a test): nothing to retry, so the job neither raises nor loops."""
    from workers.actors import send_mail

    assert not settings.smtp_url
    mail_id = queued(settings, random_sender())
    send_mail(mail_id)
    kept = row(settings, mail_id)
    assert kept.state == "queued" and kept.sent_at is None and kept.attempts == 0


def test_a_4xx_every_time_is_given_up_with_the_last_answer(settings, smtp):
    to = random_sender()
    mail_id = queued(settings, to)
    smtp.script({to: ["450 4.2.1 Try again"] * MAX_SEND_ATTEMPTS})
    states = [deliver_outbox(mail_id, settings) for _ in range(MAX_SEND_ATTEMPTS)]
    assert states == ["queued"] * (MAX_SEND_ATTEMPTS - 1) + ["failed"]
    failed = row(settings, mail_id)
    assert f"gave up after {MAX_SEND_ATTEMPTS} attempts" in failed.error and "450 4.2.1 Try again" in failed.error
    assert smtp.messages() == []


def test_a_5xx_fails_with_the_reason_and_is_not_tried_again(settings, smtp):
    to = f"nobody.{os.urandom(2).hex()}@{random_domain()}"
    mail_id = queued(settings, to)
    smtp.script({to: ["550 5.1.1 <" + to + ">: Recipient address rejected: User unknown"]})
    assert deliver_outbox(mail_id, settings) == "failed"
    assert deliver_outbox(mail_id, settings) == "failed"
    failed = row(settings, mail_id)
    assert failed.error == f"refused at RCPT TO: 550 5.1.1 <{to}>: Recipient address rejected: User unknown"
    assert failed.attempts == 1 and failed.sent_at is None
    assert smtp.messages() == []


def test_a_server_that_is_down_is_retried(settings, smtp):
    mail_id = queued(settings, random_sender())
    settings.smtp_url = "smtp://127.0.0.1:1"  # nothing listens: connection refused
    assert deliver_outbox(mail_id, settings) == "queued"
    assert "connect" in row(settings, mail_id).error
    settings.smtp_url = smtp.url
    assert deliver_outbox(mail_id, settings) == "sent" and len(smtp.messages()) == 1


KILLED_SENDER = textwrap.dedent("""
    import os, signal, smtplib, sys
    from purchaseshare.config import Settings
    from purchaseshare.mailer import deliver_outbox

    answer = smtplib.SMTP.data

    def data_then_die(self, msg):
        reply = answer(self, msg)  # the server has accepted the data (250) ...
        os.kill(os.getpid(), signal.SIGKILL)  # ... and the worker dies before recording it
        return reply

    smtplib.SMTP.data = data_then_die
    deliver_outbox(int(sys.argv[1]), Settings())
""")


def test_a_worker_killed_after_the_server_accepted_never_sends_twice(settings, smtp):
    to = random_sender()
    mail_id = queued(settings, to, purpose="reset")
    # A real process, killed for real between the server's acceptance and the commit recording it
    # (its environment is the test's: the same database and SMTP_URL).
    killed = subprocess.run([sys.executable, "-c", KILLED_SENDER, str(mail_id)], cwd=ROOT, env=os.environ.copy(),
                            capture_output=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert len(smtp.messages()) == 1  # it did go
    left = row(settings, mail_id)
    assert left.state == "sending" and left.message_id and left.sending_at is not None  # recorded before DATA

    # The job comes back (dramatiq redelivers a dead worker's message): it must not send again.
    assert deliver_outbox(mail_id, settings) == "uncertain"
    assert deliver_outbox(mail_id, settings) == "uncertain"
    assert len(smtp.messages()) == 1
    doubt = row(settings, mail_id)
    assert "not sent again" in doubt.error and doubt.message_id in doubt.error
    assert f"Message-ID: {doubt.message_id}".encode() in smtp.messages()[0]["data"]  # what the operator can look up


def test_a_worker_killed_before_data_sends_it_on_the_retry(settings, smtp):
    """The other side of the choice: dying before the claim (connect, MAIL, RCPT) loses nothing."""
    to = random_sender()
    mail_id = queued(settings, to)
    script = KILLED_SENDER.replace("answer = smtplib.SMTP.data", "answer = smtplib.SMTP.rcpt").replace(
        "smtplib.SMTP.data = data_then_die", "smtplib.SMTP.rcpt = data_then_die")
    killed = subprocess.run([sys.executable, "-c", script, str(mail_id)], cwd=ROOT, env=os.environ.copy(),
                            capture_output=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert smtp.messages() == [] and row(settings, mail_id).state == "queued"
    assert deliver_outbox(mail_id, settings) == "sent" and len(smtp.messages()) == 1
