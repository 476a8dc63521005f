"""Issue 11.2: raw emails are de-duplicated per owner. Against the real server (`site`), on SQLite
and PostgreSQL: an upload carrying a quarantined email's Message-ID gets nothing of it (answer,
rows, export); a Message-ID uploaded first cannot squat someone's real order; the upload answer
is the same whether or not a Message-ID exists elsewhere; two people adding the same order each
get a purchase; the same user adding it twice gets one row. Migration 0004 is tested from 0003
with rows in it."""

from __future__ import annotations

import io
import re
import time
import uuid
import zipfile
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from sqlmodel import select

from purchaseshare.attribution import read_headers
from purchaseshare.db import alembic_config, make_engine, session_scope
from purchaseshare.mailstore import Incoming, dedup_scope, message_key, store_raw, store_raws
from purchaseshare.models import Purchase, RawEmail, RawStatus, User
from purchaseshare.processing import process_raw_email
from purchaseshare.users import create_user
from tests.conftest import DATABASES
from tests.mailcopies import with_headers
from tests.security.conftest import Site, post_form

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures/emails"
AMAZON = (FIXTURES / "amazon/amazon_1.eml").read_bytes()
EBAY = (FIXTURES / "ebay/ebay_1.eml").read_bytes()
CARD, STREET = "4111 1111 1111 1111", "742 Evergreen Terrace"
RESULTS = re.compile(r'<section class="card" aria-labelledby="results-title">.*?</section>', re.DOTALL)
DEADLINE = 30.0  # seconds for the server's worker to read an upload


def _victim_email(message_id: str) -> bytes:
    """An order confirmation full of personal data, from a sender nobody verified: quarantined."""
    message = EmailMessage()
    message["From"] = "Trail Shop <orders@trailshop.test>"
    message["To"] = "vicky@home.test"
    message["Date"] = "Tue, 01 Dec 2026 09:30:00 +0000"
    message["Subject"] = "Your order ORD-77001"
    message["Message-ID"] = message_id
    message.set_content(f"Thank you, Vicky Victim.\nShip to: {STREET}, Springfield OR 97403\n"
                        f"Paid with card {CARD}\nTrail mug  $12.00\nTotal $12.00\n")
    return message.as_bytes()


def _probe(message_id: str, *, like: bytes | None = None) -> bytes:
    """The attacker's tiny file: the given Message-ID, and (with `like`) every other header of
    that email too, sender, date and recipients included; the body is the attacker's own."""
    head = b"From: mallory@attacker.test\nTo: mallory@attacker.test\nDate: Tue, 01 Dec 2026 09:30:00 +0000\n"
    if like is not None:
        head = like.partition(b"\n\n")[0] + b"\n"
        head = re.sub(rb"(?m)^Message-ID:.*\n", b"", head)
    return head + f"Message-ID: {message_id}\nSubject: hello\n\nnothing to see\n".encode()


def _arrives_by_imap(settings, raw: bytes) -> RawEmail:
    """The IMAP door: stored before anyone knows whose it is, then attributed and read."""
    with session_scope(settings) as session:
        (stored,) = store_raws(session, [Incoming(raw, f"imap://inbox/INBOX;uid={uuid.uuid4().int % 10**6}")])
    process_raw_email(stored.raw_email.id, settings)
    with session_scope(settings) as session:
        return session.get(RawEmail, stored.raw_email.id)


def _upload(client: httpx.Client, *files: tuple[str, bytes]) -> httpx.Response:
    return post_form(client, "/upload", files=[("files", (name, data, "message/rfc822")) for name, data in files],
                     page="/upload")


def _signed_in(site: Site, handle: str) -> tuple[User, httpx.Client]:
    user = site.make_user(handle)
    client = site.client()
    site.log_in(client, handle)
    return user, client


def _rows(settings, user_id: int | None) -> list[RawEmail]:
    with session_scope(settings) as session:
        return list(session.exec(select(RawEmail).where(RawEmail.user_id == user_id).order_by(RawEmail.id)).all())


def _read(settings, user: User, count: int) -> list[RawEmail]:
    """The user's `count` raw emails once the server's worker has read them all."""
    deadline = time.monotonic() + DEADLINE
    while True:
        rows = _rows(settings, user.id)
        if len(rows) >= count and all(RawStatus(row.status).is_final for row in rows):
            assert len(rows) == count
            return rows
        assert time.monotonic() < deadline, [(row.id, row.status) for row in rows]
        time.sleep(0.1)


def _export_text(client: httpx.Client) -> bytes:
    response = client.get("/settings/export")
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return b"\n".join(archive.read(name) for name in archive.namelist())


def _purchases(settings, user: User) -> list[Purchase]:
    with session_scope(settings) as session:
        return list(session.exec(select(Purchase).where(Purchase.user_id == user.id)).all())


def test_an_upload_with_a_quarantined_emails_message_id_takes_nothing(site: Site):
    settings = site.settings
    message_id = "<order-77001@trailshop.test>"
    victim_raw = _victim_email(message_id)
    quarantined = _arrives_by_imap(settings, victim_raw)
    assert quarantined.status == RawStatus.QUARANTINED.value and quarantined.user_id is None

    mallory, client = _signed_in(site, "mallory")
    bare, dressed = _probe(message_id), _probe(message_id, like=victim_raw)
    assert b"orders@trailshop.test" in dressed and b"Tue, 01 Dec 2026 09:30:00" in dressed
    response = _upload(client, ("a.eml", bare), ("b.eml", dressed))
    assert response.status_code == 200
    section = RESULTS.search(response.text).group(0)
    assert section.count("queued") == 2 and CARD not in response.text and "Vicky" not in response.text

    # Mallory got two rows of her own, with her own bytes; the quarantined email is untouched.
    rows = _read(settings, mallory, 2)
    assert sorted(row.raw for row in rows) == sorted([bare, dressed])
    assert all(row.id != quarantined.id and row.purchase_id is None for row in rows)
    with session_scope(settings) as session:
        still = session.get(RawEmail, quarantined.id)
        assert (still.user_id, still.status, still.raw) == (None, RawStatus.QUARANTINED.value, victim_raw)
    # Nothing of it reaches her pages or her export; her own upload does (the export reads emails).
    assert CARD not in client.get("/emails", headers={"accept": "text/html"}).text
    exported = _export_text(client)
    assert b"nothing to see" in exported
    assert CARD.encode() not in exported and STREET.encode() not in exported and b"Vicky" not in exported


def test_the_upload_answer_is_the_same_whether_the_message_id_exists_or_not(site: Site):
    settings = site.settings
    quarantined_id = "<held-1@trailshop.test>"
    _arrives_by_imap(settings, _victim_email(quarantined_id))
    bob, bob_client = _signed_in(site, "bob")
    bobs_id = "<bobs-order@trailshop.test>"
    assert _upload(bob_client, ("order.eml", _victim_email(bobs_id))).status_code == 200
    _read(settings, bob, 1)

    _, client = _signed_in(site, "mallory")
    answers = []
    for message_id in (quarantined_id, bobs_id, f"<never-seen-{uuid.uuid4().hex}@trailshop.test>"):
        response = _upload(client, ("probe.eml", _probe(message_id)))
        answers.append((response.status_code, RESULTS.search(response.text).group(0)))
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == 200 and "queued" in answers[0][1]
    # What reading them says later is the same too.
    with session_scope(settings) as session:
        user = session.exec(select(User).where(User.handle == "mallory")).one()
    outcomes = {(row.status, row.reason, row.purchase_id) for row in _read(settings, user, 3)}
    assert len(outcomes) == 1


def test_a_squatted_message_id_does_not_drop_the_real_order(site: Site):
    settings = site.settings
    vicky, vicky_client = _signed_in(site, "vicky")
    _, mallory_client = _signed_in(site, "mallory")
    # The real order, as Vicky's mail will bring it: through her forwarding address.
    real = with_headers(AMAZON, {"Delivered-To": settings.forwarding_address(vicky.forwarding_token),
                                 "Message-ID": "<future-order@email.amazonses.com>"})
    # Mallory squats its Message-ID first, bare and with all of its headers copied.
    squat = (("bare.eml", _probe("<future-order@email.amazonses.com>")),
             ("dressed.eml", _probe("<future-order@email.amazonses.com>", like=real)))
    assert _upload(mallory_client, *squat).status_code == 200

    by_imap = _arrives_by_imap(settings, real)
    assert (by_imap.user_id, by_imap.status) == (vicky.id, RawStatus.PARSED.value) and by_imap.purchase_id
    # Uploaded by hand too: her own copy, which is the same order (linked to it, not dropped).
    response = _upload(vicky_client, ("order.eml", real))
    assert response.status_code == 200 and "already received (parsed)" in RESULTS.search(response.text).group(0)
    (purchase,) = _purchases(settings, vicky)
    assert purchase.id == by_imap.purchase_id and purchase.total is not None
    with session_scope(settings) as session:
        mallory = session.exec(select(User).where(User.handle == "mallory")).one()
    assert _purchases(settings, mallory) == []

    # The same through the upload door: Mallory squats another order, then Vicky uploads it.
    other = with_headers(EBAY, {"Message-ID": "<next-order@ebay.test>"})
    assert _upload(mallory_client, ("squat.eml", _probe("<next-order@ebay.test>", like=other))).status_code == 200
    assert "queued" in RESULTS.search(_upload(vicky_client, ("next.eml", other)).text).group(0)
    rows = _read(settings, vicky, 2)
    assert [row.status for row in rows] == [RawStatus.PARSED.value] * 2
    assert len(_purchases(settings, vicky)) == 2 and _purchases(settings, mallory) == []


def test_two_people_adding_the_same_order_each_get_it_and_twice_is_once(site: Site):
    settings = site.settings
    alice, alice_client = _signed_in(site, "alice")
    bob, bob_client = _signed_in(site, "bob")
    for client in (alice_client, bob_client):
        response = _upload(client, ("order.eml", AMAZON))
        assert response.status_code == 200 and "queued" in RESULTS.search(response.text).group(0)
    again = _upload(alice_client, ("copy.eml", AMAZON), ("copy2.eml", AMAZON))
    assert RESULTS.search(again.text).group(0).count("already received") == 2
    for user in (alice, bob):
        (row,) = _read(settings, user, 1)
        (purchase,) = _purchases(settings, user)
        assert row.raw == AMAZON and row.status == RawStatus.PARSED.value and row.purchase_id == purchase.id
        assert purchase.original_message_id == "0100018f983639554540@email.amazonses.com"


# --- the store itself (no server) -----------------------------------------------------------------


def _user(session, handle: str) -> User:
    user = create_user(session, handle, email=f"{handle}@example.org")
    session.commit()
    return user


def test_the_same_order_forwarded_to_two_households_by_imap_is_two_purchases(settings, session):
    alice, bob = _user(session, "alice"), _user(session, "bob")
    # One merchant email (same Message-ID, sender, date) auto-forwarded by each of them.
    to_alice, to_bob = (with_headers(AMAZON, {"Delivered-To": settings.forwarding_address(user.forwarding_token)})
                        for user in (alice, bob))
    first, second = _arrives_by_imap(settings, to_alice), _arrives_by_imap(settings, to_bob)
    assert (first.user_id, second.user_id) == (alice.id, bob.id)
    assert first.status == second.status == RawStatus.PARSED.value and first.purchase_id != second.purchase_id
    # The same delivery fetched again (a UIDVALIDITY change): nothing twice.
    again = store_raws(session, [Incoming(to_alice, "imap://refetch"), Incoming(to_bob, "imap://refetch")])
    assert [(s.created, s.raw_email.id) for s in again] == [(False, first.id), (False, second.id)]
    assert len(session.exec(select(RawEmail)).all()) == 2


def test_rows_of_different_scopes_never_collide_when_attributed_later(settings, session):
    alice, bob = _user(session, "alice"), _user(session, "bob")
    raw = with_headers(AMAZON, {"Delivered-To": settings.forwarding_address(alice.forwarding_token)})
    # Bob holds these very bytes first (upload / `ingest --user`); then they reach Alice by IMAP.
    bobs = store_raw(session, raw, source="file:order.eml", user_id=bob.id, attributed_by="cli")
    assert bobs.created and bobs.raw_email.dedup_scope == dedup_scope(bob.id)
    alices = _arrives_by_imap(settings, raw)
    assert alices.id != bobs.raw_email.id and alices.dedup_scope == "inbox"
    assert (alices.user_id, alices.status) == (alice.id, RawStatus.PARSED.value)
    process_raw_email(bobs.raw_email.id, settings)
    with session_scope(settings) as other:
        owners = sorted(p.user_id for p in other.exec(select(Purchase)).all())
    assert owners == sorted([alice.id, bob.id])
    # Alice's own inbox row counts as hers when she adds the email by hand: no second row.
    mine = store_raw(session, raw, source="upload:order.eml", user_id=alice.id, attributed_by="upload")
    assert not mine.created and mine.raw_email.id == alices.id


# --- migration 0004 from 0003, with rows --------------------------------------------------------


@pytest.fixture(params=DATABASES)
def empty_database(request, tmp_path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_service").create_database(f"m{uuid.uuid4().hex[:12]}")
    return f"sqlite:///{tmp_path / 'migrate.db'}"


def test_migration_0004_keeps_rows_and_scopes_them(empty_database):
    engine = make_engine(empty_database)
    try:
        config = alembic_config(engine)
        command.upgrade(config, "0003")
        ada_raw = with_headers(AMAZON, {"Message-ID": "<ada@shop.test>"})
        imap_raw = with_headers(AMAZON, {"Message-ID": "<imap@shop.test>", "Delivered-To": "receipts+tok@x.test"})
        held_raw = _victim_email("<held@trailshop.test>")
        with engine.begin() as db:
            db.execute(sa.text("INSERT INTO \"user\" (id, handle, display_name, forwarding_token, bio, "
                               "session_version, default_share_items, allow_indexing, is_operator, created_at) "
                               "VALUES (7, 'ada', '', 'tok', '', 0, false, false, false, CURRENT_TIMESTAMP)"))
            insert = sa.text("INSERT INTO raw_email (id, sha256, message_id, raw, size, source, user_id, "
                             "attributed_by, status, attempts, received_at) VALUES (:id, :sha, :mid, :raw, 1, "
                             "'s', :user, :by, :status, 0, CURRENT_TIMESTAMP)")
            db.execute(insert, [
                {"id": 1, "sha": "a" * 64, "mid": "<ada@shop.test>", "raw": ada_raw, "user": 7, "by": "upload",
                 "status": "parsed"},
                {"id": 2, "sha": "b" * 64, "mid": "<imap@shop.test>", "raw": imap_raw, "user": 7, "by": "token",
                 "status": "parsed"},
                {"id": 3, "sha": "c" * 64, "mid": "<held@trailshop.test>", "raw": held_raw, "user": None, "by": None,
                 "status": "quarantined"},
                {"id": 4, "sha": "d" * 64, "mid": "<purged@shop.test>", "raw": None, "user": 7, "by": "cli",
                 "status": "parsed"},
            ])
        command.upgrade(config, "0004")
        with engine.connect() as db:
            rows = db.execute(sa.text("SELECT id, dedup_scope, message_key, raw, user_id FROM raw_email "
                                      "ORDER BY id")).all()
        assert [(r.id, r.dedup_scope, r.user_id) for r in rows] == [
            (1, "user:7", 7), (2, "inbox", 7), (3, "inbox", None), (4, "user:7", 7)]
        assert [r.message_key for r in rows] == [message_key(read_headers(raw)) for raw in (ada_raw, imap_raw, held_raw)] + [None]
        assert bytes(rows[0].raw) == ada_raw and bytes(rows[2].raw) == held_raw
        # The new keys: per scope. The same sha256 in another scope is fine; in the same, refused.
        insert = sa.text("INSERT INTO raw_email (id, dedup_scope, sha256, message_key, size, source, status, "
                         "attempts, received_at) VALUES (:id, :scope, :sha, :key, 1, 's', 'received', 0, "
                         "CURRENT_TIMESTAMP)")
        with engine.begin() as db:
            db.execute(insert, {"id": 5, "scope": "user:8", "sha": "c" * 64, "key": rows[2].message_key})
        for clash in ({"id": 6, "scope": "inbox", "sha": "c" * 64, "key": None},
                      {"id": 6, "scope": "user:7", "sha": "e" * 64, "key": rows[0].message_key}):
            with pytest.raises(sa.exc.IntegrityError), engine.begin() as db:
                db.execute(insert, clash)
    finally:
        engine.dispose()
