"""Who may see and change what, route by route.

Every route of the app must be classified in ROUTES (a new route without an entry fails
`test_every_route_is_classified`). Each is then requested, with the real ids of real objects of
the owner, as anonymous, as another user, as the owner and (for operator pages) as an operator:

- public: the given statuses for everyone;
- login-required: anonymous is sent to /login?next=...; any signed-in user may use it;
- owner-only-object: anonymous goes to /login, another user gets 404 and the database is
  unchanged after their POST (integer ids of private objects are never accepted from them);
- operator-only: 404 for everyone signed in but operators.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from sqlmodel import SQLModel
from starlette.routing import Mount

from purchaseshare.db import session_scope
from purchaseshare.models import (
    Collection,
    CollectionItem,
    Comment,
    Notification,
    RawEmail,
    User,
)
from purchaseshare.users import add_sender_address
from tests.web.conftest import PASSWORD, csrf, log_in, make_user, receive
from tests.web.test_public import FIXTURES, approve, item_ids
from web.deps import account_stamp
from web.routes.auth import verify_link
from web.security import make_link_token

PUBLIC, LOGIN, OWNER, OPERATOR = "public", "login-required", "owner-only-object", "operator-only"
OK = frozenset({200, 303})


@dataclass(frozen=True)
class Rule:
    kind: str
    data: dict[str, str] = field(default_factory=dict)  # form fields; "{name}" takes a value from the world
    ok: frozenset[int] = OK  # statuses for someone allowed to use the route
    url: str | None = None  # the URL to request, when it is not the path with the world's ids in it
    params: dict[str, str] = field(default_factory=dict)  # path parameter -> another key of the world
    last: int = 0  # changes that would break the next checks (deletions, logout) run later, in this order
    ends_session: bool = False  # the session (and its CSRF token) is gone afterwards


EMAIL = b"From: Corner Shop <shop@example.com>\r\nTo: x@example.org\r\nSubject: Your receipt\r\n\r\nTea 3.50\r\n"

ROUTES: dict[tuple[str, str], Rule] = {
    # --- the framework and the public side
    ("GET", "/healthz"): Rule(PUBLIC, ok=frozenset({200})),
    ("GET", "/openapi.json"): Rule(PUBLIC, ok=frozenset({200})),
    ("GET", "/api/docs"): Rule(PUBLIC, ok=frozenset({200})),
    ("GET", "/swagger-ui"): Rule(PUBLIC, ok=frozenset({200}), url="/swagger-ui/swagger-ui-bundle.js"),
    # Only tokens signed by the site are fetched (tests/security/test_image_proxy.py): no open proxy.
    ("GET", "/img/{token}"): Rule(PUBLIC, ok=frozenset({404}), url="/img/unsigned.token"),
    # Stored product images (tests/web/test_stored_images.py): public files; none in this world.
    ("GET", "/media/{file}"): Rule(PUBLIC, ok=frozenset({404}), url="/media/" + "0" * 32 + "-480.webp"),
    ("GET", "/static"): Rule(PUBLIC, ok=frozenset({200}), url="/static/style.css"),
    ("GET", "/"): Rule(PUBLIC, ok=frozenset({200})),
    ("GET", "/u/{handle}"): Rule(PUBLIC, ok=frozenset({200})),
    ("GET", "/u/{handle}/p/{public_id}"): Rule(PUBLIC, ok=frozenset({200})),
    ("GET", "/u/{handle}/c/{slug}"): Rule(PUBLIC, ok=frozenset({200})),
    ("GET", "/u/{handle}/feed.atom"): Rule(PUBLIC, ok=frozenset({200})),
    ("GET", "/api/v1/users/{handle}"): Rule(PUBLIC, ok=frozenset({200})),
    ("GET", "/api/v1/users/{handle}/purchases"): Rule(PUBLIC, ok=frozenset({200})),
    ("GET", "/api/v1/users/{handle}/purchases/{public_id}"): Rule(PUBLIC, ok=frozenset({200})),
    # --- accounts
    ("GET", "/signup"): Rule(PUBLIC),
    ("POST", "/signup"): Rule(PUBLIC, {"handle": "", "password": ""}, ok=frozenset({303, 400})),
    ("GET", "/login"): Rule(PUBLIC),
    ("POST", "/login"): Rule(PUBLIC, {"handle": "nobody-here", "password": "wrong"}, ok=frozenset({303, 400})),
    ("POST", "/logout"): Rule(PUBLIC, ok=frozenset({303}), last=10, ends_session=True),
    ("GET", "/reset"): Rule(PUBLIC, ok=frozenset({200})),
    ("POST", "/reset"): Rule(PUBLIC, {"email": "nobody@example.org"}, ok=frozenset({200})),
    ("GET", "/reset/{token}"): Rule(PUBLIC, ok=frozenset({200}), params={"token": "reset_token"}),
    ("POST", "/reset/{token}"): Rule(PUBLIC, {"password": "long enough pass 1", "confirm": "different pass 2"},
                                     ok=frozenset({400}), params={"token": "reset_token"}),
    ("GET", "/settings/addresses"): Rule(LOGIN, ok=frozenset({200})),
    ("POST", "/settings/addresses"): Rule(LOGIN, {"address": "{me}.second@example.org"}),
    ("POST", "/settings/addresses/{address_id}/delete"): Rule(OWNER, last=6),
    ("POST", "/settings/addresses/{address_id}/resend"): Rule(OWNER),
    ("GET", "/verify/{token}"): Rule(OWNER, ok=frozenset({200}), params={"token": "verify_token"}),
    ("POST", "/verify/{token}"): Rule(OWNER, ok=frozenset({303}), params={"token": "verify_token"}, last=1),
    ("GET", "/settings/forwarding"): Rule(LOGIN, ok=frozenset({200})),
    # --- the owner's side
    ("GET", "/inbox"): Rule(LOGIN, ok=frozenset({200})),
    ("POST", "/inbox/approve"): Rule(LOGIN, {"ids": "{purchase_id}"}, ok=frozenset({303})),
    ("GET", "/purchases"): Rule(LOGIN, ok=frozenset({200})),
    ("GET", "/purchases/new"): Rule(LOGIN, ok=frozenset({200})),
    ("POST", "/purchases/new"): Rule(LOGIN, {"merchant_name": "Corner shop", "order_date": "2025-01-02",
                                             "currency": "GBP", "items": "2 x Tea @ 3.50"}, ok=frozenset({303})),
    ("GET", "/purchases/{purchase_id}"): Rule(OWNER, ok=frozenset({200})),
    ("POST", "/purchases/{purchase_id}/approve"): Rule(OWNER, ok=frozenset({303})),
    ("POST", "/purchases/{purchase_id}/items"): Rule(OWNER, {"approved": "{item_id}"}, ok=frozenset({303})),
    ("POST", "/purchases/{purchase_id}/hide-prices"): Rule(OWNER, {"hide_prices": "on"}, ok=frozenset({303})),
    ("POST", "/purchases/{purchase_id}/caption"): Rule(OWNER, {"caption": "Hello"}, ok=frozenset({303})),
    ("POST", "/purchases/{purchase_id}/edit"): Rule(OWNER, {"merchant_name": "Amazon UK"}, ok=frozenset({303})),
    ("POST", "/purchases/{purchase_id}/add-item"): Rule(OWNER, {"name": "Gift wrap", "unit_price": "2.50"},
                                                        ok=frozenset({303})),
    # The unshared item: the shared one is still needed by the review and collection checks.
    ("POST", "/purchases/{purchase_id}/items/{item_id}/remove"): Rule(OWNER, ok=frozenset({303}),
                                                                      params={"item_id": "unshared_item_id"}),
    ("POST", "/purchases/{purchase_id}/reject"): Rule(OWNER, ok=frozenset({303}), last=4),
    ("POST", "/purchases/{purchase_id}/delete"): Rule(OWNER, ok=frozenset({303}), last=5),
    ("GET", "/emails"): Rule(LOGIN, ok=frozenset({200})),
    ("POST", "/emails/{raw_id}/retry"): Rule(OWNER, ok=frozenset({303})),
    ("GET", "/emails/{raw_id}/teach"): Rule(OWNER, ok=frozenset({200})),
    ("GET", "/emails/{raw_id}/original"): Rule(OWNER, ok=frozenset({200})),
    ("POST", "/emails/{raw_id}/teach"): Rule(OWNER, ok=frozenset({303})),
    ("GET", "/operator/quarantine"): Rule(OPERATOR, ok=frozenset({200})),
    ("GET", "/operator/outbox"): Rule(OPERATOR, ok=frozenset({200})),
    ("POST", "/operator/quarantine/{raw_id}/retry"): Rule(OPERATOR, ok=frozenset({303}),
                                                          params={"raw_id": "quarantined_id"}),
    ("GET", "/upload"): Rule(LOGIN, ok=frozenset({200})),
    ("POST", "/upload"): Rule(LOGIN, ok=frozenset({200, 303})),
    ("GET", "/settings"): Rule(LOGIN, ok=frozenset({200})),
    ("POST", "/settings"): Rule(LOGIN, {"handle": "{me}", "display_name": "{me}"}, ok=frozenset({303})),
    ("GET", "/settings/export"): Rule(LOGIN, ok=frozenset({200})),
    # Ends every session of the account: after everything else (the owner is signed out by then).
    ("POST", "/settings/sign-out-everywhere"): Rule(LOGIN, ok=frozenset({303}), last=11, ends_session=True),
    ("GET", "/settings/delete"): Rule(LOGIN, ok=frozenset({200})),
    ("POST", "/settings/delete"): Rule(LOGIN, {"handle": "{me}", "password": PASSWORD}, ok=frozenset({303}),
                                       last=9, ends_session=True),
    # --- the social layer
    ("POST", "/u/{handle}/follow"): Rule(LOGIN, ok=frozenset({303})),
    ("POST", "/u/{handle}/unfollow"): Rule(LOGIN, ok=frozenset({303})),
    ("GET", "/feed"): Rule(LOGIN, ok=frozenset({200})),
    ("GET", "/feed/events"): Rule(LOGIN, ok=frozenset({200})),
    ("POST", "/u/{handle}/p/{public_id}/like"): Rule(LOGIN, ok=frozenset({303})),
    ("POST", "/u/{handle}/p/{public_id}/unlike"): Rule(LOGIN, ok=frozenset({303})),
    ("POST", "/u/{handle}/p/{public_id}/comments"): Rule(LOGIN, {"body": "Nice one"}, ok=frozenset({303})),
    ("POST", "/comments/{comment_id}/delete"): Rule(OWNER, ok=frozenset({303}), last=3),
    ("GET", "/notifications"): Rule(LOGIN, ok=frozenset({200})),
    ("POST", "/notifications/read"): Rule(LOGIN, ok=frozenset({303})),
    ("POST", "/items/{item_id}/review"): Rule(OWNER, {"rating": "5", "body": "Great"}, ok=frozenset({303})),
    ("GET", "/collections"): Rule(LOGIN, ok=frozenset({200})),
    ("POST", "/collections"): Rule(LOGIN, {"name": "Garden"}, ok=frozenset({303})),
    ("POST", "/collections/{collection_id}/items"): Rule(OWNER, {"item_id": "{item_id}"}, ok=frozenset({303})),
    ("POST", "/collections/{collection_id}/items/{item_id}/remove"): Rule(OWNER, ok=frozenset({303}), last=1),
    ("POST", "/collections/{collection_id}/delete"): Rule(OWNER, ok=frozenset({303}), last=2),
}


def app_routes(app) -> Iterator[tuple[str, str, object]]:
    """(method, full path, route) for every route, routers included (FastAPI nests them)."""
    def walk(routes, prefix: str = ""):
        for route in routes:
            if hasattr(route, "original_router"):  # an included APIRouter
                yield from walk(route.original_router.routes, prefix + route.include_context.prefix)
            elif isinstance(route, Mount):
                yield "GET", prefix + route.path, route
            else:
                for method in sorted(getattr(route, "methods", None) or ()):
                    if method != "HEAD":
                        yield method, prefix + route.path, route
    yield from walk(app.routes)


def path_pattern(path: str) -> re.Pattern[str]:
    """A route path as a regex over request paths ({name} is one segment)."""
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")


def test_every_route_is_classified(app):
    routes = {(method, path) for method, path, _ in app_routes(app)}
    unclassified = sorted(routes - set(ROUTES))
    assert not unclassified, f"add these routes to ROUTES in {__file__}: {unclassified}"
    stale = sorted(set(ROUTES) - routes)
    assert not stale, f"these routes are gone; remove them from ROUTES: {stale}"


# --- the world: an owner with one of everything, another user, an operator ------------------------


def snapshot(settings) -> dict[str, list[tuple]]:
    """Every row of every table: 'the database is unchanged' compares two of these."""
    with session_scope(settings) as session:
        connection = session.connection()
        return {table.name: sorted(tuple(map(repr, row)) for row in connection.execute(table.select()))
                for table in SQLModel.metadata.sorted_tables}


def build_world(settings) -> dict[str, str]:
    olive, mallory = make_user(settings, "olive"), make_user(settings, "mallory")
    opal = make_user(settings, "opal")
    outcome = receive(settings, olive, (FIXTURES / "amazon" / "amazon_3_multi_item.eml").read_bytes())
    assert outcome.status == "parsed"
    approve(settings, outcome.purchase_id, {0, 1})
    item_id, _, unshared_id = item_ids(settings, outcome.purchase_id)
    with session_scope(settings) as session:
        session.get(User, opal.id).is_operator = True
        owner = session.get(User, olive.id)
        address = add_sender_address(session, owner, "olive.sender@example.org")
        comment = Comment(purchase_id=outcome.purchase_id, user_id=olive.id, body="My own comment")
        shelf = Collection(user_id=olive.id, name="Kitchen", slug="kitchen")
        theirs = Collection(user_id=mallory.id, name="Mine", slug="mine")
        quarantined = RawEmail(sha256="0" * 64, raw=EMAIL, size=len(EMAIL), status="quarantined",
                               from_addr="shop@example.com", reason="unknown sender")
        session.add_all([comment, shelf, theirs, quarantined])
        session.flush()
        session.add(CollectionItem(collection_id=shelf.id, item_id=item_id))
        notification = Notification(user_id=olive.id, actor_id=mallory.id, kind="follow")
        session.add(notification)
        session.commit()
        from purchaseshare.models import Purchase

        purchase = session.get(Purchase, outcome.purchase_id)
        return {
            "handle": "olive", "owner_id": str(olive.id), "purchase_id": str(outcome.purchase_id), "public_id": purchase.public_id,
            "item_id": str(item_id), "unshared_item_id": str(unshared_id), "raw_id": str(outcome.raw_email_id),
            "quarantined_id": str(quarantined.id), "address_id": str(address.id), "comment_id": str(comment.id),
            "collection_id": str(shelf.id), "slug": "kitchen", "their_collection_id": str(theirs.id),
            "notification_id": str(notification.id),
            "verify_token": verify_link(settings, address).rsplit("/", 1)[1],
            "reset_token": make_link_token(settings.secret_key, "reset", {"u": olive.id, "sv": owner.session_version,
                                                                          "c": account_stamp(owner)}),
        }


def url_for(path: str, rule: Rule, world: dict[str, str]) -> str:
    if rule.url:
        return rule.url
    values = {**world, **{name: world[key] for name, key in rule.params.items()}}
    return re.sub(r"\{([^}:]+)(?::[^}]+)?\}", lambda m: values[m.group(1)], path)


class Browser:
    """A TestClient plus its CSRF token (read once from a real form, like a browser would)."""

    def __init__(self, client, handle: str | None) -> None:
        self.client, self.handle = client, handle
        if handle:
            log_in(client, handle)
        self.token = csrf(client, "/login" if handle is None else "/settings")

    def request(self, method: str, url: str, rule: Rule, world: dict[str, str]):
        if method == "GET":
            return self.client.get(url, headers={"accept": "text/html"})
        values = {**world, "me": self.handle or "anonymous"}
        data = {name: value.format(**values) for name, value in rule.data.items()}
        files = {"files": ("receipt.eml", EMAIL, "message/rfc822")} if url == "/upload" else None
        response = self.client.post(url, data={**data, "csrf_token": self.token}, files=files,
                                    headers={"accept": "text/html"})
        if rule.ends_session:
            self.token = csrf(self.client, "/login")
        return response


def to_login(response) -> bool:
    return response.status_code == 303 and urlsplit(response.headers["location"]).path == "/login" \
        and "next=" in response.headers["location"]


@pytest.fixture
def short_streams(monkeypatch):
    """The live feed's stream ends quickly, so a plain GET of it returns."""
    monkeypatch.setattr("web.routes.social.STREAM_MAX_SECONDS", 0.3, raising=False)
    monkeypatch.setattr("web.routes.social.POLL_SECONDS", 0.1, raising=False)


def test_who_may_do_what(settings, app, short_streams):
    from fastapi.testclient import TestClient

    world = build_world(settings)
    routes = sorted(((method, path) for method, path, _ in app_routes(app) if (method, path) in ROUTES),
                    key=lambda key: ROUTES[key].last)
    failures: list[str] = []

    def check(condition: bool, who: str, method: str, url: str, response, expected: str) -> None:
        if not condition:
            failures.append(f"{who} {method} {url}: {response.status_code} "
                            f"{response.headers.get('location', '')} (expected {expected})")

    with TestClient(app, follow_redirects=False) as anon_c, TestClient(app, follow_redirects=False) as other_c, \
            TestClient(app, follow_redirects=False) as owner_c, TestClient(app, follow_redirects=False) as op_c:
        anonymous, other = Browser(anon_c, None), Browser(other_c, "mallory")

        # Ids of the owner's private objects inside another user's own requests change nothing.
        before = snapshot(settings)
        other_c.post("/inbox/approve", data={"ids": world["purchase_id"], "csrf_token": other.token})
        other_c.post(f"/collections/{world['their_collection_id']}/items",
                     data={"item_id": world["unshared_item_id"], "csrf_token": other.token})
        other_c.post(f"/collections/{world['their_collection_id']}/items",
                     data={"item_id": world["item_id"], "csrf_token": other.token})
        other_c.post(f"/collections/{world['their_collection_id']}/items/{world['item_id']}/remove",
                     data={"csrf_token": other.token})
        other_c.post("/notifications/read", data={"upto": world["notification_id"], "csrf_token": other.token})
        if before != snapshot(settings):
            failures.append("another user's requests carrying the owner's ids changed the database")

        for who, browser in (("anonymous", anonymous), ("other", other)):
            for method, path in routes:
                rule = ROUTES[(method, path)]
                url = url_for(path, rule, world)
                watch = method == "POST" and (who == "anonymous" or rule.kind in (OWNER, OPERATOR))
                before = snapshot(settings) if watch and rule.kind != PUBLIC else None
                response = browser.request(method, url, rule, world)
                if rule.kind == PUBLIC:
                    check(response.status_code in rule.ok, who, method, url, response, str(sorted(rule.ok)))
                elif who == "anonymous":
                    check(to_login(response), who, method, url, response, "303 to /login?next=")
                elif rule.kind == LOGIN:
                    check(response.status_code in rule.ok, who, method, url, response, str(sorted(rule.ok)))
                else:
                    check(response.status_code == 404, who, method, url, response, "404")
                if before is not None and before != snapshot(settings):
                    failures.append(f"{who} {method} {url} changed the database")

        operator = Browser(op_c, "opal")
        for method, path in routes:
            rule = ROUTES[(method, path)]
            if rule.kind == OPERATOR or (rule.kind == OWNER and method == "GET"):
                url = url_for(path, rule, world)
                response = operator.request(method, url, rule, world)
                expected = rule.ok if rule.kind == OPERATOR else frozenset({404})  # operators own nothing here
                check(response.status_code in expected, "operator", method, url, response, str(sorted(expected)))

        owner = Browser(owner_c, "olive")
        for method, path in routes:
            rule = ROUTES[(method, path)]
            url = url_for(path, rule, world)
            response = owner.request(method, url, rule, world)
            expected = frozenset({404}) if rule.kind == OPERATOR else rule.ok
            check(response.status_code in expected, "owner", method, url, response, str(sorted(expected)))
        with session_scope(settings) as session:  # the owner's last POSTs really deleted the account
            assert session.get(User, int(world["owner_id"])) is None

    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("bad_id", ["9" * 30, "²", "-1", "1e3"])
def test_ids_that_no_row_can_have_are_404_everywhere(settings, app, client, bad_id):
    """Every route taking a row id answers a malformed or out-of-range one like a missing row
    (a 30-digit integer once reached the database and failed with a 500)."""
    make_user(settings, "ida")
    log_in(client, "ida")
    token = csrf(client, "/settings")
    checked = 0
    for method, path, _route in app_routes(app):
        names = re.findall(r"{(\w+_id)}", path)
        if not names or path.startswith("/u/"):
            continue
        url = path
        for name in names:
            url = url.replace("{" + name + "}", bad_id)
        response = client.request(method, url, data={"csrf_token": token} if method == "POST" else None,
                                  headers={"accept": "text/html"})
        assert response.status_code == 404, f"{method} {url}: {response.status_code}"
        checked += 1
    assert checked >= 10
