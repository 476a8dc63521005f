"""Public pages as a grid of cards (issue 13): one card for every thing bought (image or a CSS
placeholder tile first, name, price, merchant once, date), money and dates written in the VIEWER's
locale — which the memoized cards and the page cache keep apart — lists by purchase date, and
notifications that say which purchase they are about."""

from __future__ import annotations

import random
import re
import string
from datetime import date, timedelta
from decimal import Decimal

from babel import Locale
from lxml import html
from sqlmodel import select

from purchaseshare.clock import utcnow
from purchaseshare.db import session_scope
from purchaseshare.item_images import sync_avatar
from purchaseshare.models import Collection, CollectionItem, Like, Notification, Purchase, PurchaseItem, User
from tests.images.fakes import fake_fetcher, store_images
from tests.web.conftest import log_in, make_user
from web.money import format_money, header_locale

HTML = {"accept": "text/html"}
NBSP = re.compile(r"[\u00a0\u202f]")  # babel's no-break spaces, compared as plain spaces


def word(rng: random.Random, length: int = 7) -> str:
    return rng.choice(string.ascii_uppercase) + "".join(rng.choice(string.ascii_lowercase) for _ in range(length))


def add(settings, user: User, items: list[dict], *, merchant: str | None, bought: date | None,
        currency: str = "EUR", shared_ago: timedelta = timedelta(0)) -> Purchase:
    """A shared purchase straight into the database; items are dicts of PurchaseItem fields."""
    with session_scope(settings) as session:
        when = utcnow() - shared_ago
        purchase = Purchase(user_id=user.id, merchant_name=merchant, order_date=bought, currency=currency,
                            review="reviewed", published_at=when)
        session.add(purchase)
        session.flush()
        for position, fields in enumerate(items):
            session.add(PurchaseItem(purchase_id=purchase.id, position=position, approved=True, approved_at=when,
                                     **{"quantity": 1, **fields}))
        session.commit()
        return purchase


def text_of(page: str, xpath: str) -> list[str]:
    return [NBSP.sub(" ", " ".join(node.text_content().split())) for node in html.fromstring(page).xpath(xpath)]


CARDS = '//article[@class="card"]'


# --- money in the viewer's locale ---------------------------------------------------------------


def test_money_is_written_the_way_the_viewer_reads_it() -> None:
    en, fr, de, us = (header_locale(tag) for tag in ("en", "fr-FR,fr;q=0.9", "de", "en-US,en;q=0.5"))
    assert format_money(Decimal("14.90"), "EUR", en) == "€14.90"
    assert NBSP.sub(" ", format_money(Decimal("14.90"), "EUR", fr)) == "14,90 €"
    assert NBSP.sub(" ", format_money(Decimal("14.90"), "EUR", de)) == "14,90 €"
    assert format_money(Decimal("12"), "CAD", us) == "CA$12.00"
    assert format_money(Decimal("1200"), "JPY", en) == "¥1,200"  # no minor unit
    assert format_money(Decimal("1.799"), "EUR", en) == "€1.799"  # never rounded away
    assert format_money(Decimal("14.9000"), "EUR", en) == "€14.90"  # stored zeros are no digits
    assert NBSP.sub(" ", format_money(Decimal("1234.5"), None, fr)) == "1 234,50"  # no currency known
    assert header_locale("xx-unknown, ;q=bad") == Locale.parse("en")


def test_a_french_and_an_english_visitor_each_get_their_own_cached_page(settings, client) -> None:
    rng = random.Random(13)
    owner = make_user(settings, "ines")
    name = word(rng)
    add(settings, owner, [{"name": name, "unit_price": Decimal("14.90"), "quantity": 2}],
        merchant=word(rng), bought=date(2025, 4, 14))
    english, french = {**HTML, "accept-language": "en"}, {**HTML, "accept-language": "fr-FR,fr;q=0.8"}

    def view(headers: dict) -> tuple[str, bool]:
        response = client.get("/u/ines", headers=headers)
        assert response.status_code == 200
        return response.text, response.headers.get("x-page-cache") == "hit"

    first_en, hit = view(english)
    assert not hit and text_of(first_en, f"{CARDS}//p[@class='price']") == ["2 × €14.90 each"]
    # Not the English page from the cache, nor the English card from the card memo.
    first_fr, hit = view(french)
    assert not hit and text_of(first_fr, f"{CARDS}//p[@class='price']") == ["2 × 14,90 € each"]
    assert text_of(first_fr, f"{CARDS}//time") == ["14 avr. 2025"]
    for headers, expected in ((english, first_en), (french, first_fr), (english, first_en)):
        page, hit = view(headers)
        assert hit and page == expected
    # Another header naming the same locale shares the stored page.
    page, hit = view({**HTML, "accept-language": "fr-FR"})
    assert hit and page == first_fr


def test_unit_prices_say_each_and_a_single_item_just_its_price(settings, client) -> None:
    rng = random.Random(7)
    owner = make_user(settings, "otto")
    one, two = word(rng), word(rng)
    purchase = add(settings, owner, [{"name": one, "unit_price": Decimal("12.00"), "quantity": 3},
                                     {"name": two, "unit_price": Decimal("5.50")}],
                   merchant=word(rng), bought=date(2025, 1, 2), currency="CAD")
    page = client.get(f"/u/otto/p/{purchase.public_id}", headers={**HTML, "accept-language": "en-US"}).text
    assert text_of(page, f"{CARDS}//p[@class='price']") == ["3 × CA$12.00 each", "CA$5.50"]


# --- the card: image or placeholder first, the merchant once ------------------------------------


def test_cards_show_the_image_or_a_placeholder_with_an_initial_and_the_merchant_once(settings, client) -> None:
    rng = random.Random(21)
    owner = make_user(settings, "pia")
    merchant, pictured, plain, orphan = word(rng), word(rng), word(rng), word(rng)
    shown = add(settings, owner, [{"name": pictured, "image": f"https://cdn.example/{word(rng)}.jpg"}],
                merchant=merchant, bought=date(2025, 3, 1))
    store_images(settings, shown.id)  # what the worker does once the item is shared
    add(settings, owner, [{"name": plain}], merchant=merchant, bought=date(2025, 2, 1))
    add(settings, owner, [{"name": orphan}], merchant=None, bought=date(2025, 1, 1))
    page = client.get("/u/pia", headers=HTML).text
    tree = html.fromstring(page)
    cards = tree.xpath(CARDS)
    assert [card.xpath("string(.//h3)").strip() for card in cards] == [pictured, plain, orphan]
    # Image first, our stored copy only (/media); the tile under it is CSS, no request.
    first = cards[0]
    assert first.xpath("./*[1]/@class") == ["thumb"]
    assert first.xpath(".//img/@src")[0].startswith("/media/") and first.xpath(".//img/@alt") == [pictured]
    assert not cards[1].xpath(".//img") and not cards[2].xpath(".//img")
    assert [card.xpath("string(.//span[@class='placeholder'])") for card in cards] == [
        merchant[0], merchant[0], orphan[0]]
    for card in cards:  # the merchant named once per card, and only as the merchant
        assert card.text_content().count(merchant) == (1 if card is not cards[2] else 0)
    assert text_of(page, f"{CARDS}//p[@class='meta']") == [f"{merchant} · Mar 1, 2025", f"{merchant} · Feb 1, 2025",
                                                           "Jan 1, 2025"]
    # The stylesheet gives the box its shape: a fixed aspect ratio, the picture fitted, not cut.
    css = client.get("/static/style.css").text
    assert re.search(r"\.thumb \{[^}]*aspect-ratio: 1 / 1", css) and re.search(r"\.thumb img \{[^}]*object-fit: contain", css)


def test_the_purchase_page_shows_its_items_as_the_same_cards_without_repeating_the_shop(settings, client) -> None:
    rng = random.Random(5)
    owner = make_user(settings, "quin")
    merchant, names = word(rng), [word(rng) for _ in range(3)]
    purchase = add(settings, owner, [{"name": n, "unit_price": Decimal("3.10")} for n in names],
                   merchant=merchant, bought=date(2024, 11, 30))
    page = client.get(f"/u/quin/p/{purchase.public_id}", headers=HTML).text
    tree = html.fromstring(page)
    assert [card.xpath("string(.//h3)").strip() for card in tree.xpath(CARDS)] == names
    main = tree.xpath("//main")[0].text_content()
    assert main.count(merchant) == 1  # "Bought at MERCHANT on ...", not again in the heading or the cards


def test_profile_cards_lead_with_a_pictured_item_and_name_the_others(settings, client) -> None:
    rng = random.Random(8)
    owner = make_user(settings, "rosa")
    names = [word(rng) for _ in range(6)]
    items = [{"name": n} for n in names]
    items[2]["image"] = f"https://cdn.example/{word(rng)}.png"
    store_images(settings, add(settings, owner, items, merchant=word(rng), bought=date(2025, 5, 5)).id)
    tree = html.fromstring(client.get("/u/rosa", headers=HTML).text)
    (card,) = tree.xpath(CARDS)
    assert card.xpath("string(.//h3)").strip() == names[2]
    others = [" ".join(li.text_content().split()) for li in card.xpath(".//ul[@class='others']/li")]
    assert others == [names[0], names[1], names[3], "and 2 more"]


# --- order: newest bought first ----------------------------------------------------------------


def test_profiles_and_collections_list_newest_bought_first(settings, client) -> None:
    rng = random.Random(34)
    owner = make_user(settings, "sven")
    # (bought on, shared how long ago): shared order differs from bought order on purpose.
    plan = {"old": (date(2023, 6, 1), 1), "new": (date(2025, 6, 1), 5), "mid": (date(2024, 6, 1), 3),
            "undated": (None, 0), "tie-early-share": (date(2024, 6, 1), 9)}
    names = {key: word(rng) for key in plan}
    purchases = {key: add(settings, owner, [{"name": names[key]}], merchant=word(rng), bought=bought,
                          shared_ago=timedelta(hours=hours)) for key, (bought, hours) in plan.items()}
    expected = [names[key] for key in ("new", "mid", "tie-early-share", "old", "undated")]
    tree = html.fromstring(client.get("/u/sven", headers=HTML).text)
    assert [card.xpath("string(.//h3)").strip() for card in tree.xpath(CARDS)] == expected

    with session_scope(settings) as session:
        collection = Collection(user_id=owner.id, name="Mixed", slug="mixed")
        session.add(collection)
        session.flush()
        items = {item.purchase_id: item.id for item in session.exec(select(PurchaseItem)).all()}
        for position, key in enumerate(("old", "undated", "new", "tie-early-share", "mid")):  # the adding order
            session.add(CollectionItem(collection_id=collection.id, item_id=items[purchases[key].id], position=position))
        session.commit()
    tree = html.fromstring(client.get("/u/sven/c/mixed", headers=HTML).text)
    assert [card.xpath("string(.//h3)").strip() for card in tree.xpath(f"//section[@class='grid']{CARDS[1:]}")] == expected


# --- notifications, favicon ----------------------------------------------------------------------


def test_a_notification_names_and_links_the_purchase(settings, client) -> None:
    rng = random.Random(3)
    owner, fan = make_user(settings, "tara"), make_user(settings, "ugo")
    name, merchant = word(rng), word(rng)
    purchase = add(settings, owner, [{"name": name}], merchant=merchant, bought=date(2025, 2, 2))
    hidden = add(settings, owner, [{"name": word(rng)}], merchant=merchant, bought=date(2025, 2, 3))
    with session_scope(settings) as session:
        for target in (purchase, hidden):
            session.add(Like(user_id=fan.id, purchase_id=target.id))
            session.add(Notification(user_id=owner.id, actor_id=fan.id, kind="like", purchase_id=target.id))
        row = session.get(Purchase, hidden.id)
        row.published_at = None  # no longer shared: its public title is gone, the owner's page stays
        session.add(row)
        session.commit()
    log_in(client, "tara")
    tree = html.fromstring(client.get("/notifications", headers=HTML).text)
    links = {a.text_content().strip(): a.get("href") for a in tree.xpath("//ul[@class='notifications']//a[@class='target']")}
    assert links == {f"{name} from {merchant}": f"/u/tara/p/{purchase.public_id}",
                     "a purchase you no longer share": f"/purchases/{hidden.id}"}
    # Someone else's purchase that is no longer shared: named as such, no link to a private page.
    with session_scope(settings) as session:
        session.add(Notification(user_id=fan.id, actor_id=owner.id, kind="review", purchase_id=hidden.id))
        session.commit()
    log_in(client, "ugo")
    tree = html.fromstring(client.get("/notifications", headers=HTML).text)
    assert [" ".join(node.text_content().split()) for node in tree.xpath("//ul[@class='notifications']//*[@class='target']")] == [
        "a purchase no longer shared"]
    assert not tree.xpath("//ul[@class='notifications']//a[@class='target']")


def test_the_favicon_is_ours_and_linked_on_every_page(client) -> None:
    tree = html.fromstring(client.get("/", headers=HTML).text)
    icons = tree.xpath('//link[@rel="icon"]/@href') + tree.xpath('//link[@rel="apple-touch-icon"]/@href')
    assert icons and all(href.startswith("/static/") for href in icons)
    for href in icons:
        response = client.get(href)
        assert response.status_code == 200 and response.headers["content-type"].startswith("image/")


def test_the_avatar_is_our_stored_copy_never_the_remote_address(settings, client) -> None:
    owner = make_user(settings, "vera")
    remote = f"https://pics.example/{word(random.Random(2))}.png"
    with session_scope(settings) as session:
        row = session.get(User, owner.id)
        row.avatar_url = remote
        session.add(row)
        session.commit()
    page = client.get("/u/vera", headers=HTML).text
    assert remote not in page and not html.fromstring(page).xpath('//img[contains(@class, "avatar")]')
    sync_avatar(settings, owner.id, fetcher=fake_fetcher)  # the worker's copy
    tree = html.fromstring(client.get("/u/vera", headers=HTML).text)
    (src,) = tree.xpath('//img[contains(@class, "avatar")]/@src')
    assert src.startswith("/media/")  # the visitor's browser asks us only
