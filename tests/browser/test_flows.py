"""End-to-end flows in a real browser (Debian's Chromium through Playwright) against the app served
by uvicorn with its in-process worker: what a person does, clicked and typed, and what another
person (or an anonymous visitor) then sees. SQLite only: the database is covered on both engines
by the HTTP tests; here the browser is what is under test."""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from sqlmodel import select

from purchaseshare.db import session_scope
from purchaseshare.mailstore import store_raw
from purchaseshare.models import OutboxMail, Purchase, PurchaseItem, User
from purchaseshare.processing import process_raw_email
from purchaseshare.users import create_user
from web.security import hash_password

pytestmark = [pytest.mark.services, pytest.mark.parametrize("settings", ["sqlite"], indirect=True)]

ROOT = Path(__file__).resolve().parents[2]
MULTI = ROOT / "fixtures" / "emails" / "amazon" / "amazon_3_multi_item.eml"
SINGLE = ROOT / "fixtures" / "emails" / "amazon" / "amazon_1.eml"
# From MULTI's golden .json: three items and a private order number.
POT, COMPOST, SHEARS = "Ceramic Plant Pot Set, Matt White, 3 Sizes", "Organic Peat-Free Compost 10L", \
    "Pruning Shears with Safety Lock"
ORDER_NUMBER = "203-7716405-2290318"
PASSWORD = "correct horse battery"
ATOM = "{http://www.w3.org/2005/Atom}"



@pytest.fixture
def new_context(new_context):
    """Contexts that reach only the test server: product images on merchants' CDNs are refused at
    once instead of waiting for a network this machine does not have."""

    def make(**kwargs) -> BrowserContext:
        context = new_context(**kwargs)
        context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/])"), lambda route: route.abort())
        return context

    return make


# --- set-up through the real storage/processing, as mail from IMAP would arrive ------------------


def make_user(settings, handle: str) -> int:
    with session_scope(settings) as session:
        user = create_user(session, handle, email=f"{handle}@example.org", display_name=handle.title(),
                           password_hash=hash_password(PASSWORD))
        session.commit()
        return user.id


def receive(settings, user_id: int, path: Path = MULTI) -> int:
    """Store an email for the user and process it now; the purchase's id (private, in the inbox)."""
    with session_scope(settings) as session:
        stored = store_raw(session, path.read_bytes(), source="test", user_id=user_id, attributed_by="cli")
    outcome = process_raw_email(stored.raw_email.id, settings)
    assert outcome.purchase_id is not None, outcome
    return outcome.purchase_id


def approve_all(settings, purchase_id: int) -> str:
    """Share every item (as the owner's Approve button does); the purchase's public_id."""
    from purchaseshare.sharing import set_approved

    with session_scope(settings) as session:
        purchase = session.get(Purchase, purchase_id)
        items = list(session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == purchase_id)).all())
        set_approved(purchase, items, {item.id for item in items})
        session.commit()
        return purchase.public_id


def log_in(page: Page, handle: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("Handle or email address").fill(handle)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/inbox$"))


def signed_in_page(new_context, handle: str, **context_args) -> Page:
    page = new_context(**context_args).new_page()
    log_in(page, handle)
    return page


# --- 1. sign up, verify an address, upload a receipt, share one item ------------------------------


def test_signup_verify_upload_and_share_one_item(page: Page, new_context, settings) -> None:
    page.goto("/signup")
    # The labels hold their hints too ("... for password resets"): the fields by id.
    page.locator("#f-handle").fill("alice")
    page.locator("#f-display_name").fill("Alice Liddell")
    page.locator("#f-email").fill("alice@example.org")
    page.locator("#f-password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(re.compile(r"/settings/forwarding$"))
    expect(page.locator("#forwarding-address")).to_contain_text("@")

    # Another address the receipts come from; its link is read from the outbox like the demo's operator would.
    page.goto("/settings/addresses")
    page.get_by_label("Email address").fill("alice.shops@example.net")
    page.get_by_role("button", name="Add and mail a link").click()
    expect(page.locator(".flash")).to_contain_text("We sent a link to alice.shops@example.net")
    row = page.locator("ul.items li", has_text="alice.shops@example.net")
    expect(row).to_contain_text("Not verified yet")
    with session_scope(settings) as session:
        mail = session.exec(select(OutboxMail).where(OutboxMail.to_addr == "alice.shops@example.net",
                                                     OutboxMail.purpose == "verify")).one()
    link = re.search(r"https?://\S+/verify/\S+", mail.body)
    assert link, mail.body
    page.goto(link.group(0))
    page.get_by_role("button", name="Verify alice.shops@example.net").click()
    expect(page.locator(".flash")).to_contain_text("alice.shops@example.net is verified")
    expect(row).to_contain_text("Verified")
    expect(row).not_to_contain_text("Not verified")
    page.goto("/settings/forwarding")
    expect(page.locator("#from-verified ~ ul")).to_contain_text("alice.shops@example.net")

    # "Forward" a receipt with three items: the upload page puts it through the same queue as mail.
    page.goto("/upload")
    page.get_by_label(re.compile("Email files")).set_input_files(MULTI)
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#results-title ~ ul")).to_contain_text("queued")
    page.get_by_role("link", name="Go to your inbox").click()
    card = page.locator("article.card", has_text=COMPOST)
    deadline = time.monotonic() + 20
    while card.count() == 0 and time.monotonic() < deadline:  # the worker reads it in the background
        page.wait_for_timeout(300)
        page.reload()
    expect(card).to_contain_text(POT)
    expect(card).to_contain_text("Private")

    card.get_by_role("link", name="Review, correct or share").click()
    expect(page.get_by_text(f"Order number {ORDER_NUMBER}")).to_be_visible()  # the owner sees it; nobody else will
    page.get_by_label(POT).check()
    page.get_by_role("button", name="Save what is shared").click()
    expect(page.locator(".flash")).to_contain_text("1 of 3 items shared")

    anonymous = new_context().new_page()
    response = anonymous.goto("/u/alice")
    assert response is not None and response.status == 200
    shared = anonymous.locator("#purchases ~ article.card")
    expect(shared).to_have_count(1)
    expect(shared).to_contain_text(POT)
    body = anonymous.locator("main").inner_text()
    for private in (COMPOST, SHEARS, ORDER_NUMBER):
        assert private not in body

    feed = anonymous.request.get("/u/alice/feed.atom")
    assert feed.ok and feed.headers["content-type"].startswith("application/atom+xml")
    entries = ET.fromstring(feed.body()).findall(f"{ATOM}entry")
    assert len(entries) == 1
    text = feed.text()
    assert POT in text and COMPOST not in text and SHEARS not in text and ORDER_NUMBER not in text


# --- 2. the home feed updates live -----------------------------------------------------------------


def test_feed_updates_live_when_a_followed_user_shares(page: Page, new_context, settings) -> None:
    make_user(settings, "fan")
    maker = make_user(settings, "maker")
    purchase_id = receive(settings, maker)

    log_in(page, "fan")
    page.goto("/u/maker")
    page.get_by_role("button", name="Follow @maker").click()
    expect(page.get_by_role("button", name="Unfollow @maker")).to_be_visible()
    expect(page.get_by_text("1 follower")).to_be_visible()
    page.goto("/feed")
    expect(page.locator(".feed-entry")).to_have_count(0)
    page.evaluate("window.__sameDocument = true")  # gone if the page were reloaded
    page.wait_for_timeout(500)  # the event stream is open

    owner = signed_in_page(new_context, "maker")
    owner.goto(f"/purchases/{purchase_id}")
    owner.get_by_role("button", name="Approve the whole purchase").click()
    expect(owner.locator(".flash")).to_contain_text("every item is on your profile")

    entry = page.locator(".feed-entry")
    expect(entry).to_have_count(1, timeout=8000)
    expect(entry).to_contain_text(POT)
    expect(entry).to_contain_text("@maker")
    assert ORDER_NUMBER not in entry.inner_text()
    expect(page.locator("#feed-status")).to_contain_text("New:")
    assert page.evaluate("window.__sameDocument") is True
    page.close()  # ends the event stream before the server stops


# --- 3. likes and comments reach the owner ---------------------------------------------------------


def test_like_and_comment_notify_the_owner(page: Page, new_context, settings) -> None:
    owner_id = make_user(settings, "owner")
    make_user(settings, "liker")
    public_id = approve_all(settings, receive(settings, owner_id))

    log_in(page, "liker")
    page.goto(f"/u/owner/p/{public_id}")
    page.get_by_role("button", name="Like", exact=True).click()
    expect(page.locator(".likes")).to_have_text("1 like")
    page.get_by_label("Add a comment").fill("Which compost is it?")
    page.get_by_role("button", name="Post comment").click()
    expect(page.locator(".comment-entry")).to_contain_text("Which compost is it?")

    owner = signed_in_page(new_context, "owner")
    badge = owner.locator("header.site .badge")
    expect(badge).to_have_text("2")
    owner.get_by_role("link", name=re.compile("Notifications")).click()
    notes = owner.locator("ul.notifications li.unread")
    expect(notes).to_have_count(2)
    expect(notes.filter(has_text="liked")).to_contain_text("@liker")
    expect(notes.filter(has_text="commented on")).to_contain_text("Which compost is it?")
    owner.get_by_role("button", name="Mark all as read").click()
    expect(owner.locator("header.site .badge")).to_have_count(0)
    expect(owner.locator("ul.notifications li.unread")).to_have_count(0)


# --- 4. markup typed by users is shown as text and never runs --------------------------------------

PAYLOADS = ['<img src=x onerror="window.__xss=1">', "<script>window.__xss=1</script>",
            '"><svg onload=window.__xss=1>']
ALL_PAYLOADS = " ".join(PAYLOADS)


class Watch:
    """Everything on a page that would tell that injected markup ran or was even parsed: dialogs,
    uncaught errors, and CSP reports (an inline handler the CSP blocked still means escaping failed)."""

    def __init__(self, page: Page) -> None:
        self.events: list[str] = []
        page.on("dialog", lambda dialog: (self.events.append(f"dialog {dialog.message}"), dialog.dismiss()))
        page.on("pageerror", lambda error: self.events.append(f"pageerror {error}"))
        page.on("console", lambda message: self.events.append(f"console {message.text}")
                if "Content Security Policy" in message.text else None)

    def check(self, page: Page, path: str) -> None:
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        page.wait_for_load_state("load")
        assert page.evaluate("typeof window.__xss") == "undefined", path
        # Nothing was parsed as markup: no injected element, every payload is on the page as text.
        injected = page.evaluate("""() => document.querySelectorAll('img[src="x"], svg, body script:not([src])').length""")
        assert injected == 0, path
        text = page.locator("body").inner_text()
        for payload in PAYLOADS:
            assert payload in text, (path, payload)
        assert self.events == [], (path, self.events)


def test_user_markup_is_text_everywhere(page: Page, new_context, settings) -> None:
    victim = make_user(settings, "victim")
    make_user(settings, "mallory")
    purchase_id = receive(settings, victim)

    log_in(page, "victim")
    page.goto(f"/purchases/{purchase_id}")
    for number, payload in enumerate(PAYLOADS, 1):
        page.locator("fieldset", has_text=f"Item {number}").get_by_label("Name").fill(payload)
    page.get_by_role("button", name="Save corrections").click()
    expect(page.locator(".flash")).to_contain_text("Corrections saved")
    page.get_by_label(re.compile("^Caption")).fill(ALL_PAYLOADS)
    page.get_by_role("button", name="Save caption").click()
    expect(page.locator(".flash")).to_contain_text("Caption saved")
    page.get_by_role("button", name="Approve the whole purchase").click()
    public_path = page.get_by_role("link", name="See it as others do").get_attribute("href")
    assert public_path and public_path.startswith("/u/victim/p/")

    other = signed_in_page(new_context, "mallory")
    other.goto("/u/victim")
    other.get_by_role("button", name="Follow @victim").click()
    other.goto(public_path)
    other.get_by_label("Add a comment").fill(ALL_PAYLOADS)
    other.get_by_role("button", name="Post comment").click()
    expect(other.locator(".comment-entry")).to_have_count(1)

    owner_watch = Watch(page)
    for path in (f"/purchases/{purchase_id}", "/purchases", "/u/victim", public_path):
        owner_watch.check(page, path)
    page.goto("/notifications")
    expect(page.locator("ul.notifications")).to_contain_text(ALL_PAYLOADS)  # the comment, as text
    assert page.evaluate("typeof window.__xss") == "undefined"

    other_watch = Watch(other)
    other_watch.check(other, "/feed")
    anonymous = new_context().new_page()
    anonymous_watch = Watch(anonymous)
    for path in ("/u/victim", public_path):
        anonymous_watch.check(anonymous, path)
    # The JSON-LD block holds the names too, with every '<' escaped: it is data, not markup.
    ld = json.loads(anonymous.locator('script[type="application/ld+json"]').text_content() or "{}")
    assert [product["name"] for product in ld["@graph"]] == PAYLOADS
    # The Atom feed carries them as escaped text.
    feed = ET.fromstring(anonymous.request.get("/u/victim/feed.atom").body())
    entry = feed.find(f"{ATOM}entry")
    assert entry is not None and entry.findtext(f"{ATOM}summary") == ALL_PAYLOADS


# --- 5. export and account deletion ----------------------------------------------------------------


def test_export_zip_then_delete_account(page: Page, settings) -> None:
    user_id = make_user(settings, "leaving")
    approve_all(settings, receive(settings, user_id))

    log_in(page, "leaving")
    page.goto("/settings")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download my data").click()
    download = download_info.value
    assert download.suggested_filename.startswith("purchaseshare-leaving-")
    assert download.suggested_filename.endswith(".zip")
    archive = zipfile.ZipFile(io.BytesIO(Path(download.path()).read_bytes()))
    names = archive.namelist()
    emails = [name for name in names if name.endswith(".eml")]
    assert len(emails) == 1 and archive.read(emails[0]) == MULTI.read_bytes()
    documents = {name: json.loads(archive.read(name)) for name in names if name.endswith(".json")}
    assert documents, names
    everything = json.dumps(documents)
    assert '"leaving"' in everything and POT in everything

    page.goto("/settings")
    page.get_by_role("link", name="Delete my account").click()
    page.get_by_label(re.compile("Type your handle")).fill("leaving")
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Delete my account and everything in it").click()
    expect(page.get_by_role("alert")).to_contain_text("The password is not right")
    page.get_by_label(re.compile("Type your handle")).fill("leaving")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Delete my account and everything in it").click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator(".flash")).to_contain_text("deleted")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Log in")).to_be_visible()  # logged out
    expect(nav.get_by_role("link", name="Inbox")).to_have_count(0)

    response = page.goto("/u/leaving")
    assert response is not None and response.status == 404
    response = page.goto("/inbox")
    assert response is not None and "/login" in page.url
    page.get_by_label("Handle or email address").fill("leaving")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("do not match")
    with session_scope(settings) as session:
        assert session.exec(select(User).where(User.handle == "leaving")).first() is None


# --- 6. a phone ---------------------------------------------------------------------------------


def test_main_pages_fit_a_phone_screen(new_context, settings) -> None:
    user_id = make_user(settings, "phone")
    make_user(settings, "friend")
    public_id = approve_all(settings, receive(settings, user_id))
    private_id = receive(settings, user_id, SINGLE)  # stays in the inbox

    phone = dict(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    friend = signed_in_page(new_context, "friend", **phone)
    friend.goto("/u/phone")
    friend.get_by_role("button", name="Follow @phone").click()
    page = signed_in_page(new_context, "phone", **phone)
    pages = {page: ["/", "/u/phone", f"/u/phone/p/{public_id}", "/inbox", f"/purchases/{private_id}",
                    "/settings/forwarding", "/settings", "/upload", "/notifications"],
             friend: ["/feed", f"/u/phone/p/{public_id}"]}
    too_wide = []
    for who, paths in pages.items():
        for path in paths:
            response = who.goto(path)
            assert response is not None and response.status == 200, path
            width = who.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
            if width[0] > width[1]:
                too_wide.append((path, width))
    friend.close()  # its feed page keeps an event stream open
    assert too_wide == [], too_wide
