"""What the speed work on the public pages must not change, on SQLite and PostgreSQL: a constant
number of SQL queries per page whatever its size, memoized views and card HTML that are never
stale (the next request shows every change, including an item being un-shared), no session
cookie for anonymous readers, and the security headers from the pure ASGI middleware."""

from __future__ import annotations

import random
import re
import string
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import event
from sqlmodel import delete, select

from purchaseshare.clock import utcnow
from purchaseshare.db import get_engine, session_scope
from purchaseshare.models import Collection, Comment, Follow, Like, Purchase, User
from purchaseshare.public import PublicItem, PublicPurchase, PublicReview
from purchaseshare.redact import redact
from tests.web.conftest import counted, log_in, make_user
from tests.web.test_public import add_purchase, approve
from web.app import create_app
from web.deps import TEMPLATES
from web.money import header_locale

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's TestClient deprecation notice about httpx
    from fastapi.testclient import TestClient

HTML = {"accept": "text/html"}
CARD = re.compile(r'<article class="card">')


@pytest.fixture
def route_clients(settings) -> Iterator[tuple[TestClient, TestClient]]:
    """Two browsers on an app with the page cache off: the queries counted are the route's own
    (a cache hit would run none, whatever the route does)."""
    app = create_app(settings.model_copy(update={"page_cache_mb": 0}), run_worker=False)
    with TestClient(app, follow_redirects=False) as one, TestClient(app, follow_redirects=False) as two:
        yield one, two


def queries_for(client, settings, path: str) -> tuple[int, str]:
    client.get(path, headers=HTML)  # warm-up: the session user, caches
    with counted(settings) as calls:
        response = client.get(path, headers=HTML)
    assert response.status_code == 200
    return calls["n"], response.text


def shared(settings, user: User, count: int, start_minutes: int = 0) -> None:
    now = utcnow()
    for number in range(count):
        add_purchase(settings, user, [(f"{user.handle} thing {number}", True), ("private", False)],
                     published_at=now - timedelta(minutes=start_minutes + number))


def test_profile_and_feed_cost_the_same_queries_at_any_page_size(settings, route_clients):
    client, other_client = route_clients
    small, big, reader = make_user(settings, "small"), make_user(settings, "big"), make_user(settings, "reader")
    shared(settings, small, 2)
    shared(settings, big, 7)
    with session_scope(settings) as session:
        session.add(Like(user_id=reader.id, purchase_id=session.exec(
            select(Purchase.id).where(Purchase.user_id == big.id)).first()))
        session.commit()
    few, few_page = queries_for(other_client, settings, "/u/small")
    many, many_page = queries_for(other_client, settings, "/u/big")
    assert len(CARD.findall(few_page)) == 2 and len(CARD.findall(many_page)) == 7
    assert few == many and few <= 6

    with session_scope(settings) as session:
        session.add(Follow(follower_id=reader.id, followee_id=small.id))
        session.commit()
    log_in(client, "reader")
    one_followee, page = queries_for(client, settings, "/feed")
    assert len(CARD.findall(page)) == 2
    with session_scope(settings) as session:
        session.add(Follow(follower_id=reader.id, followee_id=big.id))
        session.commit()
    two_followees, page = queries_for(client, settings, "/feed")
    assert len(CARD.findall(page)) == 9 and page.count(">Unlike<") == 1  # the viewer's own like
    assert one_followee == two_followees and one_followee <= 6


def test_public_pages_cost_a_fixed_few_queries(settings, route_clients):
    """The exact queries of each public page (cache off): the owner and their counts come in ONE
    query (no ORM user, no separate follow counts), a page of purchases in two (rows, items), and
    collections, comments, the viewer's like or follow each cost one more only when the page has
    them to show - never one per purchase, item or comment."""
    signed_in, anonymous = route_clients
    alice, bob = make_user(settings, "alice"), make_user(settings, "bob")
    shared(settings, alice, 2)
    assert queries_for(anonymous, settings, "/u/alice")[0] == 3  # owner with counts, page, items
    shared(settings, alice, 9, start_minutes=10)
    with session_scope(settings) as session:
        session.add_all([Collection(user_id=alice.id, name=f"Set {n}", slug=f"set-{n}") for n in range(3)])
        session.add(Follow(follower_id=bob.id, followee_id=alice.id))
        session.commit()
    count, page = queries_for(anonymous, settings, "/u/alice")
    assert count == 4 and len(CARD.findall(page)) == 11 and "Set 2" in page and "1 follower" in page  # + collections

    many_items = add_purchase(settings, alice, [(f"thing {n}", True) for n in range(6)])
    count, page = queries_for(anonymous, settings, f"/u/alice/p/{many_items.public_id}")
    assert count == 2 and "thing 5" in page and "No comments yet." in page  # the row with its owner, the items
    with session_scope(settings) as session:
        session.add_all([Comment(purchase_id=many_items.id, user_id=bob.id, body=f"Nice {n}") for n in range(4)])
        session.commit()
    count, page = queries_for(anonymous, settings, f"/u/alice/p/{many_items.public_id}")
    assert count == 3 and "Nice 3" in page  # + the comments, all in one

    log_in(signed_in, "bob")  # + the session's user and the unread count on every signed-in page
    count, page = queries_for(signed_in, settings, "/u/alice")
    assert count == 4 + 3 and ">Unfollow<" in page  # + whether bob follows alice
    count, page = queries_for(signed_in, settings, "/feed")
    assert count == 2 + 2 and len(CARD.findall(page)) == 12 and "do not follow anyone" not in page
    with session_scope(settings) as session:
        session.exec(delete(Follow).where(Follow.follower_id == bob.id))
        session.commit()
    count, page = queries_for(signed_in, settings, "/feed")  # an empty feed asks whether bob follows anyone
    assert count == 2 + 2 and "do not follow anyone" in page


def test_memoized_views_and_cards_are_never_stale(settings, client):
    alice = make_user(settings, "alice")
    purchase = add_purchase(settings, alice, [("Lamp", True), ("Secret gift", False)], caption="Nice lamp")
    page = client.get("/u/alice", headers=HTML).text
    assert "Lamp" in page and "Nice lamp" in page and "10.00" in page and "Secret gift" not in page

    def edit(**values) -> str:
        with session_scope(settings) as session:
            row = session.get(Purchase, purchase.id)
            for key, value in values.items():
                setattr(row, key, value)
            session.add(row)
            session.commit()
        return client.get("/u/alice", headers=HTML).text

    assert "Brighter lamp" in edit(caption="Brighter lamp") and "Nice lamp" not in client.get("/u/alice").text
    assert "10.00" not in edit(hide_prices=True)
    assert "10.00" in edit(hide_prices=False)
    approve(settings, purchase.id, {0, 1})  # the owner shares the second item too
    assert "Secret gift" in client.get("/u/alice", headers=HTML).text
    approve(settings, purchase.id, {0})  # ... and takes it back: the next request must not show it
    page = client.get("/u/alice", headers=HTML).text
    assert "Secret gift" not in page and "Lamp" in page
    with session_scope(settings) as session:
        session.add(Like(user_id=alice.id, purchase_id=purchase.id))
        session.commit()
    assert "1 like," in client.get("/u/alice", headers=HTML).text
    approve(settings, purchase.id, set())  # nothing shared any more: the card is gone everywhere
    page = client.get("/u/alice", headers=HTML).text
    assert "Lamp" not in page and "Nothing shared yet" in page
    assert client.get(f"/u/alice/p/{purchase.public_id}", headers=HTML).status_code == 404
    assert edit(review="rejected").count('<article class="card">') == 0


def test_the_order_number_is_hidden_in_memoized_strings_too(settings, client):
    alice = make_user(settings, "alice")
    add_purchase(settings, alice, [("Gift for order 4471-XYZ", True)], order_number="4471-XYZ")
    add_purchase(settings, alice, [("Gift for order 4471-XYZ", True)], order_number="9999-ABC")
    page = client.get("/u/alice", headers=HTML).text
    # The same item name under two orders: redacted per (text, order number), not per text.
    cards = page.split('<article class="card">')[1:]
    assert len(cards) == 2
    assert sorted("Gift for order [hidden]" in card and "4471" not in card for card in cards) == [False, True]
    assert redact("ref 4471-XYZ", ("4471-XYZ",)) == "ref [hidden]" and redact("ref 4471-XYZ") == "ref 4471-XYZ"


def test_anonymous_public_pages_set_no_cookie_and_keep_security_headers(settings, client):
    alice = make_user(settings, "alice")
    add_purchase(settings, alice, [("Lamp", True)])
    response = client.get("/u/alice", headers=HTML)
    assert response.status_code == 200 and "set-cookie" not in response.headers
    assert "cache-control" not in response.headers  # the same for everyone: proxies may keep it
    for name in ("content-security-policy", "x-content-type-options", "referrer-policy", "x-frame-options"):
        assert response.headers[name]
    missing = client.get("/u/nobody", headers=HTML)
    assert missing.status_code == 404 and missing.headers["x-frame-options"] == "DENY"
    log_in(client, "alice")
    mine = client.get("/u/alice", headers=HTML)
    assert mine.headers["cache-control"] == "private, no-store" and mine.headers["x-content-type-options"]


def statements_for(client, settings, path: str) -> tuple[list[str], str]:
    """The SQL statements a (warm) request runs, and its page."""
    client.get(path, headers=HTML)
    engine, seen = get_engine(settings), []

    def record(_conn, _cursor, statement, *_args) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.get(path, headers=HTML)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 200
    return seen, response.text


def test_purchase_page_reads_no_purchase_row_and_no_count_it_already_has(settings, route_clients):
    """The public view already carries the purchase's like and comment counts: the page does not
    load the ORM purchase row again nor count likes, and with nothing to show it asks nothing
    about likes or comments (two queries fewer than before, whoever looks)."""
    client, _ = route_clients
    alice, bob = make_user(settings, "alice"), make_user(settings, "bob")
    quiet = add_purchase(settings, alice, [("Lamp", True)], order_number="4471-XYZ")
    busy = add_purchase(settings, alice, [("Chair", True)], order_number="9999-ABC")
    with session_scope(settings) as session:
        session.add_all([Like(user_id=bob.id, purchase_id=busy.id),
                         Comment(purchase_id=busy.id, user_id=bob.id, body="Order 9999-ABC? Lovely.")])
        session.commit()
    log_in(client, "bob")

    quiet_sql, page = statements_for(client, settings, f"/u/alice/p/{quiet.public_id}")
    assert "0 likes" in page and "No comments yet." in page and ">Like<" in page
    busy_sql, page = statements_for(client, settings, f"/u/alice/p/{busy.public_id}")
    assert "1 like<" in page and ">Unlike<" in page and "Order [hidden]? Lovely." in page and "9999" not in page

    for sql in quiet_sql + busy_sql:
        assert not sql.startswith("SELECT purchase.id, purchase.public_id, purchase.user_id"), sql  # the ORM row
        assert not re.match(r'SELECT count\(\*\) AS count_1 FROM "?like"?', sql), sql  # counted by the view
    own_like_or_comments = re.compile(r'SELECT ("?like"?\.id|comment\.id)')  # the two asked only when needed
    assert not any(own_like_or_comments.match(sql) for sql in quiet_sql), quiet_sql
    assert sum(bool(own_like_or_comments.match(sql)) for sql in busy_sql) == 2, busy_sql
    # With likes and comments: exactly two more (the viewer's own like, the comments).
    assert len(busy_sql) == len(quiet_sql) + 2


# The purchase card as public/_macros.html's `card` macro writes it (how the card body was written
# before it was written out for speed): the two must stay the same HTML.
MACRO_CARD = """{% from "public/_macros.html" import card with context %}
{% set lead = (purchase.items|selectattr("image")|first) or purchase.items[0] %}
{% set others = purchase.items|reject("sameas", lead)|list %}
{% call card(lead, purchase.path, purchase.merchant_name, purchase.bought_on) %}
  {% if others %}
  <ul class="others" aria-label="Also in this purchase">
    {% for item in others[:3] %}<li>{{ item.name }}{% if item.quantity != 1 %} <span class="muted">× {{ item.quantity }}</span>{% endif %}</li>{% endfor %}
    {% if others|length > 3 %}<li class="muted">and {{ others|length - 3 }} more</li>{% endif %}
  </ul>
  {% endif %}
  {% if purchase.caption %}<p class="caption">{{ purchase.caption }}</p>{% endif %}
  <p class="counts"><a href="{{ purchase.path }}">{{ purchase.likes }} like{{ "" if purchase.likes == 1 else "s" }}, {{ purchase.comments }} comment{{ "" if purchase.comments == 1 else "s" }}</a></p>
{% endcall %}
"""


def random_text(rng: random.Random, empty: bool = False) -> str | None:
    if empty and rng.random() < 0.3:
        return rng.choice([None, ""])
    letters = string.ascii_letters + "  éßñ<>&\"'×€"
    return "".join(rng.choice(letters) for _ in range(rng.randint(1, 24)))


def random_view(rng: random.Random, number: int) -> PublicPurchase:
    items = tuple(PublicItem(
        position=position, name=random_text(rng) or "x", quantity=rng.choice([1, 1, 2, 7]),
        price=rng.choice([None, Decimal(rng.randint(0, 99999)).scaleb(-rng.randint(0, 3))]),
        currency=rng.choice(["EUR", "JPY", "USD", None]), url=rng.choice([None, "https://shop.example/p/1"]),
        image=rng.choice([None, f"/media/{rng.getrandbits(64):016x}.webp"]),
        review=rng.choice([None, PublicReview(rating=rng.randint(1, 5), body="fine", verified="bought")]))
        for position in range(rng.randint(1, 6)))
    return PublicPurchase(public_id=f"p{number}", handle="someone", owner_name=random_text(rng) or "x",
                          merchant_name=random_text(rng, empty=True), merchant_domain=None,
                          bought_on=rng.choice([None, date(2025, rng.randint(1, 12), rng.randint(1, 28))]),
                          published_at=datetime(2026, 1, 2, 3, 4, tzinfo=UTC), caption=random_text(rng, empty=True),
                          items=items, likes=rng.randint(0, 3), comments=rng.randint(0, 3))


def test_the_written_out_card_is_the_card_macro():
    """public/_purchase_card_body.html writes the `card` macro out (importing macros with context
    costs a module run per card): for any view, in any locale, it is the macro's HTML."""
    rng = random.Random()
    macro_card, card = TEMPLATES.env.from_string(MACRO_CARD), TEMPLATES.get_template("public/_purchase_card_body.html")
    for number in range(200):
        view = random_view(rng, number)
        for language in ("en", "fr", "de-CH", "ja"):
            values = {"purchase": view, "image_key": "key", "locale": header_locale(language)}
            assert card.render(values).strip() == macro_card.render(values).strip(), view


def test_memoized_money_and_days_are_what_babel_writes():
    """format_money and |day are memoized (babel costs ~15 µs a call): for any amount (equal
    Decimals written apart too), currency, locale and date, in any order, the memo's answer is
    babel's."""
    from babel.dates import format_date

    from web.app import _day
    from web.money import _format_money, format_money

    rng = random.Random()
    for _ in range(400):
        digits = rng.randint(0, 4)
        amount = Decimal(rng.randint(0, 10**7)).scaleb(-digits)
        amount = amount.quantize(Decimal(1).scaleb(-rng.randint(digits, 5)))  # "1.5", "1.50", "1.5000"...
        currency, locale = rng.choice(["EUR", "JPY", "BHD", "USD", None]), header_locale(rng.choice(["en", "fr", "de-CH", "ja"]))
        assert format_money(amount, currency, locale) == _format_money(amount, currency, locale)
        when = datetime(rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                        tzinfo=timezone(timedelta(hours=rng.randint(-12, 14))))
        for value in (when, when.date()):  # the filter writes a datetime's own day, as babel does
            written = TEMPLATES.env.from_string("{{ value|day }}").render(value=value, locale=locale)
            assert written == format_date(value, "medium", locale=locale) == _day(when.date(), locale)
