"""Every form, opened and sent as it comes (nothing typed, the browser's own checks off so the
server answers), in a real browser: a proper page comes back - an error beside the field or a
success message - never a server error, raw JSON, or a Python repr left in a field (the manual
entry's Items box once opened holding "<built-in method items of dict object ...>"). Then the
over-long text, decimal comma and the counter that replaces a silent cut, as a person meets them."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import select

from purchaseshare.db import session_scope
from purchaseshare.limits import TEXT_MAX
from purchaseshare.models import Purchase, PurchaseItem
from tests.browser.test_flows import SINGLE, approve_all, log_in, make_user, receive

pytestmark = [pytest.mark.services, pytest.mark.parametrize("settings", ["sqlite"], indirect=True)]

# Forms whose empty submission would destroy or undo something (they ask for confirmation or are
# covered by their own tests); every other form on these pages is sent.
SKIP = re.compile(r"/(logout|delete|reject|remove|sign-out-everywhere|unfollow|resend)$")
REPR = re.compile(r"<(built-in|bound) method|object at 0x|Traceback")
MESSAGE = ".flash, [role=alert], [role=status], .error, .field-error"


@pytest.fixture
def browser_context_args(browser_context_args, live_server):
    return {**browser_context_args, "base_url": live_server}


@pytest.fixture
def shop(settings) -> dict:
    """alice with one shared purchase and one still in her inbox; bob, who may comment."""
    alice = make_user(settings, "alice")
    make_user(settings, "bob")
    shared = receive(settings, alice, SINGLE)
    public_id = approve_all(settings, shared)
    receive(settings, alice)
    return {"shared": shared, "public": f"/u/alice/p/{public_id}"}


def forms_on(page: Page) -> list[str]:
    return page.eval_on_selector_all("main form[method=post]", "forms => forms.map(f => f.getAttribute('action'))")


def send_each_form(page: Page, path: str) -> list[str]:
    """Open `path`, send its n-th form as it is, for every form; the actions sent."""
    page.goto(path)
    sent = []
    for index, action in enumerate(forms_on(page)):
        if SKIP.search(action or ""):
            continue
        page.goto(path)
        values = page.eval_on_selector_all("main input, main textarea", "fields => fields.map(f => f.value)")
        assert not [v for v in values if REPR.search(v)], (path, values)
        with page.expect_navigation() as navigation:
            page.evaluate("""index => {
                const form = document.querySelectorAll("main form[method=post]")[index];
                form.noValidate = true;  // the server's answer is under test, not the browser's checks
                form.requestSubmit();
            }""", index)
        response = navigation.value
        assert response is not None and response.status < 500, (path, action, response and response.status)
        assert response.headers.get("content-type", "").startswith("text/html"), (path, action)
        body = page.content()
        assert not REPR.search(body), (path, action)
        if action.endswith(("/like", "/follow")):  # a toggle: its success is the button turned around
            base, verb = action.rsplit("/", 1)
            expect(page.locator(f'form[action="{base}/un{verb}"]').first).to_be_attached()
        else:
            assert page.locator(MESSAGE).count(), (path, action, page.url)  # an error or a success message
            expect(page.locator(MESSAGE).first).to_be_visible()
        sent.append(action)
    return sent


def test_every_form_sent_as_it_opens_gets_a_proper_page(page: Page, browser, live_server, settings, shop) -> None:
    anonymous = [send_each_form(page, path) for path in ("/signup", "/login", "/reset")]
    assert all(anonymous), anonymous

    log_in(page, "alice")
    owner_pages = ["/purchases/new", f"/purchases/{shop['shared']}", "/upload", "/settings", "/settings/addresses",
                   "/collections", "/inbox", "/notifications", shop["public"]]
    sent = {path: send_each_form(page, path) for path in owner_pages}
    assert all(sent[path] for path in owner_pages if path != "/notifications"), sent
    assert {"/purchases/new", f"/purchases/{shop['shared']}/edit", f"/purchases/{shop['shared']}/add-item",
            f"/purchases/{shop['shared']}/caption"} <= {a for actions in sent.values() for a in actions}

    bob = browser.new_context(base_url=live_server).new_page()
    log_in(bob, "bob")
    assert f"{shop['public']}/comments" in send_each_form(bob, shop["public"])

    # Nothing was made from a Python repr, and the empty manual entry says what is missing, beside it.
    with session_scope(settings) as session:
        names = session.exec(select(PurchaseItem.name)).all()
    assert not [name for name in names if REPR.search(name)]
    page.goto("/purchases/new")
    expect(page.locator("#items")).to_have_value("")
    page.evaluate("document.querySelector('main form').noValidate = true")
    page.get_by_role("button", name="Add purchase").click()
    expect(page.locator("#err-merchant_name")).to_contain_text("merchant: required")
    expect(page.locator("#err-items")).to_contain_text("enter at least one item")
    expect(page.locator("[name=merchant_name]")).to_have_attribute("aria-invalid", "true")


def test_decimal_comma_negative_price_and_the_error_beside_it(page: Page, settings, shop) -> None:
    log_in(page, "alice")
    page.goto("/purchases/new")
    page.get_by_label("Merchant").fill("Corner Shop")
    page.get_by_label(re.compile("^Currency")).fill("EUR")
    page.locator("#items").fill("2 x Apples @ 0,60\nCoupon @ -5")
    page.get_by_role("button", name="Add purchase").click()
    expect(page.locator("#err-items")).to_contain_text("item line 2 price: not negative")
    expect(page.locator("#items")).to_have_value("2 x Apples @ 0,60\nCoupon @ -5")  # kept for fixing
    page.locator("#items").fill("2 x Apples @ 0,60\nBread @ 1 234,5")
    page.get_by_role("button", name="Add purchase").click()
    expect(page.locator(".flash")).to_contain_text("Purchase added")
    expect(page.get_by_text("Bread").first).to_be_visible()
    with session_scope(settings) as session:
        purchase = session.exec(select(Purchase).where(Purchase.merchant_name == "Corner Shop")).one()
        assert str(purchase.total) == "1235.70"


def test_a_long_paste_is_counted_not_cut_and_the_server_says_why(page: Page, shop) -> None:
    log_in(page, "alice")
    page.goto(f"/purchases/{shop['shared']}")
    limit = TEXT_MAX["caption"]
    caption = page.locator("#caption")
    caption.fill("p" * (limit + 25))
    expect(caption).to_have_value("p" * (limit + 25))  # nothing cut silently
    expect(page.locator("#caption + .counter")).to_have_text(f"25 characters too many (at most {limit})")
    page.get_by_role("button", name="Save caption").click()
    expect(page).to_have_url(re.compile(rf"/purchases/{shop['shared']}$"))  # not sent: the browser says why
    assert page.evaluate("document.querySelector('#caption').validationMessage")
    caption.fill("p" * limit)
    expect(page.locator("#caption + .counter")).to_have_text(f"{limit} / {limit}")
    page.get_by_role("button", name="Save caption").click()
    expect(page.locator(".flash")).to_contain_text("Caption saved")

    # Without the page's script (an old browser, a paste through a tool), the server refuses it on a page.
    page.goto(f"/purchases/{shop['shared']}")
    page.evaluate(f"""() => {{ const area = document.querySelector('#caption');
        area.setCustomValidity(''); area.oninput = null; area.value = 'q'.repeat({limit + 1});
        area.form.noValidate = true; area.form.requestSubmit(); }}""")
    expect(page.locator("#err-caption")).to_contain_text(f"at most {limit} characters")
