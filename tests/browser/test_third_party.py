"""No page makes the visitor's browser talk to anyone but us: every page of demo-like data (home,
profiles, purchase pages, a collection, the home feed signed in, notifications, the owner's and
the operator's pages) is loaded in Chromium, and the test FAILS on any request to another origin
(product pictures come through our /img proxy, the favicon and styles are ours), on a request the
CSP had to refuse, and on any element pointing elsewhere that the browser has not fetched yet
(a lazy image below the fold)."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.demo_site import DemoSite

pytestmark = [pytest.mark.services, pytest.mark.parametrize("settings", ["sqlite"], indirect=True)]

# Every attribute through which a page can make the browser fetch something.
RESOURCES_JS = """() => Array.from(document.querySelectorAll(
    '[src], [srcset], link[href], [poster], object[data], form[action]')).flatMap(el => [
  el.getAttribute('src'), el.getAttribute('poster'), el.getAttribute('data'),
  el.tagName === 'LINK' && !/^(alternate|canonical)$/.test(el.getAttribute('rel') || '') ? el.getAttribute('href') : null,
  el.tagName === 'FORM' ? el.getAttribute('action') : null,
  ...(el.getAttribute('srcset') || '').split(',').map(part => part.trim().split(/\\s+/)[0]),
].filter(Boolean))"""




class Outside:
    """Requests a context makes to origins other than `base`, aborted at once and recorded; and
    what the CSP refused (a blocked fetch never reaches the network, so no request event)."""

    def __init__(self, context: BrowserContext, base: str) -> None:
        self.origin = _origin(base)
        self.seen: list[str] = []
        context.route(lambda url: _origin(url) != self.origin, self._refuse)
        context.on("request", lambda request: self._check(request.url))

    def _refuse(self, route) -> None:
        self._check(route.request.url)
        route.abort()

    def _check(self, url: str) -> None:
        if _origin(url) != self.origin and not url.startswith(("data:", "blob:", "about:")):
            self.seen.append(url)

    def watch(self, page: Page) -> None:
        page.on("console", lambda message: self.seen.append(f"CSP: {message.text}")
                if "Content Security Policy" in message.text else None)

    def load(self, page: Page, path: str) -> None:
        response = page.goto(path)
        assert response is not None and response.status == 200, (path, response and response.status)
        page.wait_for_load_state("load")
        page.mouse.wheel(0, 20000)  # lazy images below the fold are fetched too
        page.wait_for_timeout(150)
        for url in page.evaluate(RESOURCES_JS):
            self._check(urljoin(page.url, url))
        assert self.seen == [], (path, self.seen)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def test_no_page_makes_a_request_to_another_origin(site: DemoSite, new_context, live_server) -> None:
    anonymous_context = new_context()
    anonymous = Outside(anonymous_context, live_server)
    visitor = anonymous_context.new_page()
    anonymous.watch(visitor)
    for path in site.anonymous_pages():
        anonymous.load(visitor, path)

    owner_context = new_context()
    owner = Outside(owner_context, live_server)
    page = owner_context.new_page()
    owner.watch(page)
    page.goto("/login")
    page.get_by_label("Handle or email address").fill("demo")
    page.get_by_label("Password").fill(site.password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server}/inbox")
    for path in site.owner_pages():
        owner.load(page, path)
    # The feed and notifications really had content to show (not an empty page that proves nothing).
    page.goto("/feed")
    expect(page.locator("#feed .feed-entry").first).to_be_visible()
    page.goto("/notifications")
    expect(page.locator("ul.notifications li.unread").first).to_be_visible()

    # The watch itself can fail: a remote picture is caught whether the browser fetched it or it
    # waits, lazy, below the fold.
    page.goto("/u/demo")
    page.evaluate("""() => { const img = document.createElement('img');
        img.src = 'https://cdn.example.net/pixel.gif'; document.body.append(img); }""")
    page.wait_for_timeout(300)
    assert any("cdn.example.net" in seen for seen in owner.seen), owner.seen
    owner.seen.clear()
    page.evaluate("""() => { const img = document.createElement('img'); img.loading = 'lazy';
        img.style.marginTop = '99999px'; img.src = 'https://cdn.example.org/lazy.jpg'; document.body.append(img); }""")
    found = [urljoin(page.url, url) for url in page.evaluate(RESOURCES_JS)]
    assert "https://cdn.example.org/lazy.jpg" in found
    page.close()  # the feed's event stream ends before the server stops
