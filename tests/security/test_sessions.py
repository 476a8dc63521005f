"""Issue 11, point 5: logging out ends the session ON THE SERVER. A cookie copied before logout,
sign-out-everywhere or a password reset is refused when replayed; an expired session is refused;
a page the cache stored for a session is never served to that session's cookie once revoked;
`serve` sends Secure cookies unless told otherwise. Against the real server (SQLite, PostgreSQL)."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlmodel import col, select, update
from typer.testing import CliRunner

from purchaseshare.clock import utcnow
from purchaseshare.db import session_scope
from purchaseshare.models import Follow, OutboxMail, ServerSession, User
from tests.security.conftest import Site, post_form

HTML = {"accept": "text/html"}


def signed_in(client: httpx.Client) -> bool:
    response = client.get("/settings", headers=HTML)
    assert response.status_code in (200, 303), response.status_code
    if response.status_code == 303:
        assert response.headers["location"].startswith("/login?next=")
    return response.status_code == 200


def replay(site: Site, cookie: str) -> httpx.Client:
    """A fresh client (another machine) carrying a copied session cookie."""
    client = site.client()
    client.cookies.set("ps_session", cookie)
    return client


def sessions_of(site: Site, handle: str) -> list[ServerSession]:
    with session_scope(site.settings) as db:
        user = db.exec(select(User).where(User.handle == handle)).one()
        return list(db.exec(select(ServerSession).where(ServerSession.user_id == user.id)).all())


def test_a_cookie_copied_before_logout_is_dead_after_it(site):
    site.make_user("alice")
    with site.client() as browser:
        site.log_in(browser, "alice")
        copied = browser.cookies["ps_session"]
        with replay(site, copied) as thief:
            assert signed_in(thief)  # the copy works while the session lives...
        [row] = sessions_of(site, "alice")
        assert row.revoked_at is None and row.expires_at > utcnow() + timedelta(days=29)
        assert row.id not in copied  # the table holds a hash, not the token the cookie carries
        # Logging in again in the same browser replaces the session: the earlier copy dies.
        site.log_in(browser, "alice")
        with replay(site, copied) as thief:
            assert not signed_in(thief)
        copied = browser.cookies["ps_session"]
        response = post_form(browser, "/logout", page="/settings")
        assert response.status_code == 303 and response.headers["location"] == "/"
        assert not signed_in(browser)
    with replay(site, copied) as thief:  # ... and not after the logout
        assert not signed_in(thief)
        assert thief.get("/inbox", headers=HTML).status_code == 303
    assert all(row.revoked_at is not None for row in sessions_of(site, "alice"))


def test_sign_out_everywhere_and_a_password_reset_end_every_copied_cookie(site):
    site.make_user("alice")
    site.make_user("bob")
    with site.client() as laptop, site.client() as phone, site.client() as bobs:
        site.log_in(laptop, "alice")
        site.log_in(phone, "alice")
        site.log_in(bobs, "bob")
        copies = [laptop.cookies["ps_session"], phone.cookies["ps_session"]]
        assert post_form(laptop, "/settings/sign-out-everywhere", page="/settings").status_code == 303
        for cookie in copies:
            with replay(site, cookie) as thief:
                assert not signed_in(thief)
        assert all(row.revoked_at is not None for row in sessions_of(site, "alice"))
        assert signed_in(bobs)  # another account keeps its session

        site.log_in(phone, "alice")
        copied = phone.cookies["ps_session"]
        # A password reset through the mailed link, as the owner would do it.
        assert post_form(laptop, "/reset", {"email": "alice@example.org"}, page="/reset").status_code == 200
        with session_scope(site.settings) as db:
            mail = db.exec(select(OutboxMail).where(OutboxMail.purpose == "reset")).one()
        path = re.search(r"(/reset/[A-Za-z0-9_.\-]+)", mail.body).group(1)
        done = post_form(laptop, path, {"password": "a new passphrase here", "confirm": "a new passphrase here"},
                         page=path)
        assert done.status_code == 303 and signed_in(laptop)  # the resetting browser gets a new session
        with replay(site, copied) as thief:
            assert not signed_in(thief)
        assert not signed_in(phone)
        live = [row for row in sessions_of(site, "alice") if row.revoked_at is None]
        assert len(live) == 1


def test_an_expired_session_is_refused_and_a_used_one_is_renewed(site):
    site.make_user("alice")
    with site.client() as browser:
        site.log_in(browser, "alice")
        [row] = sessions_of(site, "alice")
        with session_scope(site.settings) as db:  # in use 20 minutes ago: the next request renews it
            db.exec(update(ServerSession).where(col(ServerSession.id) == row.id).values(
                last_seen_at=utcnow() - timedelta(minutes=20), expires_at=utcnow() + timedelta(hours=1)))
            db.commit()
        assert signed_in(browser)
        [renewed] = sessions_of(site, "alice")
        assert renewed.expires_at > utcnow() + timedelta(days=29)
        assert renewed.last_seen_at > utcnow() - timedelta(minutes=1)
        with session_scope(site.settings) as db:  # the server's clock decides, whatever the cookie says
            db.exec(update(ServerSession).where(col(ServerSession.id) == row.id).values(
                expires_at=utcnow() - timedelta(seconds=1)))
            db.commit()
        assert not signed_in(browser)


def test_a_page_cached_for_a_session_is_never_served_to_its_revoked_cookie(site):
    reader, star = site.make_user("reader"), site.make_user("star")
    with session_scope(site.settings) as db:
        db.add(Follow(follower_id=reader.id, followee_id=star.id))
        db.commit()
    with site.client() as browser:
        site.log_in(browser, "reader")
        copied = browser.cookies["ps_session"]
        pages = [browser.get("/feed", headers=HTML) for _ in range(3)]
        assert all(page.status_code == 200 for page in pages)
        assert pages[-1].headers.get("x-page-cache") == "hit"  # the feed is stored for this session
        assert post_form(browser, "/logout", page="/settings").status_code == 303
    with replay(site, copied) as thief:
        for _ in range(3):
            response = thief.get("/feed", headers=HTML)
            assert response.status_code == 303 and response.headers["location"].startswith("/login")
            assert "x-page-cache" not in response.headers
            thief.cookies.set("ps_session", copied)  # the server cleared it; the thief keeps sending it


def test_serve_sends_secure_cookies_and_trusts_no_proxy_by_default(settings, monkeypatch):
    """`purchaseshare serve` as an operator starts it (only uvicorn's loop is replaced, by one login)."""
    import uvicorn
    from fastapi.testclient import TestClient

    from purchaseshare.cli import app as cli
    from purchaseshare.config import get_settings

    for name in ("PURCHASESHARE_SECURE_COOKIES", "PURCHASESHARE_TRUSTED_PROXIES", "PURCHASESHARE_CHECK_HOST",
                 "FORWARDED_ALLOW_IPS"):
        monkeypatch.setenv(name, "x")  # so the teardown restores them as they were (unset)
        monkeypatch.delenv(name)
    seen: dict = {}

    def run(target: str, **options) -> None:
        from web.app import create_app

        get_settings.cache_clear()
        seen.update(options, secure=get_settings().secure_cookies)
        with TestClient(create_app(run_worker=False), base_url="https://127.0.0.1",
                        follow_redirects=False) as client:
            seen["cookie"] = client.get("/login", headers=HTML).headers["set-cookie"]

    monkeypatch.setattr(uvicorn, "run", run)
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["serve"])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert seen["secure"] is True and "; secure" in seen["cookie"].lower() and "httponly" in seen["cookie"].lower()
    assert seen["proxy_headers"] is False and seen["forwarded_allow_ips"] == ""
    # Plain http stays possible when the operator says so.
    monkeypatch.setenv("PURCHASESHARE_SECURE_COOKIES", "false")
    monkeypatch.setenv("PURCHASESHARE_TRUSTED_PROXIES", "10.0.0.5")
    assert CliRunner().invoke(cli, ["serve"]).exit_code == 0
    get_settings.cache_clear()
    assert seen["secure"] is False and "secure" not in seen["cookie"].lower()
    assert seen["proxy_headers"] is True and seen["forwarded_allow_ips"] == "10.0.0.5"


def test_sessions_per_account_are_capped_and_dead_ones_cleared(settings, monkeypatch):
    from tests.web.conftest import make_user
    from web import sessions

    monkeypatch.setattr(sessions, "MAX_PER_USER", 6)  # the mechanism, on fewer rows than the real 100

    alice, bob = make_user(settings, "alice"), make_user(settings, "bob")
    with session_scope(settings) as db:
        bobs = sessions.start(db, bob)
        sessions.revoke(db, bobs)
        db.exec(update(ServerSession).where(col(ServerSession.user_id) == bob.id).values(
            revoked_at=None, expires_at=utcnow() - timedelta(seconds=1)))  # expired rather than revoked
        db.commit()
        tokens = [sessions.start(db, alice) for _ in range(sessions.MAX_PER_USER + 5)]
        rows = db.exec(select(ServerSession)).all()
        assert len(rows) == sessions.MAX_PER_USER and {row.user_id for row in rows} == {alice.id}
        assert [sessions.user_for(db, token) is not None for token in (tokens[0], tokens[5], tokens[-1])] == \
            [False, True, True]  # the oldest went first
