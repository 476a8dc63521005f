"""Accounts through the real app and database (SQLite and PostgreSQL): sign up, log in/out, rate
limiting, CSRF, session cookies, password reset and address verification from the outbox mail,
ownership of addresses, the forwarding page, and `next` redirects."""

from __future__ import annotations

import re
import time
from email.message import EmailMessage

import pytest
from sqlmodel import select

from purchaseshare.db import session_scope
from purchaseshare.models import LoginAttempt, OutboxMail, SenderAddress, User
from tests.web.conftest import PASSWORD, csrf, log_in, make_user, post, receive
from web.deps import account_stamp
from web.routes.auth import safe_next
from web.security import (
    MAX_FAILURES_PER_ACCOUNT,
    MAX_FAILURES_PER_ADDRESS,
    check_password,
    make_link_token,
    record_login_failure,
)

HTML = {"accept": "text/html"}
NEW_PASSWORD = "a brand new passphrase"


def outbox(settings, purpose: str | None = None) -> list[OutboxMail]:
    with session_scope(settings) as db:
        query = select(OutboxMail).order_by(OutboxMail.id)
        if purpose:
            query = query.where(OutboxMail.purpose == purpose)
        return list(db.exec(query).all())


def link_in(settings, mail: OutboxMail, route: str) -> str:
    """The path of the absolute link in a mail, as someone reading the outbox would open it."""
    found = re.search(re.escape(settings.base_url) + rf"(/{route}/[A-Za-z0-9_.\-]+)", mail.body)
    assert found, mail.body
    return found.group(1)


def user_row(settings, handle: str) -> User | None:
    with session_scope(settings) as db:
        return db.exec(select(User).where(User.handle == handle)).first()


def addresses_of(settings, handle: str) -> list[SenderAddress]:
    with session_scope(settings) as db:
        user = db.exec(select(User).where(User.handle == handle)).one()
        return list(db.exec(select(SenderAddress).where(SenderAddress.user_id == user.id)).all())


def signed_in(client) -> bool:
    response = client.get("/settings/forwarding", headers=HTML)
    if response.status_code == 303:
        assert response.headers["location"].startswith("/login?next=")
        return False
    assert response.status_code == 200
    return True


def sign_up(client, handle="alice", email="Alice@Example.org", password=PASSWORD, display_name="Alice A."):
    return post(client, "/signup", {"handle": handle, "display_name": display_name, "email": email,
                                     "password": password}, page="/signup")


# --- sign up ---------------------------------------------------------------------------------------


def test_signup_signs_in_and_mails_a_link_that_verifies_the_address(client, settings):
    assert not signed_in(client)
    response = sign_up(client)
    assert response.status_code == 303
    assert response.headers["location"] == "/settings/forwarding"
    user = user_row(settings, "alice")
    assert user is not None and user.email == "alice@example.org" and user.display_name == "Alice A."
    assert user.password_hash.startswith("$argon2") and check_password(user.password_hash, PASSWORD)

    page = client.get("/settings/forwarding", headers=HTML)
    assert page.status_code == 200
    assert settings.forwarding_address(user.forwarding_token) in page.text
    assert "Welcome, Alice A." in page.text

    [row] = addresses_of(settings, "alice")
    assert row.address == "alice@example.org" and row.verified_at is None
    [mail] = outbox(settings, "verify")
    assert mail.to_addr == "alice@example.org" and mail.user_id == user.id
    assert settings.forwarding_address(user.forwarding_token) in mail.body
    path = link_in(settings, mail, "verify")
    confirm = client.get(path, headers=HTML)
    assert confirm.status_code == 200 and "alice@example.org" in confirm.text
    assert addresses_of(settings, "alice")[0].verified_at is None  # GET only asks
    done = post(client, path, page=path)
    assert done.status_code == 303 and done.headers["location"] == "/settings/addresses"
    assert addresses_of(settings, "alice")[0].verified_at is not None
    assert "Verified" in client.get("/settings/addresses", headers=HTML).text
    assert client.get(path, headers=HTML).status_code == 400  # used once


# An existing account's email is NOT an error any more: it gets the answer a new one gets
# (tests/security/test_login_abuse.py).
SIGNUP_ERRORS = [
    ({"handle": "alice"}, "The handle alice is taken"),
    ({"handle": "ALICE"}, "The handle alice is taken"),
    ({"password": "short"}, "Choose a longer password: use at least 10 characters"),
    ({"handle": "-bad handle-"}, "Use 1-40 lowercase letters"),
    ({"handle": ""}, "Choose a handle"),
    ({"email": "not-an-address"}, "Enter an email address"),
]


def test_signup_errors_rerender_the_form_with_400(client, settings):
    make_user(settings, "alice", email="alice@example.org")
    for fields, message in SIGNUP_ERRORS:
        data = {"handle": "newcomer", "display_name": "<b>New</b>", "email": "new@example.org",
                "password": PASSWORD, **fields}
        response = post(client, "/signup", data, page="/signup")
        assert response.status_code == 400, fields
        assert message in response.text, fields
        assert 'aria-invalid="true"' in response.text
        assert "&lt;b&gt;New&lt;/b&gt;" in response.text and "<b>New</b>" not in response.text  # kept, escaped
        assert PASSWORD not in response.text  # the password is never echoed back
    assert user_row(settings, "newcomer") is None
    assert not signed_in(client)
    assert outbox(settings) == []


# --- log in / out, rate limiting -------------------------------------------------------------------


def test_login_by_handle_or_email_and_wrong_password(client, settings):
    make_user(settings, "alice", email="alice@example.org")
    wrong = post(client, "/login", {"handle": "alice", "password": "wrong password!"}, page="/login")
    assert wrong.status_code == 400
    assert "do not match" in wrong.text
    assert not signed_in(client)
    unknown = post(client, "/login", {"handle": "nobody", "password": PASSWORD}, page="/login")
    assert unknown.status_code == 400 and "do not match" in unknown.text

    by_email = post(client, "/login", {"handle": "ALICE@example.org", "password": PASSWORD}, page="/login")
    assert by_email.status_code == 303 and signed_in(client)
    with session_scope(settings) as db:  # success forgets the account's failures
        assert db.exec(select(LoginAttempt).where(LoginAttempt.key == "user:alice")).first() is None


def test_login_rate_limit_per_account_blocks_the_guessing_client_not_the_owner(client, app, settings):
    from fastapi.testclient import TestClient

    make_user(settings, "alice", email="alice@example.org")
    for _ in range(MAX_FAILURES_PER_ACCOUNT):
        assert post(client, "/login", {"handle": "alice", "password": "guess guess guess"},
                    page="/login").status_code == 400
    blocked = post(client, "/login", {"handle": "alice", "password": PASSWORD}, page="/login")
    assert blocked.status_code == 429
    assert "Too many failed attempts" in blocked.text and blocked.headers["retry-after"] == "900"
    assert not signed_in(client)
    # By email it is the same account: this client stays blocked on it.
    assert post(client, "/login", {"handle": "alice@example.org", "password": PASSWORD},
                page="/login").status_code == 429
    # The owner, from another address, is not locked out by the guesses.
    with TestClient(app, follow_redirects=False, client=("192.0.2.7", 50000)) as owner:
        log_in(owner, "alice")
        assert signed_in(owner)
    # Another account is not blocked for the guessing client either.
    make_user(settings, "bob")
    log_in(client, "bob")


def test_login_rate_limit_per_client_address(client, settings):
    make_user(settings, "carol")
    # Many accounts tried from one address (password spraying). The earlier failures are recorded
    # as the app records them (each costs an argon2 hash over HTTP); the last one goes through HTTP.
    with session_scope(settings) as db:
        for n in range(MAX_FAILURES_PER_ADDRESS - 1):
            record_login_failure(db, f"user{n}", "testclient")  # TestClient's client address
    assert post(client, "/login", {"handle": "dave", "password": "guess guess guess"},
                page="/login").status_code == 400
    blocked = post(client, "/login", {"handle": "carol", "password": PASSWORD}, page="/login")
    assert blocked.status_code == 429 and "Too many failed attempts" in blocked.text
    assert not signed_in(client)


def test_logout_ends_the_session(client, settings):
    make_user(settings, "alice")
    log_in(client, "alice")
    assert signed_in(client)
    response = post(client, "/logout", page="/settings/forwarding")
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert not signed_in(client)


def test_sign_out_everywhere_ends_every_session_of_the_account_only(client, other_client, app, settings):
    from fastapi.testclient import TestClient

    make_user(settings, "alice")
    make_user(settings, "bob")
    log_in(client, "alice")
    log_in(other_client, "alice")  # a second device
    old_cookie = client.cookies.get("ps_session")
    assert old_cookie
    reset = make_link_token(settings.secret_key, "reset", {"u": user_row(settings, "alice").id, "sv": 0,
                                                           "c": account_stamp(user_row(settings, "alice"))})
    assert client.get(f"/reset/{reset}", headers=HTML).status_code == 200
    with TestClient(app, follow_redirects=False) as bobs:
        log_in(bobs, "bob")
        page = client.get("/settings", headers=HTML).text
        assert 'action="/settings/sign-out-everywhere"' in page
        # CSRF as every form: without the token nothing happens.
        assert client.post("/settings/sign-out-everywhere", headers=HTML).status_code == 403
        assert signed_in(client) and signed_in(other_client)

        response = post(client, "/settings/sign-out-everywhere", page="/settings")
        assert response.status_code == 303 and response.headers["location"] == "/login"
        assert "signed out everywhere" in client.get("/login", headers=HTML).text
        assert not signed_in(client) and not signed_in(other_client)
        assert signed_in(bobs)  # other accounts keep their sessions
    assert user_row(settings, "alice").session_version == 1
    # This browser's old cookie, replayed, is no longer a session (the server refuses it, not just
    # the browser forgetting it); a reset link made before is dead too.
    with TestClient(app, follow_redirects=False, cookies={"ps_session": old_cookie}) as replay:
        assert not signed_in(replay)
    assert client.get(f"/reset/{reset}", headers=HTML).status_code == 400
    log_in(client, "alice")  # logging in again works, on the new session_version
    assert signed_in(client) and not signed_in(other_client)


def test_sign_out_everywhere_needs_a_signed_in_user(client, settings):
    token = csrf(client, "/login")
    response = client.post("/settings/sign-out-everywhere", data={"csrf_token": token}, headers=HTML)
    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")


# --- CSRF and the session cookie -------------------------------------------------------------------


def test_posts_without_or_with_a_wrong_csrf_token_are_refused(client, settings):
    make_user(settings, "alice")
    signup = {"handle": "mallory", "email": "m@example.org", "password": PASSWORD}
    assert client.post("/signup", data=signup, headers=HTML).status_code == 403
    assert client.post("/signup", data={**signup, "csrf_token": "forged"}, headers=HTML).status_code == 403
    assert user_row(settings, "mallory") is None
    login = {"handle": "alice", "password": PASSWORD}
    assert client.post("/login", data=login, headers=HTML).status_code == 403
    assert client.post("/login", data={**login, "csrf_token": "x" * 43}, headers=HTML).status_code == 403
    assert not signed_in(client)

    log_in(client, "alice")
    add = {"address": "new@example.org"}
    assert client.post("/settings/addresses", data=add, headers=HTML).status_code == 403
    assert client.post("/settings/addresses", data={**add, "csrf_token": "nope"}, headers=HTML).status_code == 403
    assert client.post("/logout", data={"csrf_token": "nope"}, headers=HTML).status_code == 403
    assert client.post("/reset", data={"email": "alice@example.org"}, headers=HTML).status_code == 403
    assert addresses_of(settings, "alice") == [] and outbox(settings) == []
    assert signed_in(client)


def test_session_cookie_flags_and_a_new_session_on_login(client, settings):
    make_user(settings, "alice")
    before = csrf(client, "/login")
    response = client.post("/login", data={"handle": "alice", "password": PASSWORD, "csrf_token": before},
                           headers=HTML)
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("ps_session=")
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert "httponly" in flags and "samesite=lax" in flags
    # The session was replaced: the pre-login CSRF token (a fixed session's secret) is no longer valid.
    assert csrf(client, "/settings/forwarding") != before
    stale = client.post("/logout", data={"csrf_token": before}, headers=HTML)
    assert stale.status_code == 403 and signed_in(client)


# --- password reset --------------------------------------------------------------------------------


def test_password_reset_end_to_end_from_the_outbox(client, other_client, settings):
    make_user(settings, "alice", email="alice@example.org")
    log_in(other_client, "alice")  # another device, to be logged out by the reset
    assert signed_in(other_client)

    known = post(client, "/reset", {"email": "Alice@Example.org"}, page="/reset")
    unknown = post(client, "/reset", {"email": "nobody@example.org"}, page="/reset")
    assert known.status_code == unknown.status_code == 200
    assert known.text == unknown.text  # nothing tells whether the account exists
    [mail] = outbox(settings, "reset")
    assert mail.to_addr == "alice@example.org"
    path = link_in(settings, mail, "reset")

    form = client.get(path, headers=HTML)
    assert form.status_code == 200 and "@alice" in form.text
    mismatch = post(client, path, {"password": NEW_PASSWORD, "confirm": "something else"}, page=path)
    assert mismatch.status_code == 400 and "differ" in mismatch.text
    assert post(client, path, {"password": "short", "confirm": "short"}, page=path).status_code == 400
    done = post(client, path, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}, page=path)
    assert done.status_code == 303
    assert signed_in(client)  # the browser that reset is signed in
    assert not signed_in(other_client)  # every other session is gone

    # Usable once: the link died with the old session_version.
    assert client.get(path, headers=HTML).status_code == 400
    again = post(client, path, {"password": "a third password", "confirm": "a third password"}, page="/reset")
    assert again.status_code == 400
    post(client, "/logout", page="/reset")
    old = post(client, "/login", {"handle": "alice", "password": PASSWORD}, page="/login")
    assert old.status_code == 400
    log_in(client, "alice", NEW_PASSWORD)


def test_forged_and_expired_reset_links_are_refused(client, settings, monkeypatch):
    alice = make_user(settings, "alice")
    forged = make_link_token("another-secret", "reset", {"u": alice.id, "sv": alice.session_version})
    other_purpose = make_link_token(settings.secret_key, "verify", {"u": alice.id, "sv": alice.session_version})
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: 1_000_000_000.0)  # issued in 2001
        expired = make_link_token(settings.secret_key, "reset", {"u": alice.id, "sv": alice.session_version})
    for token in (forged, other_purpose, expired, "garbage", expired[:-2] + "xx"):
        assert client.get(f"/reset/{token}", headers=HTML).status_code == 400
        response = post(client, f"/reset/{token}", {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
                        page="/reset")
        assert response.status_code == 400 and "invalid, has expired, or was already used" in response.text
    assert check_password(user_row(settings, "alice").password_hash, PASSWORD)
    # A genuine, fresh token does work: the refusals above are about the tokens.
    stale_account = make_link_token(settings.secret_key, "reset", {"u": alice.id, "sv": alice.session_version,
                                                                   "c": "an account deleted earlier with this id"})
    assert client.get(f"/reset/{stale_account}", headers=HTML).status_code == 400
    good = make_link_token(settings.secret_key, "reset", {"u": alice.id, "sv": alice.session_version,
                                                          "c": account_stamp(alice)})
    assert client.get(f"/reset/{good}", headers=HTML).status_code == 200


def test_reset_mails_are_capped_per_hour(client, settings):
    make_user(settings, "alice")
    for _ in range(5):
        assert post(client, "/reset", {"email": "alice"}, page="/reset").status_code == 200
    assert len(outbox(settings, "reset")) == 3


# --- sender addresses ------------------------------------------------------------------------------


def test_address_verification_and_ownership(client, other_client, settings):
    make_user(settings, "alice")
    make_user(settings, "bob")
    log_in(client, "alice")
    log_in(other_client, "bob")
    added = post(client, "/settings/addresses", {"address": " Shop.Receipts@Example.com "},
                 page="/settings/addresses")
    assert added.status_code == 303
    [row] = addresses_of(settings, "alice")
    assert row.address == "shop.receipts@example.com" and row.verified_at is None
    [mail] = outbox(settings, "verify")
    assert mail.to_addr == "shop.receipts@example.com" and "@alice" in mail.body
    path = link_in(settings, mail, "verify")

    # Bob can neither see, verify, resend nor delete alice's address.
    assert "shop.receipts@example.com" not in other_client.get("/settings/addresses", headers=HTML).text
    assert other_client.get(path, headers=HTML).status_code == 404
    assert post(other_client, path, page="/settings/addresses").status_code == 404
    assert post(other_client, f"/settings/addresses/{row.id}/delete", page="/settings/addresses").status_code == 404
    assert post(other_client, f"/settings/addresses/{row.id}/resend", page="/settings/addresses").status_code == 404
    assert [(r.id, r.verified_at) for r in addresses_of(settings, "alice")] == [(row.id, None)]
    assert len(outbox(settings, "verify")) == 1
    # Anonymous: the link asks to log in first, then comes back to it.
    anonymous = client.__class__(client.app, follow_redirects=False)
    assert anonymous.get(path, headers=HTML).headers["location"] == f"/login?next={path}"

    resent = post(client, f"/settings/addresses/{row.id}/resend", page="/settings/addresses")
    assert resent.status_code == 303 and len(outbox(settings, "verify")) == 2
    assert post(client, path, page=path).status_code == 303
    assert addresses_of(settings, "alice")[0].verified_at is not None
    assert post(client, path, page="/settings/addresses").status_code == 400  # used once

    # A verified address cannot be claimed by another account; an invalid one is explained.
    taken = post(other_client, "/settings/addresses", {"address": "shop.receipts@example.com"},
                 page="/settings/addresses")
    assert taken.status_code == 400 and "verified by another account" in taken.text
    bad = post(client, "/settings/addresses", {"address": "not an address"}, page="/settings/addresses")
    assert bad.status_code == 400 and "is not an email address" in bad.text

    assert post(client, f"/settings/addresses/{row.id}/delete", page="/settings/addresses").status_code == 303
    assert addresses_of(settings, "alice") == []


def test_verification_link_forged_or_for_a_deleted_address(client, settings):
    make_user(settings, "alice")
    log_in(client, "alice")
    post(client, "/settings/addresses", {"address": "a@example.com"}, page="/settings/addresses")
    [row] = addresses_of(settings, "alice")
    forged = make_link_token("another-secret", "verify", {"a": row.id, "t": row.verify_token})
    wrong_token = make_link_token(settings.secret_key, "verify", {"a": row.id, "t": "guessed"})
    for token in (forged, wrong_token, "garbage"):
        assert client.get(f"/verify/{token}", headers=HTML).status_code == 400
        assert post(client, f"/verify/{token}", page="/settings/addresses").status_code == 400
    assert addresses_of(settings, "alice")[0].verified_at is None
    path = link_in(settings, outbox(settings, "verify")[0], "verify")
    post(client, f"/settings/addresses/{row.id}/delete", page="/settings/addresses")
    assert post(client, path, page="/settings/addresses").status_code == 400


# --- forwarding page -------------------------------------------------------------------------------


def test_forwarding_page_shows_the_plus_address_and_instructions(client, settings):
    alice = make_user(settings, "alice")
    anonymous = client.get("/settings/forwarding", headers=HTML)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=/settings/forwarding"
    log_in(client, "alice")
    page = client.get("/settings/forwarding", headers=HTML)
    assert page.status_code == 200
    plus = settings.forwarding_address(alice.forwarding_token)
    assert plus == f"receipts+{alice.forwarding_token}@purchaseshare.test" and plus in page.text
    for words in ("Gmail", "Outlook", "Apple Mail", "Thunderbird", "Forward As", "receipts@purchaseshare.test",
                  'name="viewport"'):
        assert words in page.text
    assert page.headers["cache-control"] == "private, no-store"


def test_forwarding_page_shows_gmails_confirmation_code(client, settings):
    alice = make_user(settings, "alice")
    message = EmailMessage()
    message["From"] = "Gmail Team <forwarding-noreply@google.com>"
    message["To"] = settings.forwarding_address(alice.forwarding_token)
    message["Subject"] = "(#123456789) Gmail Forwarding Confirmation - Receive Mail from alice@gmail.com"
    message["Message-ID"] = "<confirm-1@google.com>"
    message.set_content("alice@gmail.com has requested to automatically forward mail to your email address.\n"
                        "Confirmation code: 123456789\n\nTo allow, click the link below:\n"
                        "https://mail-settings.google.com/mail/vf-%5BANGjdJ_abc%5D-xyz\n")
    receive(settings, alice, message.as_bytes())
    log_in(client, "alice")
    page = client.get("/settings/forwarding", headers=HTML).text
    assert "Gmail asked to confirm forwarding" in page and "123456789" in page
    assert "https://mail-settings.google.com/mail/vf-%5BANGjdJ_abc%5D-xyz" in page
    # Nobody else sees it.
    make_user(settings, "bob")
    log_in(client, "bob")
    assert "123456789" not in client.get("/settings/forwarding", headers=HTML).text


# --- next ------------------------------------------------------------------------------------------


OFF_SITE = ["//evil.example", "https://evil.example", "/\\evil.example", "http:/evil.example",
            "/\t/evil.example", "javascript:alert(1)"]


def test_login_ignores_off_site_next(client, settings):
    make_user(settings, "alice")
    for target in OFF_SITE:
        page = client.get("/login", params={"next": target}, headers=HTML)
        assert "evil.example" not in page.text and "javascript" not in page.text
        response = post(client, "/login", {"handle": "alice", "password": PASSWORD, "next": target},
                        page="/login")
        assert response.status_code == 303 and response.headers["location"] == "/inbox", target


def test_login_follows_a_same_site_next(client, settings):
    make_user(settings, "alice")
    page = client.get("/login", params={"next": "/settings/addresses?tab=1"}, headers=HTML)
    assert 'name="next" value="/settings/addresses?tab=1"' in page.text
    response = post(client, "/login", {"handle": "alice", "password": PASSWORD, "next": "/settings/addresses?tab=1"},
                    page="/login")
    assert response.headers["location"] == "/settings/addresses?tab=1"


@pytest.mark.parametrize(("target", "expected"), [
    ("/u/alice", "/u/alice"), ("/a?b=c#d", "/a?b=c#d"), ("", "/inbox"), (None, "/inbox"),
    ("//evil.example/x", "/inbox"), ("/\\evil.example", "/inbox"), ("https://evil.example/", "/inbox"),
    ("evil.example", "/inbox"), ("/\r\n//evil.example", "/inbox"), ("/ok\\..\\", "/inbox"),
])
def test_safe_next(target, expected):
    assert safe_next(target) == expected
