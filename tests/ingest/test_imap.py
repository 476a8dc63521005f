"""The IMAP poller against a real Dovecot, on SQLite and PostgreSQL, with the actors run by the
in-process worker. Every test gets its own Dovecot user (a line added to the passwd-file, which
Dovecot re-reads), so mailboxes never leak between tests.

Faults are real: a TCP proxy cuts the connection in the middle of a FETCH or of an IDLE, and
UIDVALIDITY is changed by deleting and re-creating the folder on the server.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import make_msgid
from pathlib import Path

import pytest
from imapclient import IMAPClient
from sqlmodel import func, select

from purchaseshare.config import Settings
from purchaseshare.db import session_scope
from purchaseshare.models import ImapState, Purchase, RawEmail, User
from purchaseshare.users import add_sender_address, create_user
from tests.helpers import CORPUS, IN_CI, ROOT
from tests.ingest.imap_proxy import FaultProxy
from tests.mailcopies import with_headers
from tests.services.servers import Dovecot, dovecot_server
from tests.wrapping import wrap
from workers import imap_poller
from workers.imap_poller import Backoff, parse_imap_url, run_poller

pytestmark = [pytest.mark.services, pytest.mark.corpus]

# Order/receipt emails from the corpus, each a different order, all between 5 and 60 KB.
ORDERS = [
    "apple/lunchmoney_example-1.eml", "apple/lunchmoney_example-2.eml", "apple/lunchmoney_example-3.eml",
    "apple/lunchmoney_example-4.eml", "twitch/bits.eml", "southwest/receipt-1.eml", "booking/receipt-usd.eml",
    "steam/lunchmoney_example-1.eml",
]
ORDER_NUMBERS = {"MKB829F3Z6", "MKB6L2SQDZ", "MKB71J8Z7S", "MKB8NJ0S37", "696026438", "2CEPA9", "4747949088",
                 "201111111111111111"}
FORWARDER = "alice@example.org"


def corpus_email(local_path: str) -> bytes:
    path = CORPUS / local_path
    if not path.exists():
        message = f"corpus email missing: {path}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path.read_bytes()


@dataclass
class Mailbox:
    """A fresh Dovecot user."""

    host: str
    port: int
    user: str
    password: str

    @classmethod
    def of(cls, server: Dovecot) -> Mailbox:
        """The server's own (first) user."""
        return cls("127.0.0.1", server.port, server.user, server.password)

    def url(self, folder: str = "INBOX", port: int | None = None) -> str:
        return f"imap://{self.user}:{self.password}@{self.host}:{port or self.port}/{folder}"

    def client(self) -> IMAPClient:
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=30)
        client.login(self.user, self.password)
        return client

    def append(self, folder: str, *messages: bytes) -> None:
        with self.client() as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            for raw in messages:
                client.append(folder, raw)

    def count(self, folder: str) -> int:
        with self.client() as client:
            if not client.folder_exists(folder):
                return 0
            client.select_folder(folder, readonly=True)
            return len(client.search("ALL"))


@pytest.fixture(scope="module")
def mail_users(dovecot_service) -> list[tuple[str, str]]:
    """Fresh Dovecot users for this module's tests, written at once: Dovecot re-reads its
    passwd-file at most once a second, and a login that fails first costs seconds of penalty."""
    users = [(f"t{uuid.uuid4().hex[:12]}", uuid.uuid4().hex) for _ in range(24)]
    dovecot_service.add_users(users)
    time.sleep(1.1)
    return users


@pytest.fixture
def mailbox(dovecot_service, mail_users) -> Mailbox:
    user, password = mail_users.pop()
    box = Mailbox("127.0.0.1", dovecot_service.port, user, password)
    deadline = time.monotonic() + 15
    while True:  # in case Dovecot's auth process has not read the new lines yet
        try:
            box.client().logout()
            return box
        except IMAPClient.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="module")
def basic_imap_server() -> Iterator[Mailbox]:
    """A second Dovecot that offers neither IDLE nor MOVE (like many older servers)."""
    no_idle_or_move = "imap_capability = IMAP4rev1 LITERAL+ SASL-IR ENABLE UIDPLUS\n"
    with dovecot_server("basic", "basic", extra_conf=no_idle_or_move) as server:
        yield Mailbox.of(server)


@pytest.fixture
def worker(settings) -> Iterator[None]:
    from workers import broker

    if not broker.IN_PROCESS:
        pytest.fail("these tests expect the in-process broker (REDIS_URL unset)")
    broker.start_in_process_worker()
    try:
        yield
    finally:
        broker.stop_in_process_worker()


@pytest.fixture
def fast_backoff(monkeypatch) -> None:
    """Reconnect within a tenth of a second (the production base is half a second, capped at 60)."""
    monkeypatch.setattr(imap_poller, "BACKOFF_BASE", 0.05)
    monkeypatch.setattr(imap_poller, "BACKOFF_CAP", 1.0)


@dataclass
class Owner:
    id: int
    token_address: str


def make_owner(settings: Settings) -> Owner:
    with session_scope(settings) as session:
        user = create_user(session, "alice")
        add_sender_address(session, user, FORWARDER, verified=True)
        session.commit()
        assert user.id is not None
        return Owner(user.id, settings.forwarding_address(user.forwarding_token))


def to_token(owner: Owner, local_path: str) -> bytes:
    """As our MX delivers mail sent (or auto-forwarded) to the user's secret plus-address."""
    return with_headers(corpus_email(local_path), {"Delivered-To": owner.token_address,
                                                   "Message-ID": make_msgid(domain="corpus.test")})


def forwarded(local_path: str) -> bytes:
    """Forwarded by hand from a verified address, DKIM-checked by our MX."""
    original = with_headers(corpus_email(local_path), {"Message-ID": make_msgid(domain="corpus.test")})
    raw = wrap(original, "gmail", FORWARDER)
    return with_headers(raw, {"Authentication-Results": "mx.purchaseshare.test; dkim=pass header.d=example.org"})


def poller_settings(settings: Settings, url: str, **extra: object) -> Settings:
    return settings.model_copy(update={"imap_url": url, **extra})


def wait_until(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def db_counts(settings: Settings) -> dict[str, int]:
    with session_scope(settings) as session:
        raws = session.exec(select(RawEmail)).all()
        return {
            "raw": len(raws),
            "received": sum(1 for r in raws if r.status == "received"),
            "distinct_sha": len({r.sha256 for r in raws}),
            "purchases": session.exec(select(func.count()).select_from(Purchase)).one(),
        }


def settle(settings: Settings, raws: int, timeout: float = 30.0) -> dict[str, int]:
    """Until `raws` raw emails are stored and every one of them reached a final status."""
    from workers import broker

    wait_until(lambda: (c := db_counts(settings))["raw"] >= raws and c["received"] == 0, timeout,
               f"{raws} raw emails in a final status (now {db_counts(settings)})")
    broker.wait_in_process(timeout_ms=30_000)
    return db_counts(settings)


def purchases_of(settings: Settings) -> list[Purchase]:
    with session_scope(settings) as session:
        return list(session.exec(select(Purchase).order_by(Purchase.id)).all())


def statuses(settings: Settings) -> list[str]:
    with session_scope(settings) as session:
        return sorted(r.status for r in session.exec(select(RawEmail)).all())


def test_imap_url_is_parsed_with_decoded_credentials_and_default_folder():
    target = parse_imap_url("imaps://me%40example.org:p%3Ass%2Fw@mail.example.org/Receipts%20In")
    assert (target.secure, target.host, target.port) == (True, "mail.example.org", 993)
    assert (target.user, target.password, target.folder) == ("me@example.org", "p:ss/w", "Receipts In")
    assert target.account == "me@example.org@mail.example.org:993"
    plain = parse_imap_url("imap://inbox:secret@127.0.0.1:1143")
    assert (plain.secure, plain.port, plain.folder) == (False, 1143, "INBOX")
    with pytest.raises(ValueError):
        parse_imap_url("pop3://u:p@host/INBOX")


def test_backoff_grows_is_capped_and_jittered():
    backoff = Backoff(base=0.5, cap=60.0)
    delays = [backoff.next_delay() for _ in range(12)]
    assert 0.25 <= delays[0] <= 0.5 and 4.0 <= delays[4] <= 8.0  # doubles ...
    assert all(30.0 <= d <= 60.0 for d in delays[8:])  # ... up to the cap, jittered by up to half
    assert len(set(delays[8:])) > 1
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_poll_once_stores_attributes_and_moves_every_message(settings, mailbox, worker):
    owner = make_owner(settings)
    by_token = [to_token(owner, path) for path in ORDERS[:5]]
    by_sender = [forwarded(path) for path in ORDERS[5:]]
    stranger = with_headers(corpus_email(ORDERS[0]), {"Message-ID": make_msgid(domain="stranger.test")})
    empty = b"\r\n"  # nothing to read: stored as failed and moved to Failed
    mailbox.append("INBOX", *by_token, *by_sender, stranger, empty)

    run_poller(poller_settings(settings, mailbox.url()), once=True)
    counts = settle(settings, 10)

    assert counts == {"raw": 10, "received": 0, "distinct_sha": 10, "purchases": 8}
    assert statuses(settings) == ["failed"] + ["parsed"] * 8 + ["quarantined"]
    purchases = purchases_of(settings)
    assert {p.user_id for p in purchases} == {owner.id}
    assert {p.order_number for p in purchases} == ORDER_NUMBERS
    with session_scope(settings) as session:
        rows = session.exec(select(RawEmail).order_by(RawEmail.id)).all()
        account = f"{mailbox.user}@127.0.0.1:{mailbox.port}"
        assert [r.source for r in rows] == [f"imap://{account}/INBOX;uid={uid}" for uid in range(1, 11)]
        assert [r.envelope_to for r in rows[:5]] == [owner.token_address] * 5
        assert [r.attributed_by for r in rows[:8]] == ["token"] * 5 + ["sender"] * 3
        assert rows[8].status == "quarantined" and rows[8].user_id is None and rows[8].purchase_id is None
        assert rows[9].status == "failed" and "empty" in rows[9].reason
        state = session.exec(select(ImapState)).one()
        assert (state.account, state.folder, state.last_uid) == (account, "INBOX", 10)
    assert (mailbox.count("INBOX"), mailbox.count("Processed"), mailbox.count("Failed")) == (0, 9, 1)

    # Nothing new: a second pass stores nothing and moves nothing.
    run_poller(poller_settings(settings, mailbox.url()), once=True)
    assert db_counts(settings)["raw"] == 10
    assert (mailbox.count("Processed"), mailbox.count("Failed")) == (9, 1)


def test_connection_cut_mid_fetch_again_and_again(settings, mailbox, worker, fast_backoff):
    owner = make_owner(settings)
    messages = [to_token(owner, path) for path in ORDERS]
    mailbox.append("INBOX", *messages)
    with FaultProxy(mailbox.port) as proxy:
        # Every connection dies after 100 KB from the server: more than any one message (plus
        # login), far less than all eight. Only a poller that resumes (and asks for less) gets through.
        proxy.cut_after = 100_000
        run_poller(poller_settings(settings, mailbox.url(port=proxy.port)), once=True)
        assert proxy.cuts >= 3, proxy.cuts
        assert proxy.connections > proxy.cuts
    counts = settle(settings, 8)
    assert counts == {"raw": 8, "received": 0, "distinct_sha": 8, "purchases": 8}
    assert {p.order_number for p in purchases_of(settings)} == ORDER_NUMBERS
    assert (mailbox.count("INBOX"), mailbox.count("Processed")) == (0, 8)


def test_connection_cut_mid_idle(settings, mailbox, worker, fast_backoff):
    owner = make_owner(settings)
    messages = [to_token(owner, path) for path in ORDERS]
    mailbox.append("INBOX", *messages[:3])
    stop = threading.Event()
    with FaultProxy(mailbox.port) as proxy:
        # A long IDLE interval: only noticing the cut itself gets the later mail in time.
        config = poller_settings(settings, mailbox.url(port=proxy.port), imap_idle_seconds=60)
        thread = threading.Thread(target=run_poller, args=(config,), kwargs={"stop": stop}, daemon=True)
        thread.start()
        try:
            settle(settings, 3)
            proxy.wait_for_client(b"IDLE\r\n")
            mailbox.append("INBOX", messages[3])  # IDLE itself brings this one
            settle(settings, 4, timeout=10)
            assert proxy.connections == 1
            proxy.wait_for_client(b"IDLE\r\n")
            assert proxy.drop_all() == 1
            mailbox.append("INBOX", *messages[4:])
            counts = settle(settings, 8, timeout=15)
            assert proxy.connections >= 2
        finally:
            stop.set()
            thread.join(10)
        assert not thread.is_alive(), "the poller did not stop promptly"
    assert counts == {"raw": 8, "received": 0, "distinct_sha": 8, "purchases": 8}
    assert (mailbox.count("INBOX"), mailbox.count("Processed")) == (0, 8)


def test_uidvalidity_change_starts_again_without_duplicates(settings, mailbox, worker):
    owner = make_owner(settings)
    messages = [to_token(owner, path) for path in ORDERS[:4]]
    config = poller_settings(settings, mailbox.url("Feed"))
    mailbox.append("Feed", *messages[:3])
    run_poller(config, once=True)
    assert settle(settings, 3)["purchases"] == 3
    with session_scope(settings) as session:
        before = session.exec(select(ImapState)).one()
    assert before.last_uid == 3

    # The server renumbers the folder: delete it, create it again, deliver the same three
    # (already stored) and one new; their UIDs start again at 1, below our last_uid.
    with mailbox.client() as client:
        client.delete_folder("Feed")
        client.create_folder("Feed")
        uidvalidity = client.select_folder("Feed")[b"UIDVALIDITY"]
    assert uidvalidity != before.uidvalidity
    mailbox.append("Feed", *messages)
    run_poller(config, once=True)
    counts = settle(settings, 4)
    assert counts == {"raw": 4, "received": 0, "distinct_sha": 4, "purchases": 4}
    with session_scope(settings) as session:
        after = session.exec(select(ImapState)).one()
    assert (after.uidvalidity, after.last_uid) == (uidvalidity, 4)
    assert (mailbox.count("Feed"), mailbox.count("Processed")) == (0, 7)


def test_same_email_delivered_three_times_through_the_cli(settings, mailbox, worker, monkeypatch):
    owner = make_owner(settings)
    raw = to_token(owner, ORDERS[4])
    mailbox.append("INBOX", raw, raw, raw)
    env = {**os.environ, "IMAP_URL": mailbox.url()}
    result = subprocess.run([sys.executable, "-m", "purchaseshare.cli", "poll", "--once"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (mailbox.count("INBOX"), mailbox.count("Processed")) == (0, 3)
    with session_scope(settings) as session:
        rows = session.exec(select(RawEmail)).all()
    # Stored once, and parsed by the command's own in-process worker (no REDIS_URL) before it returned.
    assert [(r.status, r.source.rsplit(";", 1)[1]) for r in rows] == [("parsed", "uid=1")]
    counts = settle(settings, 1)
    assert counts == {"raw": 1, "received": 0, "distinct_sha": 1, "purchases": 1}
    purchase = purchases_of(settings)[0]
    assert (purchase.user_id, purchase.order_number) == (owner.id, "696026438")
    with session_scope(settings) as session:
        assert session.exec(select(func.count()).select_from(User)).one() == 1
    assert re.fullmatch(r"imap://t\w+@127\.0\.0\.1:\d+/INBOX;uid=1", rows[0].source)


def test_without_idle_or_move_it_polls_and_copies(settings, basic_imap_server, worker):
    box = basic_imap_server
    folder = f"In{uuid.uuid4().hex[:8]}"  # the server is shared by both database runs
    owner = make_owner(settings)
    messages = [to_token(owner, path) for path in ORDERS[:5]]
    box.append(folder, *messages[:3])
    processed_before = box.count("Processed")
    stop = threading.Event()
    config = poller_settings(settings, box.url(folder), imap_poll_seconds=0.3)
    thread = threading.Thread(target=run_poller, args=(config,), kwargs={"stop": stop}, daemon=True)
    thread.start()
    try:
        settle(settings, 3)
        box.append(folder, *messages[3:])  # found by the next poll
        counts = settle(settings, 5, timeout=15)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert counts == {"raw": 5, "received": 0, "distinct_sha": 5, "purchases": 5}
    # COPY + \Deleted + UID EXPUNGE: gone from the folder (not just flagged), all in Processed.
    assert (box.count(folder), box.count("Processed") - processed_before) == (0, 5)


@pytest.fixture(scope="module")
def tls_imap_server() -> Iterator[tuple[Mailbox, Path]]:
    """A Dovecot that speaks only IMAPS, with a throwaway self-signed certificate for 127.0.0.1."""
    with dovecot_server("secure", "secure", tls=True) as server:
        yield Mailbox.of(server), server.cert


def test_imaps_with_the_servers_own_certificate(settings, tls_imap_server, worker):
    import ssl

    box, cert = tls_imap_server
    folder = f"In{uuid.uuid4().hex[:8]}"  # the server is shared by both database runs
    trusted = ssl.create_default_context(cafile=str(cert))
    with IMAPClient(box.host, port=box.port, ssl=True, ssl_context=trusted, timeout=30) as client:
        client.login(box.user, box.password)
        client.create_folder(folder)
        owner = make_owner(settings)
        for path in ORDERS[:2]:
            client.append(folder, to_token(owner, path))
    url = f"imaps://{box.user}:{box.password}@{box.host}:{box.port}/{folder}"
    # Not trusted (the system's CAs only): the poller refuses the connection rather than log in.
    untrusted = imap_poller.Poller(poller_settings(settings, url), threading.Event())
    with pytest.raises(ssl.SSLCertVerificationError):
        untrusted.connect()
    run_poller(poller_settings(settings, url, imap_ca_file=str(cert)), once=True)
    counts = settle(settings, 2)
    assert counts == {"raw": 2, "received": 0, "distinct_sha": 2, "purchases": 2}
    with session_scope(settings) as session:
        sources = [row.source for row in session.exec(select(RawEmail)).all()]
    assert all(source.startswith(f"imap://secure@127.0.0.1:{box.port}/{folder};uid=") for source in sources)
