"""Teach by pointing, in Chromium (issue 14, point 5): upload an unknown shop's receipt that
nothing can read, teach it by clicking the total and each item's name, price and quantity, then
upload a second receipt of the same layout with other items and prices: it is read right
without help. Keyboard and phone width included; the original is framed without scripts."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

from playwright.sync_api import Page, expect
from sqlmodel import select

from purchaseshare.db import session_scope
from purchaseshare.models import Purchase, PurchaseItem, RawEmail
from tests.browser.test_flows import log_in, make_user
from tests.parsers.test_templates import _order


def _upload(page: Page, path: Path) -> None:
    page.goto("/upload")
    page.get_by_label(re.compile("Email files")).set_input_files(str(path))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#results-title ~ ul")).to_contain_text("queued")


def _wait_for(settings, check, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # the in-process worker reads uploads in the background
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("the worker did not read the upload in time")


def _rows(settings, model, *conditions):
    with session_scope(settings) as session:
        return list(session.exec(select(model).where(*conditions)).all())


def _click(page: Page, text: str) -> None:
    page.locator(".teach-rows button.blk", has_text=re.compile(rf"^\s*{re.escape(text)}\s*$")).first.click()


def test_teach_an_unreadable_receipt_by_pointing_then_the_next_one_reads_itself(page: Page, settings, tmp_path):
    user_id = make_user(settings, "alice")
    log_in(page, "alice")
    first_raw, first = _order(random.Random(21))
    first_file = tmp_path / "first.eml"
    first_file.write_bytes(first_raw)
    _upload(page, first_file)
    raw = _wait_for(settings, lambda: [r for r in _rows(settings, RawEmail, RawEmail.user_id == user_id)
                                       if r.status == "unparsed"])[0]

    page.goto("/emails")
    page.get_by_role("link", name="Teach").click()
    expect(page).to_have_url(re.compile(rf"/emails/{raw.id}/teach$"))
    expect(page.locator("iframe[sandbox]")).to_have_count(1)

    _click(page, f"EUR {first.total}")
    expect(page.locator("#teach-total")).to_have_text(f"EUR {first.total}")
    for number, item in enumerate(first.items):
        if number == 0:  # by keyboard: focus the block and press Enter
            page.locator(".teach-rows button.blk", has_text=item.name).first.focus()
            page.keyboard.press("Enter")
        else:
            _click(page, item.name)
        _click(page, f"EUR {item.line_total}")
        _click(page, f"{item.quantity} pcs")
    expect(page.locator("#teach-items li")).to_have_count(len(first.items))
    page.get_by_role("button", name="Save and learn this layout").click()
    expect(page.locator(".flash")).to_contain_text("The next receipts laid out like this one will be read the same way")
    taught = _rows(settings, Purchase, Purchase.source_raw_id == raw.id)[0]
    assert taught.total == first.total and taught.parser == "taught"
    assert taught.personal_terms and "sam@example.net" in taught.personal_terms  # public text is redacted against them
    items = _rows(settings, PurchaseItem, PurchaseItem.purchase_id == taught.id)
    assert sorted((i.name, i.quantity, i.line_total) for i in items) == sorted(
        (i.name, i.quantity, i.line_total) for i in first.items)

    second_raw, second = _order(random.Random(22))
    second_file = tmp_path / "second.eml"
    second_file.write_bytes(second_raw)
    _upload(page, second_file)
    read = _wait_for(settings, lambda: [p for p in _rows(settings, Purchase, Purchase.user_id == user_id)
                                        if p.id != taught.id])[0]
    assert read.parser == "learned:kalomi-goods.com"
    assert read.total == second.total
    items = _rows(settings, PurchaseItem, PurchaseItem.purchase_id == read.id)
    assert [(i.name, i.quantity, i.line_total) for i in sorted(items, key=lambda i: i.position)] == [
        (i.name, i.quantity, i.line_total) for i in second.items]


def test_the_teach_page_fits_a_phone_and_frames_the_original_without_scripts(page: Page, settings, tmp_path):
    from purchaseshare.mailstore import store_raw
    from purchaseshare.processing import process_raw_email

    user_id = make_user(settings, "bob")
    raw_bytes, _ = _order(random.Random(23))
    with session_scope(settings) as session:
        stored = store_raw(session, raw_bytes.replace(b"</body>", b"<script>document.title='ran'</script>"
                                                                  b"<img src='https://tracker.example/p.gif'></body>"),
                           source="test", user_id=user_id, attributed_by="cli")
    process_raw_email(stored.raw_email.id, settings)
    log_in(page, "bob")
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(f"/emails/{stored.raw_email.id}/teach")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, width
    original = page.request.get(f"/emails/{stored.raw_email.id}/original")
    policy = original.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy and "frame-ancestors 'self'" in policy
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(f"{request.url} {request.failure}"))
    answered: list[str] = []
    page.on("response", lambda response: answered.append(response.url))
    page.locator("details.teach-original summary").click()
    frame = page.frame_locator("iframe[sandbox]")
    expect(frame.locator("body")).to_contain_text("Kalomi Goods")
    assert page.evaluate("document.querySelector('iframe').getAttribute('sandbox')") == ""
    # The tracking pixel is refused by the frame's policy before it reaches the network.
    expect(frame.locator("body")).to_be_visible()
    assert not any("tracker.example" in url for url in answered)
    assert any(entry.startswith("https://tracker.example/") and entry.endswith("csp") for entry in failed), failed
    assert page.frames[1].evaluate("document.title") != "ran"  # its script did not run
