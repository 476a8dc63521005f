"""The demo tells the truth (issue 13): it mails nothing, so after sign-up it says so and puts the
verification link on the page; its forwarding page points to "Upload .eml" and the drop folder,
not to an address nothing can reach; its home page links to the example profile. A real site
(no demo marker, or SMTP_URL set) does none of that. SQLite and PostgreSQL, in-process app."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from purchaseshare.db import session_scope
from purchaseshare.demo import SEEDED_MARKER, drop_folder, is_demo
from purchaseshare.models import OutboxMail, SenderAddress, User
from tests.web.conftest import PASSWORD, post

HTML = {"accept": "text/html"}
VERIFY = re.compile(r'href="(/verify/[^"]+)" id="demo-verify-link"')


@pytest.fixture
def demo(settings):
    """The data dir as `purchaseshare demo` leaves it (seeded marker), no SMTP_URL."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / SEEDED_MARKER).write_text("seeded\n", encoding="utf-8")
    assert is_demo(settings)
    return settings


def sign_up(client, handle: str, email: str):
    response = post(client, "/signup", {"handle": handle, "display_name": handle.title(), "email": email,
                                        "password": PASSWORD}, page="/signup")
    assert response.status_code == 303 and response.headers["location"] == "/settings/forwarding"
    return client.get("/settings/forwarding", headers=HTML).text


def forwarding_address(settings, handle: str) -> str:
    with session_scope(settings) as session:
        user = session.exec(select(User).where(User.handle == handle)).one()
        return settings.forwarding_address(user.forwarding_token)


def test_demo_signup_shows_the_link_and_it_verifies(demo, client):
    page = sign_up(client, "nora", "nora@example.net")
    assert "We sent a link" not in page
    assert "This demo sends no mail, so no link went to nora@example.net" in page
    found = VERIFY.search(page)
    assert found, page[:3000]
    with session_scope(demo) as session:  # the mail is still queued, as on a real site
        assert session.exec(select(OutboxMail).where(OutboxMail.purpose == "verify")).one().to_addr == "nora@example.net"
    path = found.group(1)
    assert client.get(path, headers=HTML).status_code == 200
    assert post(client, path, page=path).status_code == 303
    with session_scope(demo) as session:
        assert session.exec(select(SenderAddress)).one().verified_at is not None
    assert "demo-verify-link" not in client.get("/settings/forwarding", headers=HTML).text  # shown once

    # An address added later in the demo gets its link on the page too.
    response = post(client, "/settings/addresses", {"address": "nora@work.example"}, page="/settings/addresses")
    assert response.status_code == 303
    page = client.get(response.headers["location"], headers=HTML).text
    assert "no link went to nora@work.example" in page and VERIFY.search(page)


def test_demo_forwarding_points_to_upload_and_the_drop_folder(demo, client):
    page = sign_up(client, "nora", "nora@example.net")
    assert 'href="/upload"' in page and "Upload .eml" in page
    assert str(drop_folder(demo)) in page
    assert forwarding_address(demo, "nora") not in page  # nothing can reach it in the demo


def test_demo_home_links_the_example_profile_and_says_what_it_does(demo, client):
    page = client.get("/", headers=HTML).text
    assert 'href="/u/demo" id="example-profile"' in page
    assert "order confirmations" in page and "approve" in page


def test_a_real_site_mails_the_link_and_shows_the_forwarding_address(settings, client):
    assert not is_demo(settings)
    page = sign_up(client, "nora", "nora@example.net")
    assert "We sent a link to nora@example.net" in page and "demo" not in page.lower()
    assert not VERIFY.search(page) and "/verify/" not in page
    assert forwarding_address(settings, "nora") in page and str(drop_folder(settings)) not in page
    assert "example-profile" not in client.get("/", headers=HTML).text


def test_a_seeded_data_dir_with_smtp_is_not_the_demo(demo, monkeypatch):
    monkeypatch.setattr(demo, "smtp_url", "smtp://mail.example.net:25")
    assert not is_demo(demo)
