"""Privacy by construction, tested from the outside: emails carrying canaries (an order number,
card numbers full and masked, a street address, a phone number, the buyer's email address, and
the same things planted INSIDE an item name, the caption and a review) go through the real
processing; the owner shares one item of two; then every public surface is fetched as anonymous
and as another user (who follows the owner), and no canary, no fixture order number and no unapproved item
name may appear in any body or header. The owner's own pages must show the order number (so the
test fails if the canaries never reached the database)."""

from __future__ import annotations

import html as htmlmod
import json
import re
from email import message_from_bytes
from email.utils import getaddresses
from pathlib import Path

import pytest
from sqlmodel import select

from purchaseshare.db import session_scope
from purchaseshare.models import Collection, CollectionItem, Follow, Purchase, PurchaseItem, Review, User
from tests.web.conftest import log_in, make_user, post, receive
from tests.web.test_authorization import app_routes, path_pattern
from tests.web.test_public import approve

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "emails"
HTML = {"accept": "text/html"}

ORDER = "CNRY-58213-QX"
BUYER = "zelda.canary@example.net"
CANARIES = [
    ORDER, BUYER, "Visa ending in 4242", "ending in 4242", "**** **** **** 4242", "**** 4242",
    "4111 1111 1111 1111", "4111111111111111", "4111-1111-1111-1111", "+44 7700 900461", "7700 900461",
    "7700900461", "07700 900461", "77 Canary Wharf Lane", "Canary Wharf", "NR33 0QX", "Zanzibar Unapproved Quilt",
    "zanzibar", "CNRY-58213", "58213", "5555 4444 3333 1111", "5555444433331111",
]
# Standalone last-four digits: bounded so a random token that happens to contain them does not count.
LAST_FOUR = re.compile(r"(?<![\w-])(4242|1111|0461)(?![\w-])")

CANARY_EMAIL = f"""From: Lanternhouse Goods <orders@lanternhouse-goods.co.uk>
To: Zelda Canary <{BUYER}>
Subject: Thank you for your order {ORDER}
Date: Tue, 15 Apr 2025 09:12:44 +0100
Message-ID: <cnry-58213-qx@mail.lanternhouse-goods.co.uk>
Content-Type: text/html; charset="utf-8"
MIME-Version: 1.0

<!DOCTYPE html>
<html lang="en-GB"><head><meta charset="utf-8"><title>Your order</title></head>
<body>
<h1>Thank you for your order, Zelda!</h1>
<table class="meta">
<tr><td>Order number:</td><td>{ORDER}</td></tr>
<tr><td>Order date:</td><td>15 April 2025</td></tr>
</table>
<table class="items" width="100%">
<tr><th align="left">Item</th><th>Qty</th><th>Price</th><th>Total</th></tr>
<tr><td><a href="https://www.lanternhouse-goods.co.uk/p/brass-lantern?ref={ORDER}&amp;email={BUYER}">Brass Lantern ref {ORDER} for {BUYER} tel +44 7700 900461 card **** **** **** 4242</a></td><td>1</td><td>£24.00</td><td>£24.00</td></tr>
<tr><td>Zanzibar Unapproved Quilt</td><td>1</td><td>£61.50</td><td>£61.50</td></tr>
</table>
<table class="totals" width="100%">
<tr><td>Subtotal</td><td>£85.50</td></tr>
<tr><td><strong>Order total</strong></td><td><strong>£85.50</strong></td></tr>
</table>
<p>Paid with Visa ending in 4242 (card **** **** **** 4242). Backup card on file: 4111 1111 1111 1111.</p>
<h3>Delivery address</h3>
<p>Zelda Canary<br>77 Canary Wharf Lane<br>Lowestoft<br>NR33 0QX</p>
<p>Phone: +44 7700 900461 · Email: {BUYER}</p>
</body></html>
""".encode()
CAPTION = f"Love it! Paid with Visa ending in 4242, order {ORDER}; ask me at {BUYER} or 07700 900461."
REVIEW = f"Arrived fast (order {ORDER}); card 5555 4444 3333 1111 was charged once."


def fixture_purchases() -> list[Path]:
    """Fixture emails whose goldens are purchases of two items or more (one gets shared, one not)."""
    found = []
    for golden in sorted(FIXTURES.glob("*/*.json")):
        data = json.loads(golden.read_text())
        if data.get("status") == "purchase" and len(data.get("items") or []) >= 2:
            found.append(golden.with_suffix(".eml"))
    return found


def recipients(raw: bytes) -> set[str]:
    message = message_from_bytes(raw)
    fields = [value for name in ("To", "Cc", "Delivered-To", "X-Original-To") for value in message.get_all(name, [])]
    return {address.lower() for _, address in getaddresses(fields) if "@" in address}


def leaks(response, needles: list[str]) -> list[str]:
    """Needles found in a response body or headers, looked for in the raw text and the text with
    HTML/XML entities and JSON escapes undone (so escaping cannot hide a leak)."""
    text = response.text
    views = [text, htmlmod.unescape(text), htmlmod.unescape(htmlmod.unescape(text))]
    if "json" in response.headers.get("content-type", ""):
        views.append(json.dumps(response.json(), ensure_ascii=False))
    views.append("\n".join(f"{k}: {v}" for k, v in response.headers.items()))
    haystack = "\n".join(views).lower()
    found = [needle for needle in needles if needle.lower() in haystack]
    found += [f"last four {m}" for m in LAST_FOUR.findall("\n".join(views))]
    return found


def test_no_private_data_reaches_any_public_surface(settings, app, client, other_client, monkeypatch):
    zelda = make_user(settings, "zelda", email="zelda-account@example.com")
    make_user(settings, "otto")
    with session_scope(settings) as session:
        row = session.get(User, zelda.id)
        row.display_name, row.bio = "Zelda", "I buy lanterns."
        session.add(row)
        session.commit()

    # The canary email, shared item by item through the owner's own pages.
    outcome = receive(settings, zelda, CANARY_EMAIL)
    assert outcome.status == "parsed", outcome
    canary_id = outcome.purchase_id
    with session_scope(settings) as session:
        purchase = session.get(Purchase, canary_id)
        items = session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == canary_id)
                             .order_by(PurchaseItem.position)).all()
        assert purchase.order_number == ORDER  # the canaries are really in the private data
        assert ORDER in items[0].name and BUYER in items[0].name and "Zanzibar" in items[1].name
        lantern_id, quilt_id = items[0].id, items[1].id
        canary_public_id = purchase.public_id
    log_in(client, "zelda")
    page = f"/purchases/{canary_id}"
    assert post(client, f"/purchases/{canary_id}/items", {"approved": str(lantern_id)}, page=page).status_code == 303
    assert post(client, f"/purchases/{canary_id}/caption", {"caption": CAPTION}, page=page).status_code == 303
    with session_scope(settings) as session:
        assert session.get(PurchaseItem, lantern_id).approved and not session.get(PurchaseItem, quilt_id).approved
        assert session.get(Purchase, canary_id).caption == CAPTION
        session.add(Review(item_id=lantern_id, user_id=zelda.id, rating=5, body=REVIEW))
        shelf = Collection(user_id=zelda.id, name="Lights", slug="lights", description=f"Call {'+44 7700 900461'}")
        session.add(shelf)
        session.flush()
        session.add(CollectionItem(collection_id=shelf.id, item_id=lantern_id, position=0))
        session.add(CollectionItem(collection_id=shelf.id, item_id=quilt_id, position=1))
        otto = session.exec(select(User).where(User.handle == "otto")).one()
        session.add(Follow(follower_id=otto.id, followee_id=zelda.id))
        session.commit()

    # Fixture purchases: the first item shared, the others not; their order numbers, the buyers'
    # addresses and the unshared names are canaries too.
    needles = [*CANARIES, "zelda-account@example.com", "otto@example.org"]
    public_ids = [canary_public_id]
    shared_names: list[str] = []
    unshared: list[str] = []
    for path in fixture_purchases():
        raw = path.read_bytes()
        result = receive(settings, zelda, raw)
        if result.status != "parsed" or result.purchase_id is None:
            continue
        with session_scope(settings) as session:
            purchase = session.get(Purchase, result.purchase_id)
            if purchase.published_at is not None:
                continue  # a second email about a purchase already shared
            names = list(session.exec(select(PurchaseItem.name).where(PurchaseItem.purchase_id == purchase.id)
                                      .order_by(PurchaseItem.position)).all())
            public_ids.append(purchase.public_id)
            if purchase.order_number and len(purchase.order_number) >= 5:
                needles.append(purchase.order_number)
        approve(settings, result.purchase_id, {0})
        shared_names.append(names[0])
        unshared += names[1:]
        needles += sorted(recipients(raw))
    assert len(public_ids) >= 20, "the fixture purchases did not come through"
    # An unshared name that is part of a shared one (or too short to be telling) proves nothing.
    needles += [name for name in unshared
                if len(name) >= 8 and not any(name.lower() in shared.lower() for shared in shared_names)]

    # Every public surface.
    urls = ["/", "/u/zelda", "/u/zelda?page=2", "/u/zelda/feed.atom", "/u/zelda/c/lights",
            "/api/v1/users/zelda", "/api/v1/users/zelda/purchases", "/api/v1/users/zelda/purchases?page=2",
            "/openapi.json", "/api/docs", f"/u/zelda/p/{canary_public_id}?x=1"]
    urls += [f"/u/zelda/p/{public_id}" for public_id in public_ids]
    urls += [f"/api/v1/users/zelda/purchases/{public_id}" for public_id in public_ids]
    with session_scope(settings) as session:  # unshared purchases: their 404 pages must not leak either
        urls += [f"/u/zelda/p/{p}" for p in session.exec(select(Purchase.public_id).where(
            Purchase.user_id == zelda.id, Purchase.published_at.is_(None))).all()]  # type: ignore[union-attr]
    paths = {url.split("?")[0] for url in urls} | {"/feed", "/feed/events"}
    public_routes = [path for method, path, _ in app_routes(app)
                     if method == "GET" and path.startswith(("/u/", "/api/", "/feed"))]
    assert len(public_routes) >= 8
    for route in public_routes:  # a new public page must be added to this test
        assert any(path_pattern(route).match(path) for path in paths), f"{route} is not checked for leaks"

    # Anonymous. (The owner is not swept: on their own purchase page they get edit forms with their
    # own unredacted item names and review text, which is theirs to see.)
    seen_lantern = 0
    for url in urls:
        response = other_client.get(url, headers=HTML)
        assert response.status_code in (200, 404), (url, response.status_code)
        assert not leaks(response, needles), ("anonymous", url, leaks(response, needles))
        seen_lantern += "Brass Lantern" in response.text
    assert seen_lantern >= 6  # the shared item itself is there (profile, pages, feed, API, collection)

    # Another signed-in user, who follows zelda: the public pages plus the home feed and its live events.
    log_in(other_client, "otto")
    monkeypatch.setattr("web.routes.social.STREAM_MAX_SECONDS", 1.5)
    monkeypatch.setattr("web.routes.social.POLL_SECONDS", 0.2)
    per_viewer = [url for url in urls if not url.startswith("/api/")]  # the API ignores who asks
    for url in [*per_viewer, "/feed", "/feed/events?since=2000-01-01T00:00:00"]:
        response = other_client.get(url, headers=HTML)
        assert response.status_code in (200, 404), (url, response.status_code)
        assert not leaks(response, needles), ("other", url, leaks(response, needles))
        if url.startswith("/feed"):
            assert "/u/zelda/p/" in response.text, url  # shared purchases do reach followers
        if url.startswith("/feed/events"):
            assert "event: purchase" in response.text and "Brass Lantern" in response.text

    # The owner's private pages do show the private data: the canaries were real.
    own = client.get(f"/purchases/{canary_id}", headers=HTML)
    assert own.status_code == 200
    assert ORDER in own.text and "Zanzibar Unapproved Quilt" in own.text
    assert {ORDER, "Zanzibar Unapproved Quilt"} <= set(leaks(own, needles))  # the detector does detect


@pytest.mark.parametrize("text, hidden", [
    ("Visa ending in 4242", "4242"), ("**** **** **** 4242", "4242"), ("4111 1111 1111 1111", "4111"),
    ("call +44 7700 900461 now", "900461"), ("mail zelda.canary@example.net", "zelda"),
    ("ref CNRY-58213-QX", "58213"), ("xxxx-9876", "9876"), ("Karte endet mit 1234", "1234"),
])
def test_redaction_of_public_strings(text: str, hidden: str) -> None:
    from purchaseshare.redact import redact

    assert hidden not in redact(text, ("CNRY-58213-QX",))
