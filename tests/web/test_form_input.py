"""What people type into the owner's forms (issue 13, bugs 1-3), on SQLite and PostgreSQL: amounts
in the visitor's notation kept to the currency's minor units, no negative item prices, each error
beside its field, one length limit per field shared by the form and the server, and an HTML page
(never the input echoed back) for a text over its limit."""

from __future__ import annotations

import random
import re
from decimal import Decimal

import pytest
from babel import Locale
from sqlmodel import select

from purchaseshare.db import session_scope
from purchaseshare.limits import TEXT_MAX
from purchaseshare.models import Collection, Comment, Purchase, PurchaseItem, Review
from tests.web.conftest import log_in, make_user, post
from web.money import AmountError, parse_amount

EN, DE, FR = Locale.parse("en"), Locale.parse("de"), Locale.parse("fr")
HTML = {"accept": "text/html"}


@pytest.mark.parametrize(("text", "locale", "currency", "expected"), [
    ("12.5", EN, "USD", "12.50"), ("12,5", EN, "USD", "12.50"), ("1,5", DE, "EUR", "1.50"),
    ("1.5", DE, "EUR", "1.50"), ("1 234,50", FR, "EUR", "1234.50"), ("1\u202f234,50", FR, "EUR", "1234.50"),
    ("1.234,50", DE, "EUR", "1234.50"), ("1,234.50", EN, "USD", "1234.50"), ("1,234", EN, "USD", "1234.00"),
    ("1.234", DE, "EUR", "1234.00"), ("1'234.50", EN, "CHF", "1234.50"), ("1,234,567", EN, "USD", "1234567.00"),
    ("1200", EN, "JPY", "1200"), ("1,200", EN, "JPY", "1200"), ("0.125", EN, "BHD", "0.125"),
    ("12.340", EN, "USD", "12.34"), ("7", EN, None, "7.00"), ("", EN, "USD", None), ("  ", EN, "USD", None),
])
def test_amounts_as_people_type_them(text, locale, currency, expected):
    found = parse_amount(text, locale=locale, currency=currency)
    assert found == (None if expected is None else Decimal(expected))
    assert found is None or str(found) == expected  # quantized: the currency's minor units, exactly


@pytest.mark.parametrize(("text", "locale", "currency", "message"), [
    ("12.345", EN, "USD", "USD amounts have at most 2 decimals"),
    ("1,234", DE, "EUR", "EUR amounts have at most 2 decimals"),  # a decimal comma here: 1.234
    ("1200.5", EN, "JPY", "JPY amounts have no decimals"),
    ("-5", EN, "USD", "not negative"), ("1,2.3", EN, "USD", "enter an amount"), ("12,3x", EN, "USD", "enter an amount"),
    ("1e5", EN, "USD", "enter an amount"), ("NaN", EN, "USD", "enter an amount"), ("12.", EN, "USD", "enter an amount"),
    ("1.2.3,4", EN, "USD", "enter an amount"), ("1" * 13, EN, "USD", "enter an amount"),
])
def test_amounts_refused_with_a_reason(text, locale, currency, message):
    with pytest.raises(AmountError, match=message):
        parse_amount(text, locale=locale, currency=currency)


def test_random_amounts_round_trip_in_every_notation():
    rng = random.Random()
    for _ in range(300):
        value = Decimal(rng.randint(0, 10**9)).scaleb(-2)
        whole, cents = f"{value:.2f}".split(".")
        groups = f"{int(whole):,}"
        for text, locale in [(f"{groups}.{cents}", EN), (f"{groups.replace(',', '.')},{cents}", DE),
                             (f"{groups.replace(',', ' ')},{cents}", FR), (f"{whole},{cents}", EN),
                             (f"{whole}.{cents}", DE)]:
            assert parse_amount(text, locale=locale, currency="EUR") == value, text


def test_negative_discount_is_allowed_only_where_asked():
    assert parse_amount("-5,50", locale=DE, currency="EUR", negative=True) == Decimal("-5.50")


@pytest.fixture
def alice(settings, client):
    user = make_user(settings, "alice")
    log_in(client, "alice")
    return user


def new_purchase(client, data: dict, language: str = "en"):
    return client.post("/purchases/new", data={**data, "csrf_token": _token(client)},
                       headers={**HTML, "accept-language": language})


def _token(client) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/purchases/new", headers=HTML).text).group(1)


def stored(settings, purchase_id: int) -> tuple[Purchase, list[PurchaseItem]]:
    with session_scope(settings) as session:
        items = session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == purchase_id)
                             .order_by(PurchaseItem.position)).all()
        return session.get(Purchase, purchase_id), list(items)


def beside(page: str, name: str) -> str:
    """The error shown beside the field `name` (its id is named by the field's aria-describedby)."""
    assert f'aria-describedby="err-{name}"' in page or f"err-{name}" in page, name
    found = re.search(rf'<span class="error field-error" id="err-{re.escape(name)}">([^<]*)</span>', page)
    assert found, f"no error beside {name}"
    return found.group(1)


def test_manual_entry_form_opens_empty(settings, client, alice):
    page = client.get("/purchases/new", headers=HTML).text
    assert "built-in method" not in page
    area = re.search(r'<textarea id="items"[^>]*>(.*?)</textarea>', page, re.S)
    assert area and area.group(1) == ""


def test_manual_entry_reads_the_visitors_notation(settings, client, alice):
    response = new_purchase(client, {"merchant_name": "Bäckerei", "currency": "EUR",
                                     "items": "2 x Brezel @ 1,5\nKuchen @ 1 234,50"}, "de-DE,de;q=0.9")
    assert response.status_code == 303, response.text[:2000]
    purchase, items = stored(settings, int(response.headers["location"].rsplit("/", 1)[1]))
    assert [(i.name, i.quantity, i.unit_price) for i in items] == [("Brezel", 2, Decimal("1.50")),
                                                                   ("Kuchen", 1, Decimal("1234.50"))]
    assert purchase.total == Decimal("1237.50")

    response = new_purchase(client, {"merchant_name": "Shop", "currency": "JPY", "items": "Tea @ 1,200",
                                     "discount": "200"}, "en-US")
    purchase, items = stored(settings, int(response.headers["location"].rsplit("/", 1)[1]))
    assert (items[0].unit_price, purchase.discount, purchase.total) == (Decimal(1200), Decimal(200), Decimal(1000))


def test_manual_entry_errors_sit_beside_their_fields(settings, client, alice):
    for data, field, message in [
        ({"currency": "USD", "items": "Mug @ -5"}, "items", "item line 1 price: not negative"),
        ({"currency": "USD", "items": "Mug @ 12.345"}, "items", "USD amounts have at most 2 decimals"),
        ({"currency": "JPY", "items": "Mug", "total": "1200.50"}, "total", "JPY amounts have no decimals"),
        ({"currency": "EUR", "items": "Mug", "total": "-3"}, "total", "total: not negative"),
        ({"currency": "ZZZ", "items": "Mug"}, "currency", "not an ISO 4217 code"),
        ({"currency": "EUR", "items": "Mug", "discount": "abc"}, "discount", "discount: enter an amount"),
    ]:
        response = new_purchase(client, {"merchant_name": "Corner Shop", **data})
        assert response.status_code == 400, data
        page = response.text
        assert message in beside(page, field), (data, page[:3000])
        top = page.split('role="alert"', 1)[1].split("</div>", 1)[0]
        assert message in top  # and in the list at the top
        assert 'value="Corner Shop"' in page
    with session_scope(settings) as session:
        assert session.exec(select(Purchase)).all() == []


def test_item_prices_are_never_negative_and_kept_to_minor_units(settings, client, other_client, alice):
    response = new_purchase(client, {"merchant_name": "Shop", "currency": "USD", "items": "Lamp @ 20"})
    purchase_id = int(response.headers["location"].rsplit("/", 1)[1])
    page = f"/purchases/{purchase_id}"
    for data, field, message in [
        ({"name": "Coupon", "unit_price": "-5"}, "new-unit_price", "new item price: not negative"),
        ({"name": "Coupon", "unit_price": "12.345"}, "new-unit_price", "USD amounts have at most 2 decimals"),
    ]:
        response = post(client, f"{page}/add-item", data, page=page)
        assert response.status_code == 400 and message in beside(response.text, field)
    [lamp] = stored(settings, purchase_id)[1]
    response = post(client, f"{page}/edit", {f"item-{lamp.id}-name": "Lamp", f"item-{lamp.id}-unit_price": "-1"},
                    page=page)
    assert response.status_code == 400 and "not negative" in beside(response.text, f"item-{lamp.id}-unit_price")

    response = client.post(f"{page}/edit", data={"total": "1.234,5", "discount": "4,50", "csrf_token": _token(client)},
                           headers={**HTML, "accept-language": "de"})
    assert response.status_code == 303
    purchase, _ = stored(settings, purchase_id)
    assert (purchase.total, purchase.discount) == (Decimal("1234.50"), Decimal("4.50"))


def test_a_parsed_negative_line_does_not_block_corrections(settings, client, alice):
    response = new_purchase(client, {"merchant_name": "Shop", "currency": "EUR", "items": "Lamp @ 20"})
    purchase_id = int(response.headers["location"].rsplit("/", 1)[1])
    with session_scope(settings) as session:
        session.add(PurchaseItem(purchase_id=purchase_id, position=1, name="Voucher", unit_price=Decimal("-5.00")))
        session.commit()
    _lamp, voucher = stored(settings, purchase_id)[1]
    page = f"/purchases/{purchase_id}"
    response = post(client, f"{page}/edit", {"merchant_name": "Lamp shop", f"item-{voucher.id}-unit_price": "-5.00"},
                    page=page)
    assert response.status_code == 303 and stored(settings, purchase_id)[0].merchant_name == "Lamp shop"
    response = post(client, f"{page}/edit", {f"item-{voucher.id}-unit_price": "-6.00"}, page=page)
    assert response.status_code == 400


def test_each_limit_is_the_same_in_the_form_and_on_the_server(settings, client, alice):
    response = new_purchase(client, {"merchant_name": "Shop", "currency": "EUR", "items": "Lamp @ 20"})
    page = f"/purchases/{int(response.headers['location'].rsplit('/', 1)[1])}"
    text = client.get(page, headers=HTML).text
    assert f'name="merchant_name" maxlength="{TEXT_MAX["merchant"]}"' in text
    assert f'name="name" required maxlength="{TEXT_MAX["item_name"]}"' in text
    assert f'id="caption" name="caption" rows="2" data-maxlength="{TEXT_MAX["caption"]}"' in text
    assert not re.search(r'<textarea[^>]* maxlength=', text)  # a text area's maxlength would cut a paste silently

    limit = TEXT_MAX["caption"]
    assert post(client, f"{page}/caption", {"caption": "c" * limit}, page=page).status_code == 303
    # A line break counts once, as the browser counts it, though it is sent as CR LF.
    assert post(client, f"{page}/caption", {"caption": "c\r\n" * (limit // 2)}, page=page).status_code == 303
    response = post(client, f"{page}/caption", {"caption": "d" * (limit + 1)}, page=page)
    assert response.status_code == 400 and f"at most {limit} characters" in beside(response.text, "caption")

    response = new_purchase(client, {"merchant_name": "m" * (TEXT_MAX["merchant"] + 1), "items": "x"})
    assert response.status_code == 400 and f"at most {TEXT_MAX['merchant']}" in beside(response.text, "merchant_name")
    settings_page = client.get("/settings", headers=HTML).text
    assert f'data-maxlength="{TEXT_MAX["bio"]}"' in settings_page
    response = post(client, "/settings", {"handle": "alice", "bio": "b" * (TEXT_MAX["bio"] + 1)}, page="/settings")
    assert response.status_code == 400 and f"bio: at most {TEXT_MAX['bio']} characters" in response.text


def test_over_long_social_texts_get_an_html_page_without_the_text(settings, client, alice, other_client):
    from purchaseshare import sharing

    response = new_purchase(client, {"merchant_name": "Shop", "currency": "EUR", "items": "Lamp @ 20"})
    purchase_id = int(response.headers["location"].rsplit("/", 1)[1])
    with session_scope(settings) as session:
        purchase = session.get(Purchase, purchase_id)
        sharing.approve_all(purchase, session.exec(select(PurchaseItem)).all())
        session.commit()
        path, item_id = f"/u/alice/p/{purchase.public_id}", session.exec(select(PurchaseItem.id)).one()
    make_user(settings, "bob")
    log_in(other_client, "bob")
    assert f'data-maxlength="{TEXT_MAX["comment"]}"' in other_client.get(path, headers=HTML).text
    canary = "CANARY-" + "z" * TEXT_MAX["comment"]
    response = post(other_client, f"{path}/comments", {"body": canary}, page=path)
    assert response.status_code == 400 and response.headers["content-type"].startswith("text/html")
    assert "CANARY" not in response.text and f"at most {TEXT_MAX['comment']}" in response.text
    assert f'href="{path}#comments"' in response.text  # the way back to the form
    answer = other_client.post(f"{path}/comments", data={"body": canary, "csrf_token": _token(other_client)},
                               headers={"accept": "application/json"})
    assert answer.status_code == 400 and "CANARY" not in answer.text and "at most" in answer.json()["detail"]
    # Exactly the limit, with line breaks sent as CR LF: posted.
    fits = "w\r\n" * (TEXT_MAX["comment"] // 2)
    assert post(other_client, f"{path}/comments", {"body": fits}, page=path).status_code == 303

    response = post(client, f"/items/{item_id}/review", {"rating": "5", "body": "r" * (TEXT_MAX["review"] + 1)},
                    page=path)
    assert response.status_code == 400 and f"at most {TEXT_MAX['review']}" in response.text
    response = post(client, "/collections", {"name": "Desk", "description": "q" * 1001}, page="/collections")
    assert response.status_code == 400 and "q" * 100 not in response.text
    with session_scope(settings) as session:
        assert len(session.exec(select(Comment)).all()) == 1
        assert session.exec(select(Review)).all() == [] and session.exec(select(Collection)).all() == []
