"""The public grid in a real browser, on demo-like data: cards side by side on a desktop (1280 px),
two columns and no horizontal scrolling on a small phone (360 px); every picture box square with
the picture fitted inside; a picture that cannot load gives way to the placeholder tile."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import update

from tests.browser.demo_site import DemoSite

pytestmark = [pytest.mark.services, pytest.mark.parametrize("settings", ["sqlite"], indirect=True)]

DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 360, "height": 740}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
# The cards of each grid page (the feed's cells hold a card with who shared it).
GRIDS = {"profile": "#purchases ~ article.card", "collection": "section.grid > article.card",
         "purchase": ".items-grid > article.card", "feed": "#feed > .feed-entry"}
BOXES_JS = """selector => Array.from(document.querySelectorAll(selector)).map(el => {
  const box = el.getBoundingClientRect(); return [Math.round(box.left), Math.round(box.top + scrollY), Math.round(box.right)]; })"""




def signed_in(new_context, site: DemoSite, **args) -> Page:
    page = new_context(**args).new_page()
    page.goto("/login")
    page.get_by_label("Handle or email address").fill("demo")
    page.get_by_label("Password").fill(site.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/inbox")
    return page


def paths(site: DemoSite) -> dict[str, str]:
    return {"profile": "/u/demo", "collection": site.collection, "purchase": site.shared[0], "feed": "/feed"}


def columns(page: Page, selector: str) -> list[list[int]]:
    """The cards' [left, top, right], and how many share the first card's row."""
    return page.evaluate(BOXES_JS, selector)


def test_cards_sit_side_by_side_on_a_desktop(site: DemoSite, new_context) -> None:
    page = signed_in(new_context, site, **DESKTOP)
    for name, path in paths(site).items():
        assert page.goto(path).status == 200
        boxes = columns(page, GRIDS[name])
        assert len(boxes) >= 2, (name, boxes)
        first_row = [box for box in boxes if box[1] == boxes[0][1]]
        assert len(first_row) >= min(3, len(boxes)), (name, boxes)  # 3 or more columns in 1280 px
        assert [box[0] for box in first_row] == sorted({box[0] for box in first_row}), (name, boxes)
    page.close()  # the feed's event stream ends before the server stops


def test_two_columns_and_no_horizontal_scroll_on_a_360px_phone(site: DemoSite, new_context) -> None:
    page = signed_in(new_context, site, **PHONE)
    for name, path in {**paths(site), "notifications": "/notifications", "home": "/"}.items():
        assert page.goto(path).status == 200
        width = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1] == 360, (name, width)
        if name in GRIDS:
            boxes = columns(page, GRIDS[name])
            assert boxes and all(left >= 0 and right <= 360 for left, _, right in boxes), (name, boxes)
            if len(boxes) >= 2:
                assert boxes[0][1] == boxes[1][1] and boxes[0][2] <= boxes[1][0], (name, boxes)  # side by side
    page.close()


def _store_pictures(settings) -> list[str]:
    """What the worker does once items are shared (offline: made-up pictures); the stored names."""
    from sqlmodel import col, select

    from purchaseshare.db import session_scope
    from purchaseshare.models import Purchase, PurchaseItem
    from tests.images.fakes import store_images

    with session_scope(settings) as session:
        ids = session.exec(select(Purchase.id).where(col(Purchase.published_at).is_not(None))).all()
        session.exec(update(PurchaseItem).values(image_from=None, image_failed_at=None))  # the offline tries
        session.commit()
    for purchase_id in ids:
        store_images(settings, purchase_id)
    with session_scope(settings) as session:
        return [n for n in session.exec(select(PurchaseItem.image_file)).all() if n]


def test_picture_boxes_are_square_and_a_broken_picture_shows_the_placeholder(site: DemoSite, new_context,
                                                                               settings) -> None:
    from purchaseshare.item_images import store_for

    assert _store_pictures(settings), "the demo shares items with pictures"
    page = new_context(**DESKTOP).new_page()
    # The page's HTML only (its pictures not yet in the browser's cache): the first card's picture is lost.
    lost = re.search(r'class="thumb"[^>]*>\s*<span[^>]*>[^<]*</span><img src="/media/([0-9a-f]+)-',
                     page.request.get("/u/demo").text()).group(1)
    for file in store_for(settings).directory.glob(f"*/{lost}-*"):
        file.unlink()
    assert page.goto("/u/demo").status == 200
    thumbs = page.locator("article.card .thumb")
    assert thumbs.count() >= 3
    for index in range(thumbs.count()):
        box = thumbs.nth(index).bounding_box()
        assert box and abs(box["width"] - box["height"]) <= 1, box
    images = page.locator("article.card .thumb img")
    assert images.count() >= 2  # our stored copies, from /media
    assert images.first.evaluate("img => getComputedStyle(img).objectFit") == "contain"
    # The lost file answers 404: that picture is hidden and its tile shows its letter; the others show.
    broken = page.locator(f"article.card .thumb img[src*='{lost}']").first
    assert broken.count() == 1
    expect(broken).to_be_hidden(timeout=15000)
    tile = broken.locator("xpath=../span[@class='placeholder']")
    expect(tile).to_be_visible()
    assert len(tile.inner_text().strip()) == 1
    expect(page.locator("article.card .thumb img:not([hidden])").first).to_be_visible()
