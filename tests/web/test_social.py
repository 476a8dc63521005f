"""The social layer over HTTP, through the real app and database (SQLite and PostgreSQL): follows,
the home feed (and its constant query count), live updates over a real HTTP server, likes,
comments (escaped, safe links, redacted), notifications (in the app and by mail), verified
reviews and collections."""

from __future__ import annotations

import functools
import itertools
import re
import socketserver
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

import httpx
import pytest
import uvicorn
from sqlalchemy import event
from sqlmodel import select

from purchaseshare.clock import utcnow
from purchaseshare.db import get_engine, session_scope
from purchaseshare.models import (
    Collection,
    CollectionItem,
    Comment,
    Follow,
    Like,
    Notification,
    OutboxMail,
    Purchase,
    PurchaseItem,
    Review,
    User,
)
from purchaseshare.social import comment_html
from purchaseshare.users import create_user
from tests.helpers import FIXTURES
from tests.services.servers import free_port
from tests.web.conftest import PASSWORD, csrf, log_in, post, receive
from web.security import hash_password

ORDER_NUMBER = "204-7777777-"  # + a serial: every test purchase has a private order number
_serial = itertools.count(1000000)


def share(settings, user: User, items: list[tuple[str, bool]], merchant: str = "Amazon",
          published_at=None) -> tuple[str, list[int]]:
    """A purchase of `user` with items (name, approved); published when any item is approved.
    (Setup only: approving through the owner's pages is another area's test.)"""
    shared = any(approved for _, approved in items)
    with session_scope(settings) as session:
        purchase = Purchase(user_id=user.id, merchant_name=merchant, merchant_domain="amazon.co.uk",
                            order_number=f"{ORDER_NUMBER}{next(_serial)}", order_date=date(2024, 3, 1), currency="GBP",
                            total=Decimal("20.00"), review="reviewed" if shared else "new",
                            published_at=(published_at or utcnow()) if shared else None)
        session.add(purchase)
        session.flush()
        rows = [PurchaseItem(purchase_id=purchase.id, position=n, name=name, unit_price=Decimal("10.00"),
                             approved=approved, approved_at=utcnow() if approved else None)
                for n, (name, approved) in enumerate(items)]
        session.add_all(rows)
        session.commit()
        return purchase.public_id, [row.id for row in rows]


def count(settings, model, *where) -> int:
    with session_scope(settings) as session:
        return len(session.exec(select(model).where(*where)).all())


def page(client, path: str) -> httpx.Response:
    return client.get(path, headers={"accept": "text/html"})


@functools.cache
def _password_hash() -> str:
    return hash_password(PASSWORD)  # argon2 is slow on purpose: once for every test user


@pytest.fixture
def people(settings):
    with session_scope(settings) as session:
        users = {handle: create_user(session, handle, email=f"{handle}@example.org", password_hash=_password_hash())
                 for handle in ("alice", "bob", "carol")}
        session.commit()
    return users


# --- follows and the home feed -------------------------------------------------------------------


def test_follow_and_unfollow_are_idempotent_and_not_for_yourself(settings, people, client):
    alice, bob = people["alice"], people["bob"]
    assert post(client, "/u/bob/follow", page="/login").headers["location"].startswith("/login?next=")
    assert client.post("/u/bob/follow").status_code in (303, 403)  # no CSRF token: refused
    log_in(client, "alice")
    assert post(client, "/u/bob/follow").headers["location"] == "/u/bob"
    assert post(client, "/u/bob/follow").status_code == 303
    assert count(settings, Follow, Follow.follower_id == alice.id, Follow.followee_id == bob.id) == 1
    assert "Unfollow" in page(client, "/u/bob").text and "1 follower" in page(client, "/u/bob").text
    assert count(settings, Notification, Notification.user_id == bob.id, Notification.kind == "follow") == 1

    assert post(client, "/u/alice/follow").status_code == 303  # yourself: a message, no row
    assert count(settings, Follow, Follow.follower_id == alice.id, Follow.followee_id == alice.id) == 0
    assert post(client, "/u/nobody/follow").status_code == 404

    assert post(client, "/u/bob/unfollow").status_code == 303
    assert post(client, "/u/bob/unfollow").status_code == 303
    assert count(settings, Follow) == 0
    assert post(client, "/u/bob/follow").status_code == 303  # again: still one notice
    assert count(settings, Notification, Notification.user_id == bob.id, Notification.kind == "follow") == 1


def test_feed_shows_only_approved_items_of_followed_people(settings, people, client):
    bob = people["bob"]
    outcome = receive(settings, bob, (FIXTURES / "amazon" / "amazon_3_multi_item.eml").read_bytes())
    with session_scope(settings) as session:  # bob approves the first item of three
        purchase = session.get(Purchase, outcome.purchase_id)
        items = session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == purchase.id)
                             .order_by(PurchaseItem.position)).all()
        items[0].approved, items[0].approved_at = True, utcnow()
        purchase.published_at, purchase.review = utcnow(), "reviewed"
        session.add_all([purchase, items[0]])
        session.commit()
        names = [item.name for item in items]
    share(settings, bob, [("Bob private thing", False)])
    share(settings, people["carol"], [("Carol shared lamp", True)])

    assert page(client, "/feed").status_code == 303  # login required
    log_in(client, "alice")
    assert "do not follow anyone" in page(client, "/feed").text
    post(client, "/u/bob/follow")
    body = page(client, "/feed").text
    assert names[0] in body
    assert names[1] not in body and names[2] not in body and "Bob private thing" not in body
    assert "Carol shared lamp" not in body
    assert ORDER_NUMBER not in body and outcome.purchase_id and purchase.order_number not in body
    assert 'src="/static/feed.js"' in body and 'data-events="/feed/events?since=' in body
    assert "<script>" not in body.split("</footer>")[0]  # no inline script (CSP)


def test_feed_query_count_does_not_grow_with_the_page(settings, people, client):
    alice, bob = people["alice"], people["bob"]
    log_in(client, "alice")
    post(client, "/u/bob/follow")
    base = utcnow() - timedelta(hours=1)
    for n in range(2):
        share(settings, bob, [(f"Thing {n}", True), (f"Hidden {n}", False)], published_at=base + timedelta(seconds=n))

    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    engine = get_engine(settings)
    event.listen(engine, "before_cursor_execute", record)
    try:
        # bob liked/commented a few: those counts must be batched too
        response = page(client, "/feed")
        few = len(statements)
        assert response.text.count('class="feed-entry"') == 2
        for n in range(2, 25):
            share(settings, bob, [(f"Thing {n}", True), (f"Hidden {n}", False)],
                  published_at=base + timedelta(seconds=n))
        statements.clear()
        response = page(client, "/feed")
        many = len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.text.count('class="feed-entry"') == 20
    assert few == many, (few, many)
    entries = re.findall(r"Thing (\d+)", response.text)
    assert entries[0] == "24" and "Hidden" not in response.text  # newest first, approved only
    assert 'href="/feed?page=2"' in response.text
    older = page(client, "/feed?page=2").text
    assert older.count('class="feed-entry"') == 5 and "Thing 0" in older
    assert alice.id != bob.id


# --- live updates over a real HTTP server ----------------------------------------------------


@pytest.fixture
def live_server(app):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _events(lines: Iterator[str], until, seconds: float = 8.0) -> list[dict[str, str]]:
    """Parse SSE events until `until(event)` is true (the read timeout bounds the wait)."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    deadline = time.monotonic() + seconds
    for line in lines:
        if line == "":
            if "data" in current:
                events.append(current)
                if until(current):
                    return events
            current = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            current[key] = current[key] + "\n" + value if key == "data" and key in current else value
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no expected event within {seconds} s; got {events}")


def test_live_feed_sends_new_purchases_of_followed_people_only(settings, people, live_server):
    bob, carol = people["bob"], people["carol"]
    with httpx.Client(base_url=live_server, follow_redirects=False, timeout=httpx.Timeout(10, read=8)) as browser:
        log_in(browser, "alice")
        post(browser, "/u/bob/follow")
        with browser.stream("GET", "/feed/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()
            assert next(lines).startswith("retry:")  # connected: the cursor is open
            # Published BEFORE the wanted one: if they leaked they would arrive first.
            share(settings, carol, [("Carol not followed", True)])
            share(settings, bob, [("Bob still private", False)])
            wanted, _ = share(settings, bob, [("Bob <b>new</b> kettle", True), ("Bob hidden item", False)])
            events = _events(lines, lambda e: wanted in e["data"])
        assert len(events) == 1 and events[0]["event"] == "purchase"
        card = events[0]["data"]
        assert f'data-id="{wanted}"' in card and "Bob &lt;b&gt;new&lt;/b&gt; kettle" in card
        assert "<b>new" not in card and "Bob hidden item" not in card and ORDER_NUMBER not in card
        last_id = events[0]["id"]

        # Resuming with Last-Event-ID: the one already seen is not sent again, the next one is.
        with browser.stream("GET", "/feed/events", headers={"Last-Event-ID": last_id}) as response:
            lines = response.iter_lines()
            next(lines)
            later, _ = share(settings, bob, [("Bob later lamp", True)])
            events = _events(lines, lambda e: later in e["data"])
        assert [later in e["data"] for e in events] == [True]

        browser.cookies.clear()
        assert browser.get("/feed/events").status_code == 303  # anonymous: to the login page


# --- likes and comments -----------------------------------------------------------------------


def test_likes_count_once_and_notify_the_owner_not_yourself(settings, people, client, other_client):
    alice, bob = people["alice"], people["bob"]
    public_id, _ = share(settings, bob, [("Kettle", True)])
    private_id, _ = share(settings, bob, [("Secret", False)])
    path = f"/u/bob/p/{public_id}"
    assert post(other_client, f"{path}/like", page="/login").status_code == 303  # anonymous: to login
    assert count(settings, Like) == 0

    log_in(client, "alice")
    assert post(client, f"{path}/like", page=path).headers["location"] == path
    assert post(client, f"{path}/like", page=path).status_code == 303
    assert count(settings, Like) == 1
    assert "1 like" in page(client, path).text and "Unlike" in page(client, path).text
    assert post(client, f"/u/bob/p/{private_id}/like").status_code == 404  # not shared
    assert post(client, f"/u/alice/p/{public_id}/like").status_code == 404  # not alice's purchase
    assert count(settings, Notification, Notification.user_id == bob.id, Notification.kind == "like") == 1

    assert post(client, f"{path}/unlike", page=path).status_code == 303
    assert count(settings, Like) == 0
    assert post(client, f"{path}/like", {"next": "https://evil.example/"}).headers["location"] == path

    log_in(other_client, "bob")
    assert post(other_client, f"{path}/like", page=path).status_code == 303  # own purchase: no notice
    assert count(settings, Like) == 2
    assert count(settings, Notification, Notification.actor_id == bob.id) == 0
    assert alice.id


XSS = '<img src=x onerror=alert(1)> <script>alert("x")</script>'


def test_comments_are_escaped_linked_safely_and_redacted(settings, people, client, other_client):
    public_id, _ = share(settings, people["bob"], [("Kettle", True)])
    path = f"/u/bob/p/{public_id}"
    log_in(client, "alice")
    with session_scope(settings) as session:
        order_number = session.exec(select(Purchase.order_number)).one()
    text = (f"{XSS}\nsee https://example.com/a?b=1&c=2. and javascript:alert(1) or "
            f"JaVaScRiPt:alert(2) data:text/html,<b>x</b> call +44 7700 900123, order {order_number}")
    response = post(client, f"{path}/comments", {"body": text}, page=path)
    assert response.status_code == 303 and response.headers["location"].startswith(f"{path}#comment-")
    body = page(client, path).text
    assert "&lt;img src=x onerror=alert(1)&gt;" in body and "&lt;script&gt;alert(" in body
    assert "<img src=x" not in body and '<script>alert("x")' not in body
    assert '<a href="https://example.com/a?b=1&amp;c=2" rel="nofollow ugc noopener noreferrer">' in body
    assert 'href="javascript:' not in body.lower() and 'href="data:' not in body
    assert "javascript:alert(1)" in body  # kept, as text
    assert "7700 900123" not in body and ORDER_NUMBER not in body and "[hidden]" in body

    assert post(client, f"{path}/comments", {"body": "   "}, page=path).status_code == 303  # empty: refused
    too_long = post(client, f"{path}/comments", {"body": "y" * 2001}, page=path)  # a page, not a silent cut
    assert too_long.status_code == 400 and "has 2001 characters" in too_long.text and "y" * 50 not in too_long.text
    assert count(settings, Comment) == 1

    with session_scope(settings) as session:
        comment_id = session.exec(select(Comment.id)).one()
    log_in(other_client, "carol")
    assert post(other_client, f"/comments/{comment_id}/delete").status_code == 404  # not hers
    post(other_client, f"{path}/comments", {"body": "carol was here"}, page=path)
    assert post(client, f"/comments/{comment_id}/delete").status_code == 303  # alice: her own
    assert count(settings, Comment) == 1
    with session_scope(settings) as session:
        carols = session.exec(select(Comment.id)).one()
    assert post(client, f"/comments/{carols}/delete").status_code == 404  # alice cannot delete carol's
    other_client.cookies.clear()
    log_in(other_client, "bob")
    assert post(other_client, f"/comments/{carols}/delete").status_code == 303  # the purchase owner can
    assert count(settings, Comment) == 0
    assert post(other_client, "/comments/999999/delete").status_code == 404


def test_comment_html_links_only_http_urls():
    html = str(comment_html('go to https://a.example/x), (see http://b.example/wiki/A_(b)) "https://c.example/"'))
    assert '<a href="https://a.example/x" rel="nofollow ugc noopener noreferrer">https://a.example/x</a>),' in html
    assert 'href="http://b.example/wiki/A_(b)"' in html
    assert 'href="https://c.example/"' in html and "&#34;" in html
    assert "<a" not in str(comment_html("javascript:alert(1) vbscript:x data:text/html;base64,PHNjcmlwdD4= //evil.example"))
    assert str(comment_html('https://x.example/"onmouseover=alert(1)')).count('"') == 4  # the quote ends the URL
    assert str(comment_html("https:// nothing")) == "https:// nothing"


# --- notifications ------------------------------------------------------------------------------


class _SMTPHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(b"220 test ESMTP\r\n")
        lines: list[bytes] | None = None
        for line in self.rfile:
            if lines is not None:
                if line.rstrip(b"\r\n") == b".":
                    self.server.messages.append(b"".join(lines))  # type: ignore[attr-defined]
                    lines = None
                    self.wfile.write(b"250 queued\r\n")
                else:
                    lines.append(line)
                continue
            verb = line[:4].upper()
            if verb == b"DATA":
                lines = []
                self.wfile.write(b"354 go on\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture
def smtp_server(settings, monkeypatch):
    """A tiny real SMTP server; SMTP_URL points at it (in the settings and the environment)."""
    from purchaseshare.config import get_settings

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPHandler)
    server.messages = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"smtp://127.0.0.1:{server.server_address[1]}"
    settings.smtp_url = url
    monkeypatch.setenv("SMTP_URL", url)
    get_settings.cache_clear()
    yield server
    server.shutdown()
    server.server_close()
    get_settings.cache_clear()


def test_notifications_for_the_owner_listed_and_marked_read(settings, people, client, other_client):
    bob = people["bob"]
    public_id, _ = share(settings, bob, [("Kettle", True)])
    path = f"/u/bob/p/{public_id}"
    log_in(client, "alice")
    post(client, "/u/bob/follow")
    post(client, f"{path}/like", page=path)
    post(client, f"{path}/comments", {"body": "Nice <b>kettle</b>"}, page=path)
    log_in(other_client, "bob")
    post(other_client, f"{path}/comments", {"body": "thanks"}, page=path)  # own: no notice
    post(other_client, f"{path}/like", page=path)
    with session_scope(settings) as session:
        kinds = sorted(session.exec(select(Notification.kind).where(Notification.user_id == bob.id)).all())
        assert kinds == ["comment", "follow", "like"]
        assert not session.exec(select(Notification).where(Notification.user_id != bob.id)).all()

    listing = page(other_client, "/notifications").text
    assert 'aria-label="3 unread"' in listing  # the nav's unread count
    assert listing.index("commented on") < listing.index("liked") < listing.index("started following")
    assert "Nice &lt;b&gt;kettle&lt;/b&gt;" in listing and f'href="{path}#comments"' in listing
    assert listing.count('class="badge">new<') == 3
    assert count(settings, OutboxMail) == 0  # no SMTP_URL: no mail

    assert post(other_client, "/notifications/read", {"upto": "999999"}, page="/notifications").status_code == 303
    assert count(settings, Notification, Notification.read_at.is_(None)) == 0  # type: ignore[union-attr]
    listing = page(other_client, "/notifications").text
    assert "unread" not in listing.split("</nav>")[0] and 'class="badge">new<' not in listing
    assert page(client, "/notifications").text.count("<li class=") == 1  # alice has none: the empty line only


def test_notification_mail_is_queued_and_sent_when_smtp_is_set(settings, people, client, smtp_server):
    from workers.actors import send_mail

    bob = people["bob"]
    public_id, _ = share(settings, bob, [("Kettle", True)])
    path = f"/u/bob/p/{public_id}"
    log_in(client, "alice")
    post(client, f"{path}/comments", {"body": "Where did you find it?"}, page=path)
    with session_scope(settings) as session:
        mail = session.exec(select(OutboxMail)).one()
    assert mail.to_addr == "bob@example.org" and mail.subject == "@alice commented on your purchase"
    assert "Where did you find it?" in mail.body and f"{settings.base_url}{path}" in mail.body
    send_mail(mail.id)  # what the queued actor runs (a no-op if a worker already sent it)
    deadline = time.monotonic() + 5
    while not smtp_server.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b"Where did you find it?" in smtp_server.messages[0]
    with session_scope(settings) as session:
        assert session.get(OutboxMail, mail.id).sent_at is not None


# --- verified-purchase reviews ------------------------------------------------------------------


def test_only_the_owner_reviews_items_they_shared(settings, people, client, other_client):
    public_id, (shared_item, private_item) = share(settings, people["bob"], [("Kettle", True), ("Socks", False)])
    unshared_id, (unshared_item,) = share(settings, people["bob"], [("Lamp", False)])
    path = f"/u/bob/p/{public_id}"
    log_in(client, "bob")
    assert f'action="/items/{shared_item}/review"' in page(client, path).text
    assert f"/items/{private_item}/review" not in page(client, path).text
    response = post(client, f"/items/{shared_item}/review", {"rating": "4", "body": "Boils <fast>"}, page=path)
    assert response.status_code == 303 and response.headers["location"] == path
    body = page(client, path).text
    assert "Verified purchase: bought at Amazon on 2024-03-01" in body and "Boils &lt;fast&gt;" in body
    assert post(client, f"/items/{shared_item}/review", {"rating": "5", "body": "Even better"}, page=path).status_code == 303
    assert post(client, f"/items/{shared_item}/review", {"rating": "9", "body": "x"}, page=path).status_code == 303
    with session_scope(settings) as session:
        reviews = session.exec(select(Review)).all()
        assert [(r.item_id, r.rating, r.body) for r in reviews] == [(shared_item, 5, "Even better")]

    assert post(client, f"/items/{private_item}/review", {"rating": "3"}).status_code == 404  # not approved
    assert post(client, f"/items/{unshared_item}/review", {"rating": "3"}).status_code == 404
    assert post(client, "/items/999999/review", {"rating": "3"}).status_code == 404
    log_in(other_client, "alice")
    assert f"/items/{shared_item}/review" not in page(other_client, path).text
    assert post(other_client, f"/items/{shared_item}/review", {"rating": "1", "body": "spam"}).status_code == 404
    assert count(settings, Review) == 1
    assert unshared_id


# --- collections --------------------------------------------------------------------------------


def test_collections_crud_and_ownership(settings, people, client, other_client):
    _, (mine, hidden) = share(settings, people["alice"], [("Trowel", True), ("Gloves", False)])
    _, (bobs,) = share(settings, people["bob"], [("Bob's kettle", True)])
    assert page(client, "/collections").status_code == 303
    log_in(client, "alice")
    assert post(client, "/collections", {"name": "Garden Things!"}, page="/collections").status_code == 303
    post(client, "/collections", {"name": "Garden things"}, page="/collections")
    post(client, "/collections", {"name": "   "}, page="/collections")  # refused
    with session_scope(settings) as session:
        rows = session.exec(select(Collection).order_by(Collection.id)).all()
    assert [(c.name, c.slug) for c in rows] == [("Garden Things!", "garden-things"), ("Garden things", "garden-things-2")]
    garden = rows[0].id

    assert post(client, f"/collections/{garden}/items", {"item_id": str(mine)}, page="/collections").status_code == 303
    assert post(client, f"/collections/{garden}/items", {"item_id": str(mine)}, page="/collections").status_code == 303
    assert post(client, f"/collections/{garden}/items", {"item_id": str(hidden)}).status_code == 404  # not shared
    assert post(client, f"/collections/{garden}/items", {"item_id": str(bobs)}).status_code == 404  # not hers
    assert count(settings, CollectionItem) == 1
    listing = page(client, "/collections").text
    assert "Trowel" in listing and f'action="/collections/{garden}/items/{mine}/remove"' in listing
    assert "Gloves" not in listing and "Bob&#39;s kettle" not in listing

    log_in(other_client, "bob")
    assert "Garden" not in page(other_client, "/collections").text
    assert post(other_client, f"/collections/{garden}/items", {"item_id": str(bobs)}).status_code == 404
    assert post(other_client, f"/collections/{garden}/items/{mine}/remove").status_code == 404
    assert post(other_client, f"/collections/{garden}/delete").status_code == 404
    assert count(settings, CollectionItem) == 1 and count(settings, Collection) == 2

    assert post(client, f"/collections/{garden}/items/{mine}/remove", page="/collections").status_code == 303
    assert count(settings, CollectionItem) == 0
    post(client, f"/collections/{garden}/items", {"item_id": str(mine)}, page="/collections")
    assert post(client, f"/collections/{garden}/delete", page="/collections").status_code == 303
    assert count(settings, Collection) == 1 and count(settings, CollectionItem) == 0
    assert csrf(client, "/collections")
