"""The owner sees how sure the email reading was (parser layer, confidence in words, each stored
warning; a doubtful total singled out beside the total with what to check); nobody else ever
does - not on the public page, the profile, the feeds or the API. SQLite and PostgreSQL."""

from __future__ import annotations

import html
import json
import random
from pathlib import Path

import pytest

from purchaseshare.db import session_scope
from purchaseshare.models import Purchase
from tests.web.conftest import log_in, make_user, post, receive
from web.reading import layer_words, level_words, stored_warnings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "emails"
AMAZON = (FIXTURES / "amazon" / "amazon_1.eml").read_bytes()
HTML = {"accept": "text/html"}


@pytest.fixture
def alice(settings, client):
    user = make_user(settings, "alice")
    log_in(client, "alice")
    return user


def set_reading(settings, purchase_id: int, **fields) -> None:
    with session_scope(settings) as session:
        purchase = session.get(Purchase, purchase_id)
        for name, value in fields.items():
            setattr(purchase, name, value)
        session.commit()


def text_of(page: str) -> str:
    return html.unescape(page)


def test_words_for_layers_levels_and_stored_warnings():
    assert layer_words("merchant:amazon") == "read by the Amazon parser"
    assert layer_words("generic") == "read by the generic reader"
    assert layer_words("schema_org") == "from schema.org data"
    assert layer_words(None) is None
    assert [level_words(s) for s in (0.95, 0.8, 0.79, 0.5, 0.49, None)] == ["high", "high", "medium", "medium",
                                                                          "low", None]
    assert stored_warnings('["a", "b"]') == ["a", "b"]
    assert stored_warnings("not json") == [] and stored_warnings('{"a": 1}') == [] and stored_warnings(None) == []


def test_owner_sees_layer_confidence_and_warnings(settings, client, alice):
    purchase_id = receive(settings, alice, AMAZON).purchase_id
    page = text_of(client.get(f"/purchases/{purchase_id}", headers=HTML).text)
    assert "How sure the reading is" in page and "Read by the Amazon parser,\n    confidence" in page
    assert ">high</strong>" in page and 'title="confidence score 0.95"' in page
    assert "check this total" not in page and "No warnings" in page

    rng = random.Random()
    total, parts = rng.randint(20, 90), rng.randint(100, 190)
    doubt = f"items do not add up to total: {parts}.00 != {total}.00"
    other = f"schema.org: unreadable JSON-LD block skipped ({rng.randint(1, 9)})"
    set_reading(settings, purchase_id, parser="generic", confidence=0.42, warnings=json.dumps([other, doubt]))
    page = text_of(client.get(f"/purchases/{purchase_id}", headers=HTML).text)
    assert "Read by the generic reader" in page and ">low</strong>" in page
    assert 'title="confidence score 0.42"' in page
    assert other in page and page.count(doubt) == 2  # in the list, and in the box beside the total
    # The doubt sits right after the total, with what to check.
    total_line = page.split("<strong>Total:</strong>", 1)[1].split("</p>", 1)[0]
    assert "check this total" in total_line
    assert "The total may be wrong." in page and "Compare the total with the email" in page

    set_reading(settings, purchase_id, parser="schema_org", confidence=0.6, warnings=json.dumps(["total not read"]))
    page = text_of(client.get(f"/purchases/{purchase_id}", headers=HTML).text)
    assert "From schema.org data" in page and ">medium</strong>" in page
    assert "The total was not read: enter it" in page


def test_lists_mark_purchases_whose_total_is_in_doubt(settings, client, alice):
    doubtful = receive(settings, alice, AMAZON).purchase_id
    fine = post(client, "/purchases/new", {"merchant_name": "Corner Shop", "currency": "EUR",
                                           "items": "Bread @ 2.10"}, page="/purchases/new")
    assert fine.status_code == 303
    assert "check the total" not in client.get("/inbox", headers=HTML).text
    set_reading(settings, doubtful, warnings=json.dumps(["the parts did not add up to the total"]))
    inbox = client.get("/inbox", headers=HTML).text
    assert inbox.count("⚠ check the total") == 1
    card = inbox.split(f'href="/purchases/{doubtful}"', 1)[1].split("</header>", 1)[0]
    assert "check the total" in card


def test_hand_entered_purchase_has_no_reading_section(settings, client, alice):
    response = post(client, "/purchases/new", {"merchant_name": "Bakery", "currency": "EUR",
                                               "items": "Croissant @ 1.20"}, page="/purchases/new")
    page = client.get(response.headers["location"], headers=HTML).text
    assert "How sure the reading is" not in page and "check this total" not in page


def test_public_side_never_shows_the_reading(settings, client, other_client, alice):
    purchase_id = receive(settings, alice, AMAZON).purchase_id
    doubt = "items do not add up to total: 131.17 != 74.77"
    set_reading(settings, purchase_id, parser="generic", confidence=0.31,
                warnings=json.dumps([doubt, "total not read", "merchant:amazon failed: ValueError: x"]))
    page = f"/purchases/{purchase_id}"
    assert post(client, f"{page}/approve", page=page).status_code == 303
    with session_scope(settings) as session:
        public_id = session.get(Purchase, purchase_id).public_id
    pages = [other_client.get("/u/alice", headers=HTML), other_client.get(f"/u/alice/p/{public_id}", headers=HTML),
             other_client.get("/u/alice/feed.atom"), other_client.get("/api/v1/users/alice/purchases"),
             other_client.get(f"/api/v1/users/alice/purchases/{public_id}"), other_client.get("/", headers=HTML),
             client.get(f"/u/alice/p/{public_id}", headers=HTML),  # the owner's own view of the public page too
             client.get("/feed", headers=HTML)]
    assert all(response.status_code == 200 for response in pages), [r.status_code for r in pages]
    shown = text_of("\n".join(response.text for response in pages))
    assert "French Press" in shown  # the purchase is there...
    for private in ("add up", "not read", "ValueError", "check the total", "check this total", "confidence",
                    "generic reader", "Amazon parser", "0.31", "How sure"):
        assert private not in shown, private  # ... and nothing of how it was read


def test_an_items_variant_line_is_stored_and_shown_to_its_owner_only(settings, client, other_client, alice):
    purchase_id = receive(settings, alice, AMAZON).purchase_id
    with session_scope(settings) as session:
        from sqlmodel import select

        from purchaseshare.models import PurchaseItem

        item = session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == purchase_id)).first()
        item.variant = "Colour: Saffron, Size: XL"
        session.commit()
    page = f"/purchases/{purchase_id}"
    assert "Colour: Saffron, Size: XL" in text_of(client.get(page, headers=HTML).text)
    assert post(client, f"{page}/approve", page=page).status_code == 303
    with session_scope(settings) as session:
        public_id = session.get(Purchase, purchase_id).public_id
    public = [other_client.get(f"/u/alice/p/{public_id}", headers=HTML), other_client.get("/u/alice", headers=HTML),
              other_client.get(f"/api/v1/users/alice/purchases/{public_id}")]
    assert all(r.status_code == 200 for r in public)
    assert not any("Saffron" in r.text for r in public)
