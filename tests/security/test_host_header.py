"""Issue 11, point 16: the Host header is the client's to choose, so nothing the site sends may be
built from it. `serve` refuses unknown hosts outright; and where no host check runs (the demo, a
TestClient app), redirects are still relative and links come from the configured base URL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.conftest import Site, serve

EVIL = "evil.test"
# Pages, redirects of every kind (trailing slash, login required, static directory, renamed
# handle), feeds and the API: anything that could put a host into a Location or a link.
PATHS = ["/", "/feed", "/feed/", "/login", "/login/", "/signup/", "/inbox", "/settings/", "/static",
         "/u/alice", "/u/alice/", "/u/alice/feed.atom", "/u/alicia", "/api/v1/users/alice",
         "/api/v1/users/alice/purchases/", "//evil.test/", "/healthz"]


def reflected(response) -> bool:
    return EVIL in response.headers.get("location", "") or EVIL in response.text


def test_serve_refuses_a_foreign_host_header(site):
    site.make_user("alice")
    with site.client() as client:
        for path in PATHS:
            response = client.get(path, headers={"host": EVIL, "accept": "text/html"})
            assert response.status_code == 400, path
            assert not reflected(response), path
            with_port = client.get(path, headers={"host": f"{EVIL}:80", "accept": "text/html"})
            assert with_port.status_code == 400 and not reflected(with_port), path
        assert client.get("/healthz").status_code == 200  # its own host (the base URL's) works


@pytest.fixture
def named_site(settings, tmp_path) -> Iterator[Site]:
    yield from serve(settings, tmp_path, env={"PURCHASESHARE_ALLOWED_HOSTS": "shop.example, www.shop.example"})


def test_configured_extra_host_names_are_served(named_site):
    with named_site.client() as client:
        for host in ("shop.example", "www.shop.example", "localhost"):
            assert client.get("/healthz", headers={"host": host}).status_code == 200, host
        assert client.get("/healthz", headers={"host": EVIL}).status_code == 400


def test_without_a_host_check_redirects_are_relative_and_links_use_the_base_url(settings):
    """The app as the demo runs it (no host check): every Location is a path on this site."""
    from fastapi.testclient import TestClient

    from tests.web.conftest import make_user
    from web.app import create_app

    make_user(settings, "alice")
    with TestClient(create_app(settings, run_worker=False), follow_redirects=False) as client:
        check_relative(client, settings)


def check_relative(client, settings) -> None:
    from tests.web.conftest import log_in, post

    for path in PATHS:
        response = client.get(path, headers={"host": EVIL, "accept": "text/html"})
        assert not reflected(response), (path, response.headers.get("location"))
        location = response.headers.get("location")
        if location is not None:
            assert location.startswith("/") and not location.startswith("//"), (path, location)
    log_in(client, "alice")
    assert post(client, "/settings", {"handle": "alicia", "display_name": "", "avatar_url": "", "bio": "",
                                      "raw_retention_days": ""}, page="/settings").status_code == 303
    moved = client.get("/u/alice/", headers={"host": EVIL, "accept": "text/html"})
    assert moved.status_code == 307 and moved.headers["location"] == "/u/alice"
    moved = client.get("/u/alice", headers={"host": EVIL, "accept": "text/html"})
    assert moved.status_code == 302 and moved.headers["location"] == "/u/alicia"
    atom = client.get("/u/alicia/feed.atom", headers={"host": EVIL})
    assert atom.status_code == 200 and EVIL not in atom.text and settings.base_url in atom.text
