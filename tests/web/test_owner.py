"""The owner's side over HTTP, on SQLite and PostgreSQL: the inbox, approving item by item,
corrections, reject/delete, bulk approval, emails and retries, upload, manual entry, settings,
export and account deletion; and that nobody else can see or change any of it."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import SQLModel, select

from purchaseshare import public
from purchaseshare.db import session_scope
from purchaseshare.mailstore import store_raw
from purchaseshare.models import (
    Collection,
    CollectionItem,
    Comment,
    Follow,
    Like,
    LoginAttempt,
    Notification,
    OutboxMail,
    Purchase,
    PurchaseItem,
    RawEmail,
    Review,
    User,
)
from purchaseshare.processing import mark_failed
from purchaseshare.users import add_sender_address
from tests.web.conftest import PASSWORD, log_in, make_user, post, receive

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "emails"
AMAZON = (FIXTURES / "amazon" / "amazon_1.eml").read_bytes()  # 2 items, USD
APPLE = (FIXTURES / "apple" / "apple_1.eml").read_bytes()  # 2 items
EBAY = (FIXTURES / "ebay" / "ebay_1.eml").read_bytes()  # 2 items
HTML = {"accept": "text/html"}


@pytest.fixture
def worker(settings):
    """The in-process worker (no REDIS_URL), as the app runs it; tests wait for the queue to drain."""
    from workers import broker

    if not broker.IN_PROCESS:
        pytest.fail("these tests expect the in-process broker (REDIS_URL unset)")
    broker.start_in_process_worker()
    yield lambda: broker.wait_in_process(timeout_ms=30_000)
    broker.wait_in_process(timeout_ms=30_000)
    broker.stop_in_process_worker()


@pytest.fixture
def alice(settings, client):
    user = make_user(settings, "alice")
    log_in(client, "alice")
    return user


def items_of(settings, purchase_id: int) -> list[PurchaseItem]:
    with session_scope(settings) as session:
        return list(session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == purchase_id)
                                 .order_by(PurchaseItem.position)).all())


def get_purchase(settings, purchase_id: int) -> Purchase | None:
    with session_scope(settings) as session:
        return session.get(Purchase, purchase_id)


def snapshot(settings) -> dict[str, list[tuple]]:
    """Every row of every table: to prove a request changed nothing."""
    with session_scope(settings) as session:
        return {table.name: sorted(map(tuple, session.execute(sa_select(table)).all()), key=repr)
                for table in SQLModel.metadata.sorted_tables}


def counts(settings) -> dict[str, int]:
    with session_scope(settings) as session:
        return {table.name: session.execute(sa_select(func.count()).select_from(table)).scalar_one()
                for table in SQLModel.metadata.sorted_tables}


def test_received_email_is_in_the_inbox_private_and_as_parsed(settings, client, alice):
    outcome = receive(settings, alice, AMAZON)
    assert outcome.status == "parsed" and outcome.purchase_id
    page = client.get("/inbox", headers=HTML)
    assert page.status_code == 200
    text = page.text
    for expected in ("Amazon", "2018-03-06", "Stainless Steel French Press Coffee Maker, 34 oz", "27.99 USD",
                     "2 × Reusable Silicone Food Storage Bags (Pack of 6)", "12.99 USD", "58.69 USD",
                     f'href="/purchases/{outcome.purchase_id}"', 'href="/purchases"', "Private"):
        assert expected in text, expected
    assert [item.approved for item in items_of(settings, outcome.purchase_id)] == [False, False]
    purchase = get_purchase(settings, outcome.purchase_id)
    assert purchase.review == "new" and purchase.published_at is None
    # Newest first, and the purchase page shows every item with its state.
    second = receive(settings, alice, APPLE)
    text = client.get("/inbox", headers=HTML).text
    assert text.index(f"/purchases/{second.purchase_id}") < text.index(f"/purchases/{outcome.purchase_id}")
    detail = client.get(f"/purchases/{outcome.purchase_id}", headers=HTML)
    assert detail.status_code == 200 and "112-4820571-3396214" in detail.text  # the owner sees the order number
    assert detail.text.count('name="approved"') == 2
    assert client.get("/purchases", headers=HTML).status_code == 200


def test_inbox_is_paginated_newest_first(settings, client, alice):
    with session_scope(settings) as session:
        for number in range(21):
            session.add(Purchase(user_id=alice.id, merchant_name=f"Shop {number:02d}", currency="EUR"))
            session.commit()  # one by one: created_at orders them
    first = client.get("/inbox", headers=HTML).text
    assert first.count('name="ids"') == 20 and "Shop 20" in first and "Shop 00" not in first
    assert 'href="/inbox?page=2"' in first
    second = client.get("/inbox?page=2", headers=HTML).text
    assert second.count('name="ids"') == 1 and "Shop 00" in second and 'href="/inbox?page=1"' in second
    assert client.get("/inbox?page=0", headers=HTML).status_code == 422


def test_approve_one_item_of_two_then_unapprove_makes_it_private(settings, client, alice):
    purchase_id = receive(settings, alice, AMAZON).purchase_id
    first, second = items_of(settings, purchase_id)
    response = post(client, f"/purchases/{purchase_id}/items", {"approved": [str(first.id)]},
                    page=f"/purchases/{purchase_id}")
    assert response.status_code == 303
    first, second = items_of(settings, purchase_id)
    assert first.approved and first.approved_at is not None and not second.approved
    purchase = get_purchase(settings, purchase_id)
    published = purchase.published_at
    assert purchase.review == "reviewed" and published is not None
    with session_scope(settings) as session:
        owner = session.get(User, alice.id)
        shown = public.profile_page(session, owner)
    assert [[item.name for item in view.items] for view in shown] == [[first.name]]
    assert f'href="/purchases/{purchase_id}"' not in client.get("/inbox", headers=HTML).text
    assert f"/purchases/{purchase_id}" in client.get("/purchases", headers=HTML).text

    # Approve both, then none: published_at stays the first time; with nothing approved it is private.
    post(client, f"/purchases/{purchase_id}/items", {"approved": [str(first.id), str(second.id)]},
         page=f"/purchases/{purchase_id}")
    assert all(item.approved for item in items_of(settings, purchase_id))
    assert get_purchase(settings, purchase_id).published_at == published
    post(client, f"/purchases/{purchase_id}/items", {}, page=f"/purchases/{purchase_id}")
    assert not any(item.approved for item in items_of(settings, purchase_id))
    with session_scope(settings) as session:
        assert public.profile_page(session, session.get(User, alice.id)) == []


def test_approve_whole_purchase_and_bulk_approve(settings, client, alice):
    bob = make_user(settings, "bob")
    one = receive(settings, alice, AMAZON).purchase_id
    two = receive(settings, alice, APPLE).purchase_id
    three = receive(settings, alice, EBAY).purchase_id
    bobs = receive(settings, bob, (FIXTURES / "amazon" / "amazon_2.eml").read_bytes()).purchase_id
    response = post(client, f"/purchases/{one}/approve", page=f"/purchases/{one}")
    assert response.status_code == 303
    assert all(item.approved for item in items_of(settings, one))
    assert get_purchase(settings, one).review == "reviewed" and get_purchase(settings, one).published_at

    response = post(client, "/inbox/approve", {"ids": [str(two), str(three), str(bobs)]}, page="/inbox")
    assert response.status_code == 303
    for purchase_id in (two, three):
        assert all(item.approved for item in items_of(settings, purchase_id))
        assert get_purchase(settings, purchase_id).review == "reviewed"
    # Bob's purchase, slipped into the form, is untouched.
    assert not any(item.approved for item in items_of(settings, bobs))
    assert get_purchase(settings, bobs).review == "new"
    assert "Approved 2 purchases" in client.get("/inbox", headers=HTML).text


def test_hide_prices_and_caption(settings, client, alice):
    purchase_id = receive(settings, alice, AMAZON).purchase_id
    page = f"/purchases/{purchase_id}"
    assert post(client, f"{page}/hide-prices", {"hide_prices": "1"}, page=page).status_code == 303
    assert get_purchase(settings, purchase_id).hide_prices is True
    assert "Show prices" in client.get(page, headers=HTML).text
    post(client, f"{page}/hide-prices", {"hide_prices": "0"}, page=page)
    assert get_purchase(settings, purchase_id).hide_prices is False

    assert post(client, f"{page}/caption", {"caption": "  <b>My</b> new coffee setup  "}, page=page).status_code == 303
    assert get_purchase(settings, purchase_id).caption == "<b>My</b> new coffee setup"
    text = client.get(page, headers=HTML).text
    assert "&lt;b&gt;My&lt;/b&gt; new coffee setup" in text and "<b>My</b>" not in text
    too_long = post(client, f"{page}/caption", {"caption": "x" * 1001}, page=page)
    assert too_long.status_code == 400 and "at most 1000 characters" in too_long.text
    post(client, f"{page}/caption", {"caption": ""}, page=page)
    assert get_purchase(settings, purchase_id).caption is None


def test_correct_parsed_fields_with_validation(settings, client, alice):
    purchase_id = receive(settings, alice, AMAZON).purchase_id
    page = f"/purchases/{purchase_id}"
    first, second = items_of(settings, purchase_id)
    before = snapshot(settings)
    for data, message in [
        ({"currency": "EURO"}, "is not an ISO 4217 code"),
        ({"currency": "XYZ"}, "is not an ISO 4217 code"),
        ({"total": "12,3x"}, "total: enter an amount like 12.34"),
        ({"total": "-5"}, "not negative"),
        ({"total": "1e5"}, "total: enter an amount"),
        ({"order_date": "06/03/2018"}, "order date: enter a date as YYYY-MM-DD"),
        ({f"item-{first.id}-quantity": "0"}, "item 1 quantity: a whole number from 1"),
        ({f"item-{first.id}-name": "   "}, "item 1 name: required"),
        ({f"item-{second.id}-unit_price": "abc"}, "item 2 price: enter an amount"),
        ({f"item-{first.id}-url": "javascript:alert(1)"}, "item 1 link: enter a full http(s) address"),
        ({f"item-{first.id}-image": "http://img.example/a.jpg"}, "item 1 image: enter a full https address"),
    ]:
        response = post(client, f"{page}/edit", {"merchant_name": "Changed", **data}, page=page)
        assert response.status_code == 400, data
        assert message in response.text, (data, response.text[:2000])
        assert 'value="Changed"' in response.text  # what was typed is kept for fixing
    assert snapshot(settings) == before  # nothing half-saved

    response = post(client, f"{page}/edit", {
        "merchant_name": "Amazon US", "order_date": "2018-03-07", "currency": "eur", "total": "60.00",
        f"item-{first.id}-name": "French press", f"item-{first.id}-quantity": "3",
        f"item-{first.id}-unit_price": "10.50", f"item-{first.id}-url": "https://shop.example/press",
        f"item-{first.id}-image": "", f"item-{second.id}-name": second.name,
        f"item-{second.id}-quantity": "2", f"item-{second.id}-unit_price": "12.99",
    }, page=page)
    assert response.status_code == 303, response.text[:2000]
    purchase = get_purchase(settings, purchase_id)
    assert (purchase.merchant_name, purchase.order_date, purchase.currency, purchase.total) == (
        "Amazon US", date(2018, 3, 7), "EUR", Decimal("60.00"))
    first, second = items_of(settings, purchase_id)
    assert (first.name, first.quantity, first.unit_price, first.line_total, first.url, first.image) == (
        "French press", 3, Decimal("10.50"), Decimal("31.50"), "https://shop.example/press", None)
    assert (second.quantity, second.unit_price, second.line_total) == (2, Decimal("12.99"), Decimal("25.98"))
    assert not first.approved  # correcting shares nothing


def test_reject_then_delete_keeps_the_email(settings, client, alice, worker):
    outcome = receive(settings, alice, AMAZON)
    purchase_id = outcome.purchase_id
    page = f"/purchases/{purchase_id}"
    post(client, f"{page}/approve", page=page)
    assert post(client, f"{page}/reject", page=page).status_code == 303
    purchase = get_purchase(settings, purchase_id)
    assert purchase.review == "rejected" and not any(i.approved for i in items_of(settings, purchase_id))
    assert page not in client.get("/inbox", headers=HTML).text
    assert "Rejected" in client.get("/purchases", headers=HTML).text
    with session_scope(settings) as session:
        assert public.profile_page(session, session.get(User, alice.id)) == []

    # What others attached to it goes with it.
    bob = make_user(settings, "bob")
    first = items_of(settings, purchase_id)[0]
    with session_scope(settings) as session:
        comment = Comment(purchase_id=purchase_id, user_id=bob.id, body="nice")
        collection = Collection(user_id=bob.id, name="Picks", slug="picks")
        session.add_all([comment, collection, Like(user_id=bob.id, purchase_id=purchase_id),
                         Review(item_id=first.id, user_id=alice.id, rating=4)])
        session.flush()
        session.add_all([CollectionItem(collection_id=collection.id, item_id=first.id),
                         Notification(user_id=alice.id, actor_id=bob.id, kind="comment", purchase_id=purchase_id,
                                      comment_id=comment.id)])
        session.commit()
    left = counts(settings)
    assert post(client, f"{page}/delete", page=page).status_code == 303
    assert get_purchase(settings, purchase_id) is None and items_of(settings, purchase_id) == []
    after = counts(settings)
    for table, gone in [("purchase", 1), ("purchase_item", 2), ("comment", 1), ("like", 1), ("review", 1),
                        ("collection_item", 1), ("notification", 1), ("raw_email", 0), ("collection", 0)]:
        assert left[table] - after[table] == gone, table
    with session_scope(settings) as session:
        raw = session.get(RawEmail, outcome.raw_email_id)
    assert raw is not None and raw.raw == AMAZON and raw.purchase_id is None
    emails = client.get("/emails", headers=HTML).text
    assert "purchase deleted" in emails and f"/emails/{raw.id}/retry" in emails
    assert client.get(page, headers=HTML).status_code == 404
    # Reading the email again brings the purchase back to the inbox, private.
    assert post(client, f"/emails/{raw.id}/retry", page="/emails").status_code == 303
    worker()
    with session_scope(settings) as session:
        raw = session.get(RawEmail, outcome.raw_email_id)
        again = session.get(Purchase, raw.purchase_id)
    assert raw.status == "parsed" and again is not None and again.review == "new"
    assert not any(i.approved for i in items_of(settings, again.id))


def test_another_user_gets_404_everywhere_and_changes_nothing(settings, client, other_client, alice):
    outcome = receive(settings, alice, AMAZON)
    purchase_id, raw_id = outcome.purchase_id, outcome.raw_email_id
    with session_scope(settings) as session:
        failed = store_raw(session, b"From: a@b.example\nSubject: x\n\n", source="t", user_id=alice.id,
                           attributed_by="cli").raw_email
    first, _ = items_of(settings, purchase_id)
    make_user(settings, "mallory")
    log_in(other_client, "mallory")
    before = snapshot(settings)
    base = f"/purchases/{purchase_id}"
    assert other_client.get(base, headers=HTML).status_code == 404
    for path, data in [(f"{base}/approve", {}), (f"{base}/items", {"approved": [str(first.id)]}),
                       (f"{base}/hide-prices", {"hide_prices": "1"}), (f"{base}/caption", {"caption": "pwned"}),
                       (f"{base}/edit", {"merchant_name": "pwned", "currency": "EUR"}), (f"{base}/reject", {}),
                       (f"{base}/delete", {}), (f"/emails/{raw_id}/retry", {}), (f"/emails/{failed.id}/retry", {}),
                       (f"{base}/add-item", {"name": "pwned", "unit_price": "1.00"}),
                       (f"{base}/items/{first.id}/remove", {})]:
        response = post(other_client, path, data, page="/inbox")
        assert response.status_code == 404, path
    # Guessing ids that do not exist looks exactly the same; odd ids too.
    assert other_client.get("/purchases/999999", headers=HTML).status_code == 404
    assert other_client.get("/purchases/abc", headers=HTML).status_code == 404
    assert post(other_client, "/inbox/approve", {"ids": [str(purchase_id)]}, page="/inbox").status_code == 303
    # Nothing of Alice's shows in Mallory's lists.
    for path in ("/inbox", "/purchases", "/emails"):
        text = other_client.get(path, headers=HTML).text
        assert "Stainless Steel" not in text and f"/emails/{failed.id}/" not in text
    assert snapshot(settings) == before
    # Anonymous: sent to log in, nothing shown.
    other_client.cookies.clear()
    assert other_client.get(base, headers=HTML).status_code == 303
    assert other_client.get("/inbox", headers=HTML).headers["location"].startswith("/login")


# --- adding and removing items -----------------------------------------------------------------


def public_texts(client, handle: str, public_id: str) -> str:
    """Everything public about a user's purchases: profile, purchase page, Atom feed, JSON API."""
    pages = [client.get(f"/u/{handle}", headers=HTML), client.get(f"/u/{handle}/feed.atom"),
             client.get(f"/api/v1/users/{handle}/purchases"), client.get(f"/u/{handle}/p/{public_id}", headers=HTML)]
    assert [page.status_code for page in pages[:3]] == [200, 200, 200]
    return "\n".join(page.text for page in pages)


def test_added_item_is_validated_and_private_until_approved(settings, client, other_client, alice):
    purchase_id = receive(settings, alice, AMAZON).purchase_id
    page = f"/purchases/{purchase_id}"
    form = client.get(page, headers=HTML).text
    assert f'action="{page}/add-item"' in form
    before = snapshot(settings)
    for data, message in [
        ({"name": "Gift wrap", "unit_price": "12,3x"}, "new item price: enter an amount like 12.34"),
        ({"name": "Gift wrap", "unit_price": "1e3"}, "new item price: enter an amount like 12.34"),
        ({"name": "Gift wrap", "unit_price": "NaN"}, "new item price: enter an amount like 12.34"),
        ({"name": "   ", "unit_price": "2.50"}, "new item name: required"),
        ({"name": "Gift wrap", "quantity": "0"}, "new item quantity: a whole number from 1"),
        ({"name": "Gift wrap", "url": "javascript:alert(1)"}, "new item link: enter a full http(s) address"),
        ({"name": "Gift wrap", "image": "http://img.example/a.jpg"}, "new item image: enter a full https address"),
    ]:
        response = post(client, f"{page}/add-item", data, page=page)
        assert response.status_code == 400, data
        assert message in response.text, (data, response.text[:2000])
        assert 'value="Gift wrap"' in response.text or not data["name"].strip()  # what was typed is kept
    assert snapshot(settings) == before  # nothing half-saved

    response = post(client, f"{page}/add-item", {"name": "  Gift   wrap ", "quantity": "2", "unit_price": "3.50",
                                                "url": "https://shop.example/wrap", "image": ""}, page=page)
    assert response.status_code == 303 and response.headers["location"] == page
    first, second, added = items_of(settings, purchase_id)
    assert (added.name, added.quantity, added.unit_price, added.line_total, added.url, added.image, added.position) \
        == ("Gift wrap", 2, Decimal("3.50"), Decimal("7.00"), "https://shop.example/wrap", None, 2)
    assert not added.approved and added.approved_at is None
    text = client.get(page, headers=HTML).text
    assert "Added “Gift wrap”" in text and text.count('name="approved"') == 3

    # Sharing the parsed items does not share the added one...
    post(client, f"/purchases/{purchase_id}/items", {"approved": [str(first.id), str(second.id)]}, page=page)
    public_id = get_purchase(settings, purchase_id).public_id
    shown = public_texts(other_client, "alice", public_id)
    assert "Stainless Steel French Press" in shown and "Gift wrap" not in shown
    # ... until the owner ticks it too.
    post(client, f"/purchases/{purchase_id}/items", {"approved": [str(first.id), str(added.id)]}, page=page)
    shown = public_texts(other_client, "alice", public_id)
    assert "Gift wrap" in shown and "Reusable Silicone" not in shown


def test_removed_item_is_gone_with_what_hangs_on_it_and_never_shows_publicly(settings, client, other_client,
                                                                              alice):
    purchase_id = receive(settings, alice, AMAZON).purchase_id
    other_id = receive(settings, alice, APPLE).purchase_id
    page = f"/purchases/{purchase_id}"
    post(client, f"{page}/approve", page=page)
    first, second = items_of(settings, purchase_id)
    public_id = get_purchase(settings, purchase_id).public_id
    assert second.name in public_texts(other_client, "alice", public_id)
    with session_scope(settings) as session:  # a review and a collection entry on the item to remove
        shelf = Collection(user_id=alice.id, name="Kitchen", slug="kitchen")
        session.add_all([shelf, Review(item_id=second.id, user_id=alice.id, rating=2, body="meh")])
        session.flush()
        session.add(CollectionItem(collection_id=shelf.id, item_id=second.id))
        session.commit()
    # An item id of another of her purchases, under this purchase's URL, is a 404 like any other.
    [apple_item, _] = items_of(settings, other_id)
    before = snapshot(settings)
    assert post(client, f"{page}/items/{apple_item.id}/remove", page=page).status_code == 404
    assert post(client, f"/purchases/{other_id}/items/{second.id}/remove", page=page).status_code == 404
    assert snapshot(settings) == before

    left = counts(settings)
    form = client.get(page, headers=HTML).text
    assert f'action="{page}/items/{second.id}/remove"' in form and "data-confirm" in form
    response = post(client, f"{page}/items/{second.id}/remove", page=page)
    assert response.status_code == 303 and response.headers["location"] == page
    assert [item.id for item in items_of(settings, purchase_id)] == [first.id]
    after = counts(settings)
    for table, gone in [("purchase_item", 1), ("review", 1), ("collection_item", 1), ("purchase", 0),
                        ("collection", 0)]:
        assert left[table] - after[table] == gone, table
    assert "Removed “" in client.get(page, headers=HTML).text
    shown = public_texts(other_client, "alice", public_id)
    assert second.name not in shown and "meh" not in shown and first.name in shown
    assert second.name not in other_client.get("/u/alice/c/kitchen", headers=HTML).text
    # Removing the last shared item makes the purchase private: gone from every public surface.
    assert post(client, f"{page}/items/{first.id}/remove", page=page).status_code == 303
    assert other_client.get(f"/u/alice/p/{public_id}", headers=HTML).status_code == 404
    shown = public_texts(other_client, "alice", public_id)
    assert first.name not in shown and public_id not in shown
    assert "Private" in client.get(page, headers=HTML).text
    # A second click on a removed item is a 404, not an error.
    assert post(client, f"{page}/items/{first.id}/remove", page=page).status_code == 404


def test_upload_eml_same_path_as_imap_and_deduplicated(settings, client, alice, worker, monkeypatch):
    response = post(client, "/upload", files=[("files", ("order.eml", AMAZON, "message/rfc822"))], page="/upload")
    assert response.status_code == 200 and "queued" in response.text
    worker()
    with session_scope(settings) as session:
        rows = session.exec(select(RawEmail)).all()
        assert len(rows) == 1
        raw = rows[0]
        assert (raw.source, raw.user_id, raw.attributed_by, raw.status) == ("upload:order.eml", alice.id, "upload",
                                                                             "parsed")
        assert raw.purchase_id is not None and raw.raw == AMAZON
    assert f"/purchases/{raw.purchase_id}" in client.get("/inbox", headers=HTML).text
    assert not any(i.approved for i in items_of(settings, raw.purchase_id))
    # The same bytes again (and in the same request twice): still one raw email.
    again = post(client, "/upload", files=[("files", ("copy.eml", AMAZON, "message/rfc822")),
                                           ("files", ("new.eml", EBAY, "message/rfc822"))], page="/upload")
    assert again.status_code == 200 and "already received (parsed)" in again.text
    worker()
    with session_scope(settings) as session:
        assert session.exec(select(func.count()).select_from(RawEmail)).one() == 2
        assert session.exec(select(func.count()).select_from(Purchase)).one() == 2

    not_email = post(client, "/upload", files=[("files", ("photo.png", b"\x89PNG\r\n\x1a\n\0\0\0IHDR", "image/png"))],
                     page="/upload")
    assert not_email.status_code == 400 and "not an email" in not_email.text
    nothing = post(client, "/upload", {}, page="/upload")
    assert nothing.status_code == 400 and "Choose at least one .eml file" in nothing.text
    monkeypatch.setattr("web.routes.mail.MAX_BYTES", 1000)
    big = post(client, "/upload", files=[("files", ("big.eml", APPLE, "message/rfc822"))], page="/upload")
    assert big.status_code == 400 and "larger than" in big.text
    with session_scope(settings) as session:
        assert session.exec(select(func.count()).select_from(RawEmail)).one() == 2


def test_failed_email_listed_with_reason_and_retry(settings, client, alice, worker):
    with session_scope(settings) as session:
        stored = store_raw(session, APPLE, source="imap://test", user_id=alice.id, attributed_by="token")
    raw_id = stored.raw_email.id
    mark_failed(raw_id, "OperationalError: database is locked", settings)  # retries ran out
    unparsed = receive(settings, alice, b"From: shop@example.com\nSubject: Your order\nDate: Mon, 1 Jan 2024"
                                        b" 10:00:00 +0000\n\nThanks for your order!\n")
    text = client.get("/emails", headers=HTML).text
    assert "failed" in text and "could not be processed after" in text and "database is locked" in text
    assert f"/emails/{unparsed.raw_email_id}/retry" in text and "Your order" in text
    assert post(client, f"/emails/{raw_id}/retry", page="/emails").status_code == 303
    worker()
    with session_scope(settings) as session:
        raw = session.get(RawEmail, raw_id)
        assert raw.status == "parsed" and raw.purchase_id is not None
        assert session.get(Purchase, raw.purchase_id).review == "new"
    assert f"/emails/{raw_id}/retry" not in client.get("/emails", headers=HTML).text


def test_quarantine_is_for_operators_only(settings, client, other_client, alice):
    with session_scope(settings) as session:
        quarantined = store_raw(session, EBAY, source="imap://test").raw_email
    from purchaseshare.processing import process_raw_email

    assert process_raw_email(quarantined.id, settings).status == "quarantined"
    assert client.get("/operator/quarantine", headers=HTML).status_code == 404
    assert "/retry" not in client.get("/emails", headers=HTML).text  # not alice's
    operator = make_user(settings, "op")
    with session_scope(settings) as session:
        session.get(User, operator.id).is_operator = True
        session.commit()
    log_in(other_client, "op")
    page = other_client.get("/operator/quarantine", headers=HTML)
    assert page.status_code == 200 and "sent from an unknown address" in page.text
    assert f"/operator/quarantine/{quarantined.id}/retry" in page.text
    assert post(client, f"/operator/quarantine/{quarantined.id}/retry", page="/inbox").status_code == 404
    assert post(other_client, f"/operator/quarantine/{quarantined.id}/retry",
                page="/operator/quarantine").status_code == 303
    with session_scope(settings) as session:
        assert session.get(RawEmail, quarantined.id).queued_at is not None


def test_manual_entry(settings, client, alice):
    bad = post(client, "/purchases/new", {"merchant_name": "Corner Shop", "currency": "ZZZ",
                                          "items": "2 x Apples @ 1,2.3"}, page="/purchases/new")
    assert bad.status_code == 400 and "ISO 4217" in bad.text and "item line 1 price" in bad.text
    assert 'value="Corner Shop"' in bad.text
    response = post(client, "/purchases/new", {
        "merchant_name": "Corner Shop", "order_date": "2024-05-01", "currency": "gbp",
        "items": "2 x Apples @ 0.60\nBread @ 2.10\n\nA gift for Sam",
    }, page="/purchases/new")
    assert response.status_code == 303
    purchase_id = int(response.headers["location"].rsplit("/", 1)[1])
    purchase = get_purchase(settings, purchase_id)
    assert purchase.user_id == alice.id and purchase.entered_by_hand and purchase.review == "new"
    assert (purchase.merchant_name, purchase.order_date, purchase.currency, purchase.total) == (
        "Corner Shop", date(2024, 5, 1), "GBP", None)  # one item has no price: no total is made up
    assert [(i.name, i.quantity, i.unit_price, i.line_total, i.approved) for i in items_of(settings, purchase_id)] == [
        ("Apples", 2, Decimal("0.60"), Decimal("1.20"), False), ("Bread", 1, Decimal("2.10"), Decimal("2.10"), False),
        ("A gift for Sam", 1, None, None, False)]
    response = post(client, "/purchases/new", {"merchant_name": "Bakery", "currency": "EUR",
                                               "items": "3 x Croissant @ 1.20"}, page="/purchases/new")
    assert get_purchase(settings, int(response.headers["location"].rsplit("/", 1)[1])).total == Decimal("3.60")
    assert "Corner Shop" in client.get("/inbox", headers=HTML).text


def test_settings_round_trip(settings, client, alice):
    make_user(settings, "taken")
    page = client.get("/settings", headers=HTML)
    assert page.status_code == 200 and 'href="/settings/addresses"' in page.text
    assert 'href="/settings/forwarding"' in page.text
    assert 'name="allow_indexing" value="1" checked' not in page.text  # off by default
    good = {"handle": "Alice_B", "display_name": "Alice B.", "avatar_url": "https://img.example/me.png",
            "bio": "Coffee & books", "default_share_items": "1", "allow_indexing": "1", "raw_retention_days": "30"}
    for change, message in [({"handle": "taken"}, "handle: taken is taken"), ({"handle": "-bad-"}, "handle: 1-40"),
                            ({"avatar_url": "http://img.example/me.png"}, "avatar: enter a full https address"),
                            ({"raw_retention_days": "0"}, "raw-mail retention")]:
        response = post(client, "/settings", {**good, **change}, page="/settings")
        assert response.status_code == 400 and message in response.text, change
    with session_scope(settings) as session:
        assert session.get(User, alice.id).handle == "alice"
    assert post(client, "/settings", good, page="/settings").status_code == 303
    with session_scope(settings) as session:
        user = session.get(User, alice.id)
    assert (user.handle, user.display_name, user.avatar_url, user.bio, user.default_share_items, user.allow_indexing,
            user.raw_retention_days) == ("alice_b", "Alice B.", "https://img.example/me.png", "Coffee & books",
                                         True, True, 30)
    text = client.get("/settings", headers=HTML).text  # still signed in after the handle change
    assert 'value="alice_b"' in text and 'value="30"' in text and "Coffee &amp; books" in text
    # Default visibility: new purchases now start shared.
    purchase_id = receive(settings, user, AMAZON).purchase_id
    assert all(i.approved for i in items_of(settings, purchase_id))
    # Unticked boxes and an empty retention go back to the defaults.
    post(client, "/settings", {"handle": "alice_b", "display_name": "", "avatar_url": "", "bio": "",
                               "raw_retention_days": ""}, page="/settings")
    with session_scope(settings) as session:
        user = session.get(User, alice.id)
    assert (user.default_share_items, user.allow_indexing, user.raw_retention_days, user.avatar_url,
            user.display_name) == (False, False, None, None, "alice_b")


def _others_things(settings, other: User) -> tuple[int, int]:
    """`other`'s own purchase and collection (not about the user)."""
    others_purchase = receive(settings, other, APPLE).purchase_id
    with session_scope(settings) as session:
        others_collection = Collection(user_id=other.id, name="Picks", slug="picks")
        session.add(others_collection)
        session.commit()
        return others_purchase, others_collection.id


def _everything_about(settings, user: User, other: User, others: tuple[int, int]) -> None:
    """Rows of every kind about `user`, including what they did to `other` and what `other` did to them."""
    receive(settings, user, AMAZON)
    others_purchase, others_collection = others
    with session_scope(settings) as session:
        store_raw(session, b"From: x@y.example\nSubject: junk\n\n", source="t", user_id=user.id, attributed_by="cli")
        mine = session.exec(select(Purchase).where(Purchase.user_id == user.id)).first()
        item = session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == mine.id)).first()
        others_item = session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == others_purchase)).first()
        add_sender_address(session, session.get(User, user.id), f"{user.handle}@mail.example", verified=True)
        session.add_all([Follow(follower_id=user.id, followee_id=other.id),
                         Follow(follower_id=other.id, followee_id=user.id),
                         Like(user_id=other.id, purchase_id=mine.id), Like(user_id=user.id, purchase_id=others_purchase),
                         Review(item_id=item.id, user_id=user.id, rating=5, body="great"),
                         OutboxMail(user_id=user.id, to_addr=f"{user.handle}@example.org", subject="hi", body="x"),
                         LoginAttempt(key=f"user:{user.handle}")])
        comment_on_mine = Comment(purchase_id=mine.id, user_id=other.id, body="nice")
        comment_on_theirs = Comment(purchase_id=others_purchase, user_id=user.id, body="me too")
        collection = Collection(user_id=user.id, name="Kitchen", slug="kitchen")
        session.add_all([comment_on_mine, comment_on_theirs, collection])
        session.flush()
        session.add_all([CollectionItem(collection_id=collection.id, item_id=item.id),
                         CollectionItem(collection_id=collection.id, item_id=others_item.id),
                         CollectionItem(collection_id=others_collection, item_id=item.id),
                         Notification(user_id=user.id, actor_id=other.id, kind="like", purchase_id=mine.id),
                         Notification(user_id=user.id, actor_id=other.id, kind="comment", purchase_id=mine.id,
                                      comment_id=comment_on_mine.id),
                         Notification(user_id=other.id, actor_id=user.id, kind="comment",
                                      purchase_id=others_purchase, comment_id=comment_on_theirs.id),
                         Notification(user_id=other.id, actor_id=user.id, kind="follow")])
        session.commit()


def test_export_zip_has_every_record_and_the_original_emails(settings, client, alice):
    bob = make_user(settings, "bob")
    _everything_about(settings, alice, bob, _others_things(settings, bob))
    response = client.get("/settings/export", headers=HTML)
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    assert "attachment" in response.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    data = {name: json.loads(archive.read(name)) for name in archive.namelist() if name.endswith(".json")}
    user = data["user.json"][0]
    assert user["handle"] == "alice" and "password_hash" not in user and PASSWORD not in response.text
    assert "$argon2" not in archive.read("user.json").decode()
    with session_scope(settings) as session:
        raws = session.exec(select(RawEmail).where(RawEmail.user_id == alice.id)).all()
        purchase = session.exec(select(Purchase).where(Purchase.user_id == alice.id)).one()
    assert {r["id"] for r in data["raw_emails.json"]} == {r.id for r in raws}
    for raw in raws:
        assert archive.read(f"emails/{raw.id}.eml") == raw.raw
    assert archive.read(f"emails/{purchase.source_raw_id}.eml") == AMAZON
    exported = data["purchases.json"][0]
    assert exported["order_number"] == "112-4820571-3396214" and exported["total"] == "58.69"
    assert [i["unit_price"] for i in data["purchase_items.json"]] == ["27.99", "12.99"]
    assert len(data["sender_addresses.json"]) == 1 and "verify_token" not in data["sender_addresses.json"][0]
    assert len(data["follows.json"]) == 2 and len(data["likes.json"]) == 2 and len(data["comments.json"]) == 2
    assert len(data["reviews.json"]) == 1 and len(data["collections.json"]) == 1
    assert len(data["collection_items.json"]) == 2 and len(data["notifications.json"]) == 2
    assert len(data["outbox_mail.json"]) == 1 and len(data["login_attempts.json"]) == 1
    # Bob's own records are not in Alice's export.
    assert all(p["user_id"] == alice.id for p in data["purchases.json"])
    assert "README.txt" in archive.namelist()
    # Exporting needs a signed-in owner.
    client.cookies.clear()
    assert client.get("/settings/export").status_code == 303


def test_delete_account_removes_every_row_about_the_user(settings, client, other_client):
    bob = make_user(settings, "bob")
    others = _others_things(settings, bob)
    before = counts(settings)
    alice = make_user(settings, "alice")  # the newest account: SQLite would hand its row id out again
    log_in(client, "alice")
    _everything_about(settings, alice, bob, others)
    during = counts(settings)
    assert all(during[name] > before[name] for name in (
        "user", "sender_address", "raw_email", "purchase", "purchase_item", "follow", "like", "comment",
        "notification", "review", "collection", "collection_item", "outbox_mail", "login_attempt"))

    wrong = post(client, "/settings/delete", {"handle": "alice", "password": "not the password"},
                 page="/settings/delete")
    assert wrong.status_code == 400 and "password is not right" in wrong.text
    wrong = post(client, "/settings/delete", {"handle": "bob", "password": PASSWORD}, page="/settings/delete")
    assert wrong.status_code == 400 and "Type your handle" in wrong.text
    # Nothing deleted; the wrong password counted as a failed login (account, client, both).
    assert counts(settings) == {**during, "login_attempt": during["login_attempt"] + 3}

    old_cookie = client.cookies.get("ps_session")
    assert old_cookie
    response = post(client, "/settings/delete", {"handle": "alice", "password": PASSWORD}, page="/settings/delete")
    assert response.status_code == 303 and response.headers["location"] == "/"
    # Every row about alice is gone, bob's are all there; the client address's failure stays (it is
    # about the client, not the account).
    assert counts(settings) == {**before, "login_attempt": before["login_attempt"] + 1}
    with session_scope(settings) as session:
        assert session.exec(select(User).where(User.handle == "alice")).first() is None
    assert client.get("/inbox", headers=HTML).status_code == 303
    # The old session cookie is dead, even once someone else signs up (and may get the same row id).
    def with_old_cookie() -> int:
        other_client.cookies.clear()
        other_client.cookies.set("ps_session", old_cookie)
        return other_client.get("/settings", headers=HTML).status_code

    assert with_old_cookie() == 303
    make_user(settings, "newcomer")
    log_in(client, "newcomer")
    assert client.get("/settings", headers=HTML).status_code == 200
    assert with_old_cookie() == 303


def test_database_cascades_agree_with_delete_account(settings):
    """delete_account removes rows explicitly; the schema's ON DELETE CASCADE must reach the same
    rows on its own (SQLite with foreign keys on, PostgreSQL), so nothing is left dangling either way."""
    from sqlalchemy import delete

    bob = make_user(settings, "bob")
    others = _others_things(settings, bob)
    before = counts(settings)
    carol = make_user(settings, "carol")
    _everything_about(settings, carol, bob, others)
    with session_scope(settings) as session:
        session.exec(delete(LoginAttempt).where(LoginAttempt.key == "user:carol"))  # keyed by name, no FK
        session.exec(delete(User).where(User.id == carol.id))
        session.commit()
    assert counts(settings) == before


def test_the_operator_outbox_shows_bounced_and_uncertain_mail_as_such(settings, client):
    from purchaseshare.clock import utcnow
    from purchaseshare.models import OutboxMail

    operator = make_user(settings, "op2")
    with session_scope(settings) as session:
        session.get(User, operator.id).is_operator = True
        for state, to in (("bounced", "gone@example.org"), ("uncertain", "maybe@example.org"),
                          ("sent", "fine@example.org")):
            session.add(OutboxMail(to_addr=to, subject="Verify", body="x", purpose="verify", state=state,
                                   sent_at=utcnow(), error="550 5.1.1 no such user" if state == "bounced" else None))
        session.commit()
    log_in(client, "op2")
    page = client.get("/operator/outbox", headers=HTML).text
    rows = {to: page.split(to, 1)[1].split("</span>", 1)[0] for to in
            ("gone@example.org", "maybe@example.org", "fine@example.org")}
    assert "bounced: 550 5.1.1 no such user" in rows["gone@example.org"]
    assert "uncertain" in rows["maybe@example.org"] and "sent" not in rows["maybe@example.org"].split("uncertain")[0]
    assert rows["fine@example.org"].strip().endswith("sent")
