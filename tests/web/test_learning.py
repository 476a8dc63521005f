"""Teach it once (issue 14): an owner's correction on the web teaches the sender's layout; the
next email of that layout is read right without help; a template reads its teachers' mail only
until two users' corrections agree; it shows no value of anyone's email to anyone else; it goes
with the account. Real processing, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import random
import re
from decimal import Decimal

from sqlmodel import select

from purchaseshare import learning
from purchaseshare.account import delete_account
from purchaseshare.db import session_scope
from purchaseshare.models import Purchase, PurchaseItem, Template, TemplateTeacher
from purchaseshare.reparse import reparse_raw_email
from tests.parsers.test_templates import _order
from tests.web.conftest import log_in, make_user, post, receive

HTML = {"accept": "text/html"}


def shop_email(seed: int) -> tuple[bytes, object]:
    """The shop's receipt with a "Total" line: the generic reader gets the total, but reads its
    "Goods", "Carriage" and "Duty" lines as items and every quantity as 1."""
    rng = random.Random(seed)
    while True:
        raw, truth = _order(rng)
        if truth.shipping > 0:  # a carriage line to learn, in every email of these tests
            return raw.replace(b"Settled", b"Total"), truth


def items_of(settings, purchase_id: int) -> list[PurchaseItem]:
    with session_scope(settings) as session:
        return list(session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == purchase_id)
                                 .order_by(PurchaseItem.position, PurchaseItem.id)).all())


def purchase_of(settings, purchase_id: int) -> Purchase:
    with session_scope(settings) as session:
        return session.get(Purchase, purchase_id)


def correct_on_the_web(settings, client, purchase_id: int, truth) -> str:
    """What an owner does: remove the lines that are not items, fix each item's quantity and price."""
    page = f"/purchases/{purchase_id}"
    wanted = {item.name: item for item in truth.items}
    fields = {}
    for item in items_of(settings, purchase_id):
        if item.name not in wanted:
            assert post(client, f"{page}/items/{item.id}/remove", page=page).status_code == 303
            continue
        right = wanted[item.name]
        fields[f"item-{item.id}-quantity"] = str(right.quantity)
        fields[f"item-{item.id}-unit_price"] = str(right.unit_price)
    response = post(client, f"{page}/edit", fields, page=page)
    assert response.status_code == 303, response.text
    return client.get(page, headers=HTML).text


def test_one_correction_teaches_the_layout_and_the_next_receipt_reads_right(settings, client):
    alice = make_user(settings, "alice")
    log_in(client, "alice")
    first_raw, first = shop_email(1)
    taught = receive(settings, alice, first_raw).purchase_id
    assert purchase_of(settings, taught).parser == "generic"
    assert len(items_of(settings, taught)) > len(first.items)  # the breakdown lines were read as items

    page = correct_on_the_web(settings, client, taught, first)
    assert "The next receipts laid out like this one will be read the same way." in page

    with session_scope(settings) as session:
        [row] = session.exec(select(Template)).all()
        assert row.sender_domain == "kalomi-goods.com"
        stored = (row.anchors + row.signature).casefold()
    for item in first.items:  # a template holds no value of the email it was learned from
        assert item.name.casefold() not in stored and str(item.line_total) not in stored
    assert str(first.total) not in stored

    second_raw, second = shop_email(2)
    read = receive(settings, alice, second_raw).purchase_id
    purchase = purchase_of(settings, read)
    assert purchase.parser == "learned:kalomi-goods.com"
    assert (purchase.total, purchase.subtotal) == (second.total, second.subtotal)
    assert [(i.name, i.quantity, i.line_total) for i in items_of(settings, read)] == [
        (i.name, i.quantity, i.line_total) for i in second.items]
    with session_scope(settings) as session:
        assert session.exec(select(Template)).one().hits == 1


def test_a_template_is_shared_only_once_two_users_agree_and_leaks_nothing(settings, client, other_client):
    alice, bob, carol = (make_user(settings, name) for name in ("alice", "bob", "carol"))
    log_in(client, "alice")
    raw, truth = shop_email(3)
    correct_on_the_web(settings, client, receive(settings, alice, raw).purchase_id, truth)

    raw, truth = shop_email(4)
    bobs = receive(settings, bob, raw).purchase_id
    assert purchase_of(settings, bobs).parser == "generic"  # alice's template reads alice's mail only

    log_in(other_client, "bob")
    correct_on_the_web(settings, other_client, bobs, truth)
    with session_scope(settings) as session:
        [row] = session.exec(select(Template)).all()  # bob's correction agreed with alice's
        assert len(session.exec(select(TemplateTeacher).where(TemplateTeacher.template_id == row.id)).all()) == 2

    raw, truth = shop_email(5)
    carols = receive(settings, carol, raw).purchase_id
    assert purchase_of(settings, carols).parser == "learned:kalomi-goods.com"
    assert [i.name for i in items_of(settings, carols)] == [i.name for i in truth.items]

    # Canary: nothing of alice's or bob's emails reaches carol's purchase or any public page.
    canaries = {i.name for seed in (3, 4) for i in shop_email(seed)[1].items} - {i.name for i in truth.items}
    with session_scope(settings) as session:
        carol_text = json.dumps([repr(purchase_of(settings, carols)), [repr(i) for i in items_of(settings, carols)]])
    assert not any(name in carol_text for name in canaries)
    log_in(client, "carol")
    post(client, f"/purchases/{carols}/approve", page=f"/purchases/{carols}")
    public = purchase_of(settings, carols).public_id
    for path in ("/u/carol", f"/p/{public}", "/u/carol/feed.atom", "/api/v1/users/carol/purchases"):
        body = client.get(path).text
        assert not any(name in body for name in canaries), path


def test_templates_go_with_the_account_and_stay_with_the_other_teacher(settings, client, other_client):
    alice, bob = make_user(settings, "alice"), make_user(settings, "bob")
    log_in(client, "alice")
    log_in(other_client, "bob")
    for browser, user, seed in ((client, alice, 6), (other_client, bob, 7)):
        raw, truth = shop_email(seed)
        correct_on_the_web(settings, browser, receive(settings, user, raw).purchase_id, truth)

    export = client.get("/settings/export", headers=HTML)
    assert export.status_code == 200
    import io
    import zipfile

    archive = zipfile.ZipFile(io.BytesIO(export.content))
    [template] = json.loads(archive.read("templates.json"))
    assert template["sender_domain"] == "kalomi-goods.com"

    with session_scope(settings) as session:
        delete_account(session, session.get(type(alice), alice.id))
    with session_scope(settings) as session:
        assert len(session.exec(select(Template)).all()) == 1  # bob taught it too
        delete_account(session, session.get(type(bob), bob.id))
    with session_scope(settings) as session:
        assert session.exec(select(Template)).all() == []
        assert session.exec(select(TemplateTeacher)).all() == []


def test_a_template_that_keeps_missing_retires(settings, client):
    alice = make_user(settings, "alice")
    log_in(client, "alice")
    raw, truth = shop_email(8)
    correct_on_the_web(settings, client, receive(settings, alice, raw).purchase_id, truth)
    with session_scope(settings) as session:
        layouts = learning.usable(session, alice.id, "kalomi-goods.com")
        for _ in range(learning.RETIRE_AFTER):
            learning.record(session, [], layouts)
        session.commit()
        assert session.exec(select(Template)).one().retired
        assert learning.usable(session, alice.id, "kalomi-goods.com") == []


def test_catch_up_reads_the_owners_doubtful_emails_from_that_sender_again(settings, client):
    alice = make_user(settings, "alice")
    log_in(client, "alice")
    earlier_raw, earlier = shop_email(9)
    earlier_outcome = receive(settings, alice, earlier_raw)
    assert purchase_of(settings, earlier_outcome.purchase_id).confidence < learning.CATCH_UP_BELOW

    raw, truth = shop_email(10)
    page = correct_on_the_web(settings, client, receive(settings, alice, raw).purchase_id, truth)
    assert re.search(r"1 of your other emails from this sender (is|are) being read again", page)
    reparse_raw_email(earlier_outcome.raw_email_id, settings)  # what the queued actor runs
    again = purchase_of(settings, earlier_outcome.purchase_id)
    assert again.parser == "learned:kalomi-goods.com" and again.total == earlier.total
    assert [(i.name, i.quantity) for i in items_of(settings, again.id)] == [
        (i.name, i.quantity) for i in earlier.items]
    assert sum((i.line_total for i in items_of(settings, again.id)), Decimal(0)) == earlier.subtotal
