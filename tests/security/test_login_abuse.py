"""Issue 11, points 7, 8, 9, 12 and 15, against the real server (SQLite, PostgreSQL):
- wrong passwords from an attacker block the attacker, never the owner on another address;
- X-Forwarded-For cannot pick the counted client address unless a trusted proxy is configured;
- signup answers the same whether or not an email has an account, and is rate limited;
- /settings/delete is no password oracle and is rate limited like login;
- a renamed handle stays its owner's for a while."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlmodel import col, select, update

from purchaseshare.clock import utcnow
from purchaseshare.db import session_scope
from purchaseshare.limits import SIGNUP_RULES
from purchaseshare.models import HandleReservation, LoginAttempt, OutboxMail, User
from tests.security.conftest import PASSWORD, Site, csrf, post_form, serve
from web.security import (
    MAX_FAILURES_PER_ACCOUNT,
    MAX_FAILURES_PER_ADDRESS,
    UNDER_ATTACK,
    UNDER_ATTACK_CLIENT,
    record_login_failure,
)

HTML = {"accept": "text/html"}
GUESS = {"password": "hunter2 hunter2"}


def from_address(site: Site, address: str) -> httpx.Client:
    """A client connecting from another loopback address (127.0.0.0/8 is all this machine's)."""
    return site.client(transport=httpx.HTTPTransport(local_address=address))


def login(client: httpx.Client, handle: str, password: str, headers: dict | None = None) -> int:
    return post_form(client, "/login", {"handle": handle, "password": password}, page="/login",
                     headers=headers).status_code


def attempt_keys(site: Site) -> set[str]:
    with session_scope(site.settings) as db:
        return set(db.exec(select(LoginAttempt.key)).all())


# --- 7. lockout as a weapon -----------------------------------------------------------------------


def test_guessing_blocks_the_guessing_clients_never_the_owner(site):
    """One server for the three ways to guess: one client on one account, many clients on one
    account, one client on many accounts (each with its own account and loopback addresses)."""
    site.make_user("alice")
    with from_address(site, "127.0.0.1") as attacker, from_address(site, "127.0.0.2") as owner:
        answers = [login(attacker, "alice", GUESS["password"]) for _ in range(MAX_FAILURES_PER_ACCOUNT + 10)]
        assert answers == [400] * MAX_FAILURES_PER_ACCOUNT + [429] * 10
        assert login(attacker, "alice", PASSWORD) == 429  # blocked even with the right password
        assert login(attacker, "alice@example.org", GUESS["password"]) == 429  # by email: the same account
        # The owner, on their own address, logs in with the right password, more than once.
        for _ in range(3):
            owner.cookies.clear()
            assert login(owner, "alice", PASSWORD) == 303
        assert owner.get("/settings", headers=HTML).status_code == 200
        # ... and that forgives nothing the attacker did.
        assert login(attacker, "alice", PASSWORD) == 429

    # An account under a distributed attack: each new client gets fewer guesses; the owner is not blocked.
    site.make_user("carol")
    with session_scope(site.settings) as db:  # many addresses already failed (each stopped at its limit)
        for number in range(UNDER_ATTACK):
            record_login_failure(db, "carol", f"198.51.100.{number}")
    with from_address(site, "127.0.0.3") as fresh_attacker, from_address(site, "127.0.0.4") as owner:
        answers = [login(fresh_attacker, "carol", GUESS["password"]) for _ in range(UNDER_ATTACK_CLIENT + 2)]
        assert answers == [400] * UNDER_ATTACK_CLIENT + [429] * 2
        assert login(owner, "carol", "one typo here") == 400  # the owner mistypes once ...
        assert login(owner, "carol", PASSWORD) == 303  # ... and still gets in

    # One client spraying many accounts is blocked on all of them.
    site.make_user("victim")
    with session_scope(site.settings) as db:
        for number in range(MAX_FAILURES_PER_ADDRESS - 1):
            record_login_failure(db, f"user{number}", "127.0.0.5")
    with from_address(site, "127.0.0.5") as sprayer, from_address(site, "127.0.0.6") as owner:
        assert login(sprayer, "nobody", GUESS["password"]) == 400
        assert login(sprayer, "victim", PASSWORD) == 429
        assert login(owner, "victim", PASSWORD) == 303


# --- 8. X-Forwarded-For ---------------------------------------------------------------------------


def rotate(client: httpx.Client, count: int) -> list[int]:
    return [login(client, "alice", GUESS["password"], headers={"x-forwarded-for": f"203.0.113.{number}"})
            for number in range(count)]


def test_x_forwarded_for_is_ignored_by_default(site):
    site.make_user("alice")
    with site.client() as attacker:
        answers = rotate(attacker, MAX_FAILURES_PER_ACCOUNT + 3)
    assert answers == [400] * MAX_FAILURES_PER_ACCOUNT + [429] * 3
    keys = attempt_keys(site)
    assert "ip:127.0.0.1" in keys and not any("203.0.113." in key for key in keys)


@pytest.fixture
def behind_proxy(settings, tmp_path) -> Iterator[Site]:
    """The server behind a reverse proxy on 127.0.0.1, configured as trusted."""
    yield from serve(settings, tmp_path, env={"PURCHASESHARE_TRUSTED_PROXIES": "127.0.0.1"})


def test_x_forwarded_for_is_honoured_from_a_configured_proxy_only(behind_proxy):
    site = behind_proxy
    site.make_user("alice")
    with site.client() as proxy:  # each request from another real client behind the proxy
        assert rotate(proxy, MAX_FAILURES_PER_ACCOUNT + 3) == [400] * (MAX_FAILURES_PER_ACCOUNT + 3)
    keys = attempt_keys(site)
    assert {f"ip:203.0.113.{number}" for number in range(MAX_FAILURES_PER_ACCOUNT + 3)} <= keys
    assert "ip:127.0.0.1" not in keys
    with from_address(site, "127.0.0.2") as not_the_proxy:  # a header from anyone else is ignored
        for _ in range(MAX_FAILURES_PER_ACCOUNT):
            login(not_the_proxy, "alice", GUESS["password"], headers={"x-forwarded-for": "203.0.113.99"})
    assert "ip:127.0.0.2" in attempt_keys(site) and "ip:203.0.113.99" not in attempt_keys(site)


# --- 9. signup: no enumeration, rate limited --------------------------------------------------------


def sign_up(client: httpx.Client, handle: str, email: str) -> httpx.Response:
    return post_form(client, "/signup", {"handle": handle, "display_name": "", "email": email,
                                         "password": PASSWORD}, page="/signup")


SIGNUPS_PER_HOUR = SIGNUP_RULES[0][0]


def test_signup_answers_the_same_for_an_existing_email_mails_its_owner_and_is_rate_limited(site):
    site.make_user("alice", email="alice@example.org")
    with site.client() as taken, site.client() as fresh:
        answers = [sign_up(taken, "newcomer1", "ALICE@example.org"), sign_up(fresh, "newcomer2", "new@example.org")]
        assert [(a.status_code, a.headers.get("location")) for a in answers] == [(303, "/settings/forwarding")] * 2
        pages = [client.get("/settings/forwarding", headers=HTML) for client in (taken, fresh)]
    assert [page.status_code for page in pages] == [200, 200]
    flashes = [re.search(r'class="flash[^"]*"[^>]*>(.*?)<', page.text, re.S).group(1) for page in pages]
    assert flashes[0].replace("newcomer1", "X").replace("alice@example.org", "Y") == \
        flashes[1].replace("newcomer2", "X").replace("new@example.org", "Y")
    with session_scope(site.settings) as db:
        alice = db.exec(select(User).where(User.handle == "alice")).one()
        newcomer = db.exec(select(User).where(User.handle == "newcomer1")).one()
        notice = db.exec(select(OutboxMail).where(OutboxMail.to_addr == "alice@example.org")).one()
    assert alice.email == "alice@example.org" and newcomer.email is None  # the address stays alice's
    assert notice.purpose == "signup-existing" and notice.user_id == alice.id and "@alice" in notice.body
    assert PASSWORD not in notice.body
    with site.client() as owner:
        assert login(owner, "alice@example.org", PASSWORD) == 303  # logging in by email is still alice

    # Rate limited per client (a bot on its own address).
    with from_address(site, "127.0.0.7") as bot:
        answers = [sign_up(bot, f"bot{number}", f"bot{number}@example.org").status_code
                   for number in range(SIGNUPS_PER_HOUR + 2)]
        bot.cookies.clear()  # a new browser session changes nothing
        answers.append(sign_up(bot, "bot-more", "bot-more@example.org").status_code)
    assert answers == [303] * SIGNUPS_PER_HOUR + [429] * 3
    with from_address(site, "127.0.0.2") as someone_else:
        assert sign_up(someone_else, "human", "human@example.org").status_code == 303
    with session_scope(site.settings) as db:
        assert len(db.exec(select(User).where(col(User.handle).startswith("bot"))).all()) == SIGNUPS_PER_HOUR


# --- 12. /settings/delete is no password oracle -------------------------------------------------


def delete(client: httpx.Client, handle: str, password: str) -> httpx.Response:
    return post_form(client, "/settings/delete", {"handle": handle, "password": password}, page="/settings/delete")


def test_settings_delete_reveals_the_password_only_with_the_confirmation_and_is_rate_limited(site):
    site.make_user("bob")
    with site.client() as stolen_cookie:
        site.log_in(stolen_cookie, "bob")
        right, wrong = delete(stolen_cookie, "not-bob", PASSWORD), delete(stolen_cookie, "not-bob", "wrong password!")
        assert right.status_code == wrong.status_code == 400
        assert right.text == wrong.text and "Type your handle" in right.text and "password" not in \
            re.search(r'role="alert".*?</', right.text, re.S).group(0).lower()
        answers = [delete(stolen_cookie, "bob", f"guess number {n}").status_code
                   for n in range(MAX_FAILURES_PER_ACCOUNT + 1)]
        assert answers == [400] * MAX_FAILURES_PER_ACCOUNT + [429]
        assert delete(stolen_cookie, "bob", PASSWORD).status_code == 429  # a found password is no use now
        assert login(stolen_cookie, "bob", PASSWORD) == 429  # the same budget as the login form
    with session_scope(site.settings) as db:
        assert db.exec(select(User).where(User.handle == "bob")).one() is not None
    with from_address(site, "127.0.0.2") as owner:  # the owner elsewhere can still delete
        site.log_in(owner, "bob")
        assert delete(owner, "bob", PASSWORD).status_code == 303
    with session_scope(site.settings) as db:
        assert db.exec(select(User).where(User.handle == "bob")).first() is None


# --- 15. renamed handles ----------------------------------------------------------------------------


def rename(client: httpx.Client, handle: str) -> httpx.Response:
    return post_form(client, "/settings", {"handle": handle, "display_name": "", "avatar_url": "", "bio": "",
                                           "raw_retention_days": ""}, page="/settings")


def test_a_renamed_handle_stays_reserved_for_its_owner_and_redirects(site):
    site.make_user("alice")
    site.make_user("mallory")
    with site.client() as alice, site.client() as mallory, site.client() as visitor:
        site.log_in(alice, "alice")
        site.log_in(mallory, "mallory")
        assert rename(alice, "alicia").status_code == 303
        # Nobody else can take the old handle: not by renaming, not by signing up.
        taken = rename(mallory, "alice")
        assert taken.status_code == 400 and "alice is taken" in taken.text
        with site.client() as newcomer:
            grab = sign_up(newcomer, "alice", "grab@example.org")
            assert grab.status_code == 400 and "taken" in grab.text
        # The old public links lead to the new handle meanwhile (relative redirects).
        for old, new in (("/u/alice", "/u/alicia"), ("/u/ALICE?page=2", "/u/alicia?page=2"),
                         ("/u/alice/feed.atom", "/u/alicia/feed.atom"),
                         ("/api/v1/users/alice", "/api/v1/users/alicia")):
            response = visitor.get(old, headers=HTML)
            assert response.status_code == 302 and response.headers["location"] == new, old
            assert visitor.get(new, headers=HTML).status_code == 200
        assert visitor.get("/u/nobody", headers=HTML).status_code == 404
        # The owner may take it back; and once the reservation ends, it is free for anyone.
        assert rename(alice, "alice").status_code == 303
        assert visitor.get("/u/alice", headers=HTML).status_code == 200
        assert rename(alice, "alicia").status_code == 303
        with session_scope(site.settings) as db:
            db.exec(update(HandleReservation).where(col(HandleReservation.handle) == "alice")
                    .values(expires_at=utcnow() - timedelta(seconds=1)))
            db.commit()
        assert visitor.get("/u/alice", headers=HTML).status_code == 404
        assert rename(mallory, "alice").status_code == 303
        assert visitor.get("/u/alice", headers=HTML).status_code == 200
        assert csrf(mallory, "/settings")  # mallory's session survived the rename
