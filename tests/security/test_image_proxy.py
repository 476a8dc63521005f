"""Point 19 (images): product images never reach visitors from a merchant's server. Shared items'
images are stored by us (issue 13: the worker fetches them once; tests/images and
tests/web/test_stored_images.py); what is left of /img/<signed token> serves the owner's own
private pages. Both fetch on the server (https, bounded size and time, real PNG/JPEG/GIF/WebP only, never a private address,
redirects included), so a tracking pixel in an email never sees a visitor. Unsigned tokens: 404
(no open proxy). The remote servers here are local HTTPS servers on 127.0.0.2 ("the internet",
let through by the test-only PURCHASESHARE_IMAGE_PROXY_ALLOW) and 127.0.0.1 (the private network
the proxy must never reach)."""

from __future__ import annotations

import re
import ssl
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from purchaseshare.image_proxy import DiskCache, ImageError, fetch, image_path, policy_from
from tests.security.conftest import post_form, serve, share_purchase
from tests.services.servers import free_port, http_servers

OUTSIDE, PRIVATE = "127.0.0.2", "127.0.0.1"
HUGE = 6 * 2**20


def png() -> bytes:
    """A real 1x1 PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0\xff\0\0")) + chunk(b"IEND", b""))


PNG = png()


@dataclass
class Remote:
    """Two HTTPS servers (OUTSIDE and PRIVATE, one port) and every request they got."""

    port: int
    ca_file: str
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def url(self, path: str, host: str = OUTSIDE) -> str:
        return f"https://{host}:{self.port}{path}"

    def hits(self, path: str, host: str | None = None) -> int:
        return sum(1 for h, p, _ in self.requests if p == path and host in (None, h))


def _handler(remote: Remote) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args) -> None:
            pass

        def send(self, status: int, kind: str, body: bytes, **headers: str) -> None:
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            remote.requests.append((self.server.server_address[0], self.path, dict(self.headers.items())))
            path = self.path
            if path == "/pixel.png":
                self.send(200, "image/png", PNG)
            elif path == "/html-as-image.png":  # says image, is HTML
                self.send(200, "image/png", b"<!doctype html><script>alert(1)</script>")
            elif path == "/png-as-html":  # is an image, says HTML
                self.send(200, "text/html", PNG)
            elif path == "/logo.svg":
                self.send(200, "image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
            elif path == "/huge.png":
                self.send(200, "image/png", PNG + b"\0" * HUGE)
            elif path == "/huge-unannounced.png":  # no content-length: the size is counted while reading
                self.send_response(200)
                self.send_header("content-type", "image/png")
                self.send_header("connection", "close")
                self.end_headers()
                self.wfile.write(PNG)
                for _ in range(HUGE // 2**16):
                    self.wfile.write(b"\0" * 2**16)
            elif path == "/to-private.png":
                self.send(302, "text/plain", b"", location=remote.url("/pixel.png", PRIVATE))
            elif path == "/to-outside.png":
                self.send(302, "text/plain", b"", location="/pixel.png")
            else:
                self.send(404, "text/plain", b"no")

    return Handler


@pytest.fixture(scope="module")
def remote(tmp_path_factory) -> Iterator[Remote]:
    base = tmp_path_factory.mktemp("remote")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(base / "key.pem"), "-out", str(base / "cert.pem"), "-subj", "/CN=images.test",
                    "-addext", f"subjectAltName=IP:{OUTSIDE},IP:{PRIVATE}"], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(base / "cert.pem", base / "key.pem")
    remote = Remote(port=free_port(), ca_file=str(base / "cert.pem"))
    with http_servers((OUTSIDE, PRIVATE), remote.port, _handler(remote), tls=context):
        yield remote


@pytest.fixture
def policy(remote):
    return policy_from(f"{OUTSIDE}/32", remote.ca_file)


# --- the fetcher ---------------------------------------------------------------------------------


def test_a_real_png_is_fetched_without_anything_of_the_visitor(remote, policy):
    assert fetch(remote.url("/pixel.png"), policy) == (PNG, "image/png")
    assert fetch(remote.url("/to-outside.png"), policy) == (PNG, "image/png")  # a public redirect is fine
    _, _, headers = remote.requests[-1]
    assert not {name.lower() for name in headers} & {"cookie", "authorization", "referer"}


@pytest.mark.parametrize("path", ["/html-as-image.png", "/png-as-html", "/logo.svg", "/huge.png",
                                  "/huge-unannounced.png", "/missing.png"])
def test_what_is_no_small_raster_image_is_refused(remote, policy, path):
    with pytest.raises(ImageError):
        fetch(remote.url(path), policy)


def test_private_addresses_are_never_reached_directly_by_name_or_by_redirect(remote, policy):
    before = remote.hits("/pixel.png", PRIVATE)
    for url in (remote.url("/pixel.png", PRIVATE), f"https://localhost:{remote.port}/pixel.png",
                remote.url("/to-private.png")):
        with pytest.raises(ImageError, match="non-public"):
            fetch(url, policy)
    assert remote.hits("/pixel.png", PRIVATE) == before  # not one request got there
    # The default policy (production) blocks loopback outright: 127.0.0.2 too.
    with pytest.raises(ImageError, match="non-public"):
        fetch(remote.url("/pixel.png"), policy_from("", remote.ca_file))
    for address in ("10.0.0.1", "192.168.1.1", "169.254.169.254", "::1", "::ffff:127.0.0.1", "fe80::1", "100.64.0.1"):
        assert not policy_from("", None).permits(address), address
    assert policy_from("", None).permits("93.184.216.34")


def test_only_https_without_user_info(remote, policy):
    for url in (f"http://{OUTSIDE}:{remote.port}/pixel.png", f"https://user:pw@{OUTSIDE}:{remote.port}/pixel.png",
                "file:///etc/passwd"):
        with pytest.raises(ImageError, match="https"):
            fetch(url, policy)


def test_the_disk_cache_stays_under_its_bound(tmp_path):
    cache = DiskCache(tmp_path / "cache", max_bytes=3 * len(PNG))
    for n in range(10):
        cache.put(f"https://x.test/{n}.png", PNG)
    assert sum(path.stat().st_size for path in (tmp_path / "cache").iterdir()) <= 3 * len(PNG)
    assert cache.get("https://x.test/9.png") == (PNG, "image/png")


# --- through the real server ---------------------------------------------------------------------


@pytest.fixture
def proxied_site(settings, tmp_path: Path, remote):
    yield from serve(settings, tmp_path, env={"PURCHASESHARE_IMAGE_PROXY_ALLOW": f"{OUTSIDE}/32",
                                              "PURCHASESHARE_IMAGE_PROXY_CAFILE": remote.ca_file})


def share_with_image(site, image: str) -> str:
    return share_purchase(site.settings, site.make_user("owner"), image=image)


def _purchase_id(site, path: str) -> int:
    from sqlmodel import select

    from purchaseshare.db import session_scope
    from purchaseshare.models import Purchase

    with session_scope(site.settings) as session:
        return session.exec(select(Purchase.id).where(Purchase.public_id == path.rsplit("/", 1)[-1])).one()


def _stored_file(site, purchase_id: int, timeout: float = 20.0) -> str | None:
    """The item's stored image name, once the server's in-process worker has written it."""
    from sqlmodel import select

    from purchaseshare.db import session_scope
    from purchaseshare.models import PurchaseItem

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(site.settings) as session:
            item = session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == purchase_id)).one()
            if item.image_file or item.image_failed_at:
                return item.image_file
        time.sleep(0.1)
    return None


def test_shared_images_are_fetched_once_by_the_worker_and_served_from_our_origin(proxied_site, remote):
    """Issue 13: approving queues the fetch; the real server's worker stores a re-encoded copy;
    visitors' pages, feed and API name only /media on our origin; views never reach the merchant."""
    site = proxied_site
    pixel = remote.url("/pixel.png")
    path = share_with_image(site, pixel)
    purchase_id = _purchase_id(site, path)
    before = remote.hits("/pixel.png", OUTSIDE)
    with site.client() as owner:
        site.log_in(owner, "owner")
        assert post_form(owner, f"/purchases/{purchase_id}/approve", page=f"/purchases/{purchase_id}").status_code == 303
    name = _stored_file(site, purchase_id)
    assert name, site.server_log()[-2000:]
    assert remote.hits("/pixel.png", OUTSIDE) == before + 1
    site.make_user("visitor")
    with site.client() as visitor:
        site.log_in(visitor, "visitor")
        for page in (path, "/u/owner", "/u/owner/feed.atom", f"/api/v1/users/owner/purchases/{path.rsplit('/', 1)[-1]}"):
            text = visitor.get(page, headers={"accept": "text/html"}).text
            assert OUTSIDE not in text and "/img/" not in text, page  # the visitor's browser is never sent there
            assert f"/media/{name}-480.webp" in text, page
        answer = visitor.get(path, headers={"accept": "text/html"})
        [src] = re.findall(r'<img src="(/media/[^"]+)"', answer.text)
        image = visitor.get(src)
        assert image.status_code == 200 and image.content.startswith(b"RIFF") and image.content[8:12] == b"WEBP"
        assert image.headers["content-type"] == "image/webp" and "immutable" in image.headers["cache-control"]
    assert remote.hits("/pixel.png", OUTSIDE) == before + 1  # views fetch nothing
    assert remote.hits("/pixel.png", PRIVATE) == 0


def test_the_proxy_is_left_for_the_owner_s_own_private_pages(proxied_site, remote):
    """Before an item is shared, only its owner sees its image: through the signed proxy still."""
    site = proxied_site
    pixel = remote.url("/pixel.png")
    path = share_with_image(site, pixel)
    purchase_id = _purchase_id(site, path)
    with site.client() as owner:
        site.log_in(owner, "owner")  # the owner has a session cookie: it must not travel on
        page = owner.get(f"/purchases/{purchase_id}", headers={"accept": "text/html"}).text
        # (its URL is in the correction form, but no <img> loads it)
        assert not re.search(r'<img[^>]+src="[a-z]+:', page) and image_path(site.settings.secret_key, pixel) in page
        [src] = set(re.findall(r'<img src="(/img/[^"]+)"', page))
        before = remote.hits("/pixel.png", OUTSIDE)
        image = owner.get(src)
        assert image.status_code == 200 and image.content == PNG
        assert image.headers["content-type"] == "image/png" and image.headers["x-content-type-options"] == "nosniff"
        _, _, headers = remote.requests[-1]
        assert "cookie" not in {name.lower() for name in headers}
        assert owner.get(src).content == PNG  # from the disk cache:
        assert remote.hits("/pixel.png", OUTSIDE) == before + 1

        # No open proxy: a token not signed with this site's key, or no token, is a 404, with no fetch.
        for forged in (image_path("another-key", remote.url("/pixel.png")), "/img/" + "A" * 40, "/img/x.y"):
            assert owner.get(forged).status_code == 404, forged
        # Signed but bad: HTML posing as an image, too big, a redirect into the private network.
        for bad in ("/html-as-image.png", "/huge.png", "/to-private.png"):
            assert owner.get(image_path(site.settings.secret_key, remote.url(bad))).status_code == 404, bad
        assert remote.hits("/pixel.png", PRIVATE) == 0
