"""The public side over HTTP: profiles (pagination, robots, collections), purchase pages (JSON-LD,
Open Graph), collection pages, Atom feeds and the read-only JSON API, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from lxml import etree, html
from sqlmodel import select

from purchaseshare.clock import utcnow
from purchaseshare.db import session_scope
from purchaseshare.models import Collection, CollectionItem, Purchase, PurchaseItem, Review, User
from tests.images.fakes import store_images
from tests.web.conftest import make_user, receive

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "emails"
ATOM = "{http://www.w3.org/2005/Atom}"
HTML = {"accept": "text/html"}


def add_purchase(settings, user: User, items: list[tuple[str, bool]], *, published: bool = True,
                 review: str = "reviewed", hide_prices: bool = False, caption: str | None = None,
                 published_at: datetime | None = None, merchant: str = "Wrenfield Books",
                 order_number: str | None = None) -> Purchase:
    """A purchase straight into the database: (name, approved) items priced 10.00, 11.00, ..."""
    with session_scope(settings) as session:
        when = published_at or utcnow()
        purchase = Purchase(user_id=user.id, merchant_name=merchant, merchant_domain="wrenfield-books.co.uk",
                            order_number=order_number, order_date=date(2025, 4, 14), currency="GBP",
                            review=review, hide_prices=hide_prices, caption=caption,
                            published_at=when if published else None)
        session.add(purchase)
        session.flush()
        for position, (name, approved) in enumerate(items):
            session.add(PurchaseItem(purchase_id=purchase.id, position=position, name=name, quantity=1,
                                     unit_price=Decimal(10 + position), line_total=Decimal(10 + position),
                                     url=f"https://shop.example/p/{position}?utm_source=mail&id={position}",
                                     image=f"https://img.example/{position}.jpg",
                                     approved=approved, approved_at=when if approved else None))
        session.commit()
        return purchase


def approve(settings, purchase_id: int, positions: set[int]) -> None:
    """What the owner's 'approve these items' does to the rows."""
    with session_scope(settings) as session:
        purchase = session.get(Purchase, purchase_id)
        items = session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == purchase_id)).all()
        for item in items:
            item.approved = item.position in positions
            item.approved_at = utcnow() if item.approved else None
            session.add(item)
        purchase.review, purchase.published_at = "reviewed", purchase.published_at or utcnow()
        session.add(purchase)
        session.commit()


def item_ids(settings, purchase_id: int) -> list[int]:
    with session_scope(settings) as session:
        return list(session.exec(select(PurchaseItem.id).where(PurchaseItem.purchase_id == purchase_id)
                                 .order_by(PurchaseItem.position)).all())


def ld_json(page: str) -> dict:
    scripts = html.fromstring(page).xpath('//script[@type="application/ld+json"]')
    assert len(scripts) == 1
    return json.loads(scripts[0].text)


def meta(page: str) -> dict[str, str]:
    tree = html.fromstring(page)
    found = {el.get("property") or el.get("name"): el.get("content") for el in tree.xpath("//head/meta")}
    return {k: v for k, v in found.items() if k}


# --- profile ---------------------------------------------------------------------------------


def test_profile_shows_approved_items_of_a_received_email_only(settings, client):
    alice = make_user(settings, "alice")
    outcome = receive(settings, alice, (FIXTURES / "amazon" / "amazon_3_multi_item.eml").read_bytes())
    assert outcome.status == "parsed"
    page = client.get("/u/alice", headers=HTML)
    assert page.status_code == 200 and "Nothing shared yet" in page.text  # private by default
    assert "Plant Pot" not in page.text

    approve(settings, outcome.purchase_id, {0, 2})
    page = client.get("/u/alice", headers=HTML)
    assert page.status_code == 200
    assert "Ceramic Plant Pot Set" in page.text and "Pruning Shears" in page.text
    assert "Compost" not in page.text  # not approved
    assert "203-7716405-2290318" not in page.text  # the order number
    assert "1081.47" not in page.text  # the order total would reveal the unapproved item
    tree = html.fromstring(page.text)
    # Its image is shown once the worker stored it, from our origin only (issue 13).
    assert not tree.xpath('//img[@alt="Ceramic Plant Pot Set, Matt White, 3 Sizes"]/@src')
    stored = store_images(settings, outcome.purchase_id)
    page = client.get("/u/alice", headers=HTML)
    tree = html.fromstring(page.text)
    assert tree.xpath('//img[@alt="Ceramic Plant Pot Set, Matt White, 3 Sizes"]/@src') == [stored[0]]
    assert "£18.49" in page.text  # the viewer's locale (English by default) writes the money
    # The profile's card leads to the purchase page, where each item has its shop link.
    path = tree.xpath('//article[@class="card"]//h3/a/@href')[0]
    tree = html.fromstring(client.get(path, headers=HTML).text)
    assert [a.get("href") for a in tree.xpath('//a[starts-with(text(), "Buy it too")]')] == [
        "https://www.amazon.co.uk/dp/B01UKTEST1", "https://www.amazon.co.uk/dp/B01UKTEST3"]


def test_profile_robots_feed_link_and_unknown_handle(settings, client):
    bob = make_user(settings, "bob")
    add_purchase(settings, bob, [("Kettle", True)])
    page = client.get("/u/bob", headers=HTML)
    tree = html.fromstring(page.text)
    assert tree.xpath('//meta[@name="robots"]/@content') == ["noindex"]
    assert page.headers["x-robots-tag"] == "noindex"
    assert tree.xpath('//link[@rel="alternate"][@type="application/atom+xml"]/@href') == ["/u/bob/feed.atom"]
    assert client.get("/u/BOB", headers=HTML).status_code == 200  # handles are case-insensitive
    missing = client.get("/u/nobody", headers=HTML)
    assert missing.status_code == 404 and "Not found" in missing.text

    with session_scope(settings) as session:
        row = session.get(User, bob.id)
        row.allow_indexing = True
        session.add(row)
        session.commit()
    page = client.get("/u/bob", headers=HTML)
    assert html.fromstring(page.text).xpath('//meta[@name="robots"]/@content') == ["index, follow"]
    assert "x-robots-tag" not in page.headers


def test_profile_paginates_newest_first(settings, client):
    carol = make_user(settings, "carol")
    start = utcnow() - timedelta(days=30)
    for n in range(23):
        add_purchase(settings, carol, [(f"Thing number {n:02d}", True)], published_at=start + timedelta(hours=n))
    add_purchase(settings, carol, [("Never shared", False)], published=False)

    first = client.get("/u/carol", headers=HTML)
    names = re.findall(r"Thing number (\d\d)", html.fromstring(first.text).xpath("string(//section[@aria-labelledby='purchases'])"))
    assert list(dict.fromkeys(names)) == [f"{n:02d}" for n in range(22, 2, -1)]  # 20 newest
    tree = html.fromstring(first.text)
    assert tree.xpath('//nav[@class="pager"]//a[@rel="next"]/@href') == ["/u/carol?page=2"]
    assert not tree.xpath('//nav[@class="pager"]//a[@rel="prev"]')

    second = client.get("/u/carol?page=2", headers=HTML)
    tree = html.fromstring(second.text)
    names = re.findall(r"Thing number (\d\d)", tree.xpath("string(//section[@aria-labelledby='purchases'])"))
    assert list(dict.fromkeys(names)) == ["02", "01", "00"]
    assert tree.xpath('//nav[@class="pager"]//a[@rel="prev"]/@href') == ["/u/carol?page=1"]
    assert not tree.xpath('//nav[@class="pager"]//a[@rel="next"]')
    assert "Never shared" not in first.text + second.text
    assert "No more shared purchases" in client.get("/u/carol?page=3", headers=HTML).text
    assert client.get("/u/carol?page=0", headers=HTML).status_code == 422


def test_profile_lists_collections(settings, client):
    dora = make_user(settings, "dora")
    with session_scope(settings) as session:
        session.add(Collection(user_id=dora.id, name="Garden <tools>", slug="garden"))
        session.commit()
    page = client.get("/u/dora", headers=HTML)
    tree = html.fromstring(page.text)
    assert tree.xpath('//a[@href="/u/dora/c/garden"]/text()') == ["Garden <tools>"]
    assert "Garden &lt;tools&gt;" in page.text  # escaped


# --- purchase page ---------------------------------------------------------------------------


def test_purchase_page_items_json_ld_and_open_graph(settings, client):
    erin = make_user(settings, "erin")
    purchase = add_purchase(settings, erin, [("Teapot </script><script>alert(1)</script>", True),
                                             ("Hidden cosy", False), ("Cups & saucers", True)],
                            caption="For the new flat")
    teapot_id = item_ids(settings, purchase.id)[0]
    with session_scope(settings) as session:
        session.add(Review(item_id=teapot_id, user_id=erin.id, rating=4, body="Pours well"))
        session.commit()

    stored = store_images(settings, purchase.id)
    page = client.get(f"/u/erin/p/{purchase.public_id}", headers=HTML)
    assert page.status_code == 200
    assert "Hidden cosy" not in page.text
    assert "<script>alert(1)" not in page.text
    data = ld_json(page.text)  # the "</script>" in the name did not end the element
    products = data["@graph"]
    assert data["@context"] == "https://schema.org"
    assert [p["name"] for p in products] == ["Teapot </script><script>alert(1)</script>", "Cups & saucers"]
    teapot, cups = products
    assert teapot["offers"] == {"@type": "Offer", "url": "https://shop.example/p/0?id=0", "price": "10.00",
                                "priceCurrency": "GBP",
                                "seller": {"@type": "Organization", "name": "Wrenfield Books"}}
    assert teapot["review"]["reviewRating"]["ratingValue"] == 4 and teapot["review"]["reviewBody"] == "Pours well"
    assert teapot["review"]["author"] == {"@type": "Person", "name": "erin"}
    assert teapot["aggregateRating"] == {"@type": "AggregateRating", "ratingValue": 4, "reviewCount": 1,
                                         "bestRating": 5, "worstRating": 1}
    assert "review" not in cups and cups["offers"]["price"] == "12.00"
    assert "Verified purchase: bought at Wrenfield Books on 2025-04-14" in page.text

    tags = meta(page.text)
    url = f"{settings.base_url}/u/erin/p/{purchase.public_id}"
    # Unfurlers fetch og:image: our stored copy too, never the remote server.
    assert tags["og:url"] == url and tags["og:image"] == settings.base_url + stored[0]
    assert teapot["image"] == settings.base_url + stored[0] and cups["image"] == settings.base_url + stored[2]
    assert tags["og:title"].startswith("Teapot </script>") and tags["og:title"].endswith("and 1 more from Wrenfield Books")
    assert tags["og:description"] == "For the new flat"
    assert tags["twitter:card"] == "summary_large_image"
    assert html.fromstring(page.text).xpath('//link[@rel="canonical"]/@href') == [url]


def test_hidden_prices_stay_hidden_everywhere(settings, client):
    fay = make_user(settings, "fay")
    purchase = add_purchase(settings, fay, [("Quiet blender", True)], hide_prices=True)
    page = client.get(f"/u/fay/p/{purchase.public_id}", headers=HTML)
    offer = ld_json(page.text)["@graph"][0]["offers"]
    assert "price" not in offer and "priceCurrency" not in offer
    assert "10.00" not in page.text and "GBP" not in page.text
    assert client.get("/api/v1/users/fay/purchases").json()[0]["items"][0]["price"] is None
    assert "10.00" not in client.get("/u/fay/feed.atom").text


def test_purchase_page_404s(settings, client):
    gil, hal = make_user(settings, "gil"), make_user(settings, "hal")
    shared = add_purchase(settings, gil, [("Shared lamp", True)])
    unpublished = add_purchase(settings, gil, [("Private lamp", False)], published=False, review="new")
    rejected = add_purchase(settings, gil, [("Rejected lamp", True)], review="rejected")
    none_approved = add_purchase(settings, gil, [("Unapproved lamp", False)])
    add_purchase(settings, hal, [("Hal's lamp", True)])
    assert client.get(f"/u/gil/p/{shared.public_id}", headers=HTML).status_code == 200
    for path in (f"/u/gil/p/{unpublished.public_id}", f"/u/gil/p/{rejected.public_id}",
                 f"/u/gil/p/{none_approved.public_id}", f"/u/hal/p/{shared.public_id}",
                 f"/u/nobody/p/{shared.public_id}", "/u/gil/p/nope", f"/u/gil/p/{shared.id}",
                 f"/api/v1/users/gil/purchases/{rejected.public_id}",
                 f"/api/v1/users/hal/purchases/{shared.public_id}"):
        assert client.get(path, headers=HTML).status_code == 404, path


# --- collections -----------------------------------------------------------------------------


def test_collection_page_shows_only_shared_items(settings, client):
    ivy, jon = make_user(settings, "ivy"), make_user(settings, "jon")
    shared = add_purchase(settings, ivy, [("Trowel", True), ("Secret gloves", False)])
    private = add_purchase(settings, ivy, [("Private rake", True)], published=False)
    rejected = add_purchase(settings, ivy, [("Rejected hoe", True)], review="rejected")
    jons = add_purchase(settings, jon, [("Jon's spade", True)])
    ids = item_ids(settings, shared.id) + item_ids(settings, private.id) + item_ids(settings, rejected.id) \
        + item_ids(settings, jons.id)
    with session_scope(settings) as session:
        garden = Collection(user_id=ivy.id, name="Garden", slug="garden", description="Things that grow things")
        session.add(garden)
        session.flush()
        for position, item_id in enumerate(ids):
            session.add(CollectionItem(collection_id=garden.id, item_id=item_id, position=position))
        session.commit()
    page = client.get("/u/ivy/c/garden", headers=HTML)
    assert page.status_code == 200
    assert "Trowel" in page.text and "Things that grow things" in page.text
    for name in ("Secret gloves", "Private rake", "Rejected hoe", "Jon&#39;s spade", "Jon's spade"):
        assert name not in page.text
    assert html.fromstring(page.text).xpath('//a[text()="Trowel"]/@href') == [f"/u/ivy/p/{shared.public_id}"]
    assert client.get("/u/ivy/c/nope", headers=HTML).status_code == 404
    assert client.get("/u/jon/c/garden", headers=HTML).status_code == 404


# --- Atom ------------------------------------------------------------------------------------


def test_atom_feed_is_valid_and_public_only(settings, client):
    kim = make_user(settings, "kim")
    start = utcnow() - timedelta(days=90)
    for n in range(52):
        add_purchase(settings, kim, [(f"Record {n:02d}", True), (f"Secret record {n:02d}", False)],
                     published_at=start + timedelta(hours=n), caption="Spinning <b>now</b>" if n == 51 else None)
    response = client.get("/u/kim/feed.atom")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = etree.fromstring(response.content)
    assert feed.tag == f"{ATOM}feed"
    assert feed.findtext(f"{ATOM}id") == f"{settings.base_url}/u/kim"
    assert feed.findtext(f"{ATOM}title") == "kim on PurchaseShare"
    assert feed.find(f"{ATOM}author/{ATOM}name").text == "kim"
    assert feed.find(f"{ATOM}link[@rel='self']").get("href") == f"{settings.base_url}/u/kim/feed.atom"
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == 50
    assert entries[0].findtext(f"{ATOM}title") == "Record 51 from Wrenfield Books"
    assert entries[-1].findtext(f"{ATOM}title") == "Record 02 from Wrenfield Books"
    assert feed.findtext(f"{ATOM}updated") == entries[0].findtext(f"{ATOM}updated")
    for entry in entries:
        for tag in ("id", "title", "updated"):
            assert entry.findtext(f"{ATOM}{tag}")
        datetime.fromisoformat(entry.findtext(f"{ATOM}updated"))
        assert entry.find(f"{ATOM}link").get("href") == entry.findtext(f"{ATOM}id")
        assert entry.find(f"{ATOM}content").get("type") == "xhtml"
    first = etree.tostring(entries[0]).decode()
    assert "Spinning &lt;b&gt;now&lt;/b&gt;" in first  # text, not markup
    assert "Secret record" not in response.text
    assert client.get("/u/nobody/feed.atom").status_code == 404


# --- JSON API --------------------------------------------------------------------------------


def test_api_lists_and_shows_public_purchases(settings, client):
    lea = make_user(settings, "lea")
    for n in range(21):
        purchase = add_purchase(settings, lea, [(f"Book {n:02d}", True), ("Diary", False)],
                                published_at=utcnow() - timedelta(days=30 - n))
    stored = store_images(settings, purchase.id)
    first = client.get("/api/v1/users/lea/purchases")
    assert first.status_code == 200
    body = first.json()
    assert len(body) == 20 and body[0]["id"] == purchase.public_id
    assert first.headers["link"] == f'<{settings.base_url}/api/v1/users/lea/purchases?page=2>; rel="next"'
    assert body[0] == {
        "id": purchase.public_id, "user": "lea", "url": f"{settings.base_url}/u/lea/p/{purchase.public_id}",
        "merchant": {"name": "Wrenfield Books", "domain": "wrenfield-books.co.uk"}, "bought_on": "2025-04-14",
        "shared_at": body[0]["shared_at"], "caption": None, "likes": 0, "comments": 0,
        "items": [{"name": "Book 20", "quantity": 1, "price": "10", "currency": "GBP",
                   "url": "https://shop.example/p/0?id=0", "image": settings.base_url + stored[0], "review": None}]}
    second = client.get("/api/v1/users/lea/purchases?page=2")
    assert [p["items"][0]["name"] for p in second.json()] == ["Book 00"] and "link" not in second.headers
    assert "Diary" not in first.text + second.text
    assert client.get(f"/api/v1/users/lea/purchases/{purchase.public_id}").json() == body[0]
    user = client.get("/api/v1/users/lea").json()
    assert user["handle"] == "lea" and user["feed"] == f"{settings.base_url}/u/lea/feed.atom"
    assert "email" not in user and "lea@example.org" not in json.dumps(user)
    for path in ("/api/v1/users/nobody", "/api/v1/users/nobody/purchases", "/api/v1/users/lea/purchases/nope"):
        missing = client.get(path)
        assert missing.status_code == 404 and missing.json() == {"detail": "Not found"}


def test_openapi_documents_the_api(settings, client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    listing = paths["/api/v1/users/{handle}/purchases"]["get"]
    schema = listing["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["type"] == "array" and schema["items"]["$ref"] == "#/components/schemas/PurchaseOut"
    assert {p["name"] for p in listing["parameters"]} == {"handle", "page"}
    assert "404" in listing["responses"]
    assert paths["/api/v1/users/{handle}"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"]["$ref"] == "#/components/schemas/UserOut"
    assert "/api/v1/users/{handle}/purchases/{public_id}" in paths
    item = spec["components"]["schemas"]["ItemOut"]["properties"]
    assert set(item) == {"name", "quantity", "price", "currency", "url", "image", "review"}
    assert not any(p.startswith("/u/") for p in paths)  # HTML pages stay out of the API description
