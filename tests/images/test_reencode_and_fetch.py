"""Issue 13, the worker's half without a database: what a fetched image becomes (re-encoded WebP
in two sizes, upright, without EXIF/GPS, the first frame of an animation), what is refused
(decompression bombs before any pixel is decoded, SVG, bytes that are no image), and the fetch
itself against LOCAL plain-HTTP servers: 127.0.0.2 plays the internet (let through by the
test-only allow-list), 127.0.0.1 the private network no URL or redirect may reach."""

from __future__ import annotations

import io
import random
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import pytest
from PIL import ExifTags, Image

from purchaseshare.config import Settings
from purchaseshare.image_proxy import ImageError
from purchaseshare.images import CARD, MAX_PIXELS, THUMB, ImageStore, content_name, reencode
from purchaseshare.item_images import fetch_image
from tests.images.fakes import picture
from tests.services.servers import free_port, http_servers

OUTSIDE, PRIVATE = "127.0.0.2", "127.0.0.1"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>'


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def jpeg_with_gps(rng: random.Random) -> tuple[bytes, str]:
    """A 64x32 JPEG whose EXIF holds a camera name, GPS coordinates and 'rotate 90°'."""
    camera = f"Cam{rng.randrange(10**6):06d}"
    exif = Image.Exif()
    exif[0x010F] = camera  # Make
    exif[0x0112] = 6  # Orientation: rotate 90° to show
    exif[ExifTags.IFD.GPSInfo] = {1: "N", 2: (float(rng.randrange(90)), 30.0, 12.5), 3: "W", 4: (0.0, 7.0, 39.0)}
    out = io.BytesIO()
    Image.new("RGB", (64, 32), (rng.randrange(256), 90, 30)).save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue(), camera


def animated_gif(first: tuple[int, int, int], second: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    frames = [Image.new("RGB", (20, 20), first), Image.new("RGB", (20, 20), second)]
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# --- re-encoding ---------------------------------------------------------------------------------


def test_a_jpeg_comes_out_upright_as_webp_without_its_exif_gps():
    rng = random.Random(13)
    source, camera = jpeg_with_gps(rng)
    assert opened(source).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the input really has GPS
    variants = reencode(source)
    assert set(variants) == {CARD, THUMB}
    for data in variants.values():
        image = opened(data)
        assert image.format == "WEBP" and image.size == (32, 64)  # turned by its orientation, never enlarged
        assert not image.getexif() and not image.info.get("exif") and not image.info.get("icc_profile")
        assert camera.encode() not in data and b"GPS" not in data and b"Exif" not in data


def test_large_images_are_shrunk_into_the_two_boxes_keeping_their_shape():
    variants = reencode(picture((20, 120, 220), size=(1200, 600), kind="PNG"))
    assert opened(variants[CARD]).size == (480, 240) and opened(variants[THUMB]).size == (160, 80)
    transparent = io.BytesIO()
    Image.new("RGBA", (10, 10), (255, 0, 0, 0)).save(transparent, format="PNG")
    assert opened(reencode(transparent.getvalue())[CARD]).mode == "RGBA"  # transparency is kept


def test_an_animated_gif_gives_its_first_frame():
    image = opened(reencode(animated_gif((250, 0, 0), (0, 0, 250)))[CARD]).convert("RGB")
    red, _green, blue = image.getpixel((10, 10))
    assert red > 200 and blue < 50
    assert getattr(image, "n_frames", 1) == 1


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (6_000, 6_000), (30_000, 2)])
def test_decompression_bombs_are_refused_before_any_pixel_is_decoded(width, height):
    bomb = png_claiming(width, height)
    assert len(bomb) < 200
    started = time.monotonic()
    with pytest.raises(ImageError):
        reencode(bomb)
    assert time.monotonic() - started < 0.5  # 36 million pixels decoded would take far longer
    assert width * height > MAX_PIXELS or max(width, height) > 20_000


@pytest.mark.parametrize("data", [SVG, b"<?xml version='1.0'?>" + SVG, b"GIF89a" + b"\0" * 20, b"",
                                  picture(kind="PNG")[:40], b"%PDF-1.4 hello", picture(kind="BMP")])
def test_what_is_no_png_jpeg_gif_or_webp_is_refused(data):
    with pytest.raises(ImageError):
        reencode(data)


def test_the_store_is_content_addressed_and_accepts_only_its_own_names(tmp_path):
    store = ImageStore(tmp_path / "media")
    variants = reencode(picture((1, 2, 3)))
    name = content_name(variants)
    assert content_name(reencode(picture((1, 2, 3)))) == name  # the same picture: the same name
    assert content_name(reencode(picture((200, 100, 50)))) != name
    store.put(name, variants)
    assert store.has(name) and store.names() == {name}
    path = store.path(f"{name}-{THUMB}.webp")
    assert path is not None and path.read_bytes() == variants[THUMB]
    for bad in (f"{name}-999.webp", f"{name.upper()}-480.webp", f"../{name}-480.webp", f"{name}-480.png",
                "x" * 32 + "-480.webp", f"{name}-480.webp/"):
        assert store.path(bad) is None, bad
    store.remove(name)
    assert not store.has(name) and store.names() == set()
    store.remove("../../etc")  # never a path outside the store


# --- fetching (plain HTTP, local servers) ----------------------------------------------------------


@dataclass
class Remote:
    port: int
    bodies: dict[str, tuple[int, str, bytes, dict[str, str]]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def url(self, path: str, host: str = OUTSIDE) -> str:
        return f"http://{host}:{self.port}{path}"

    def hits(self, path: str, host: str | None = None) -> int:
        return sum(1 for h, p in self.requests if p == path and host in (None, h))


def _handler(remote: Remote) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args) -> None:
            pass

        def do_GET(self) -> None:
            remote.requests.append((self.server.server_address[0], self.path))
            status, kind, body, headers = remote.bodies.get(self.path, (404, "text/plain", b"no", {}))
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture(scope="module")
def remote() -> Iterator[Remote]:
    remote = Remote(port=free_port())
    with http_servers((OUTSIDE, PRIVATE), remote.port, _handler(remote)):
        yield remote


@pytest.fixture
def allowed(tmp_path) -> Settings:
    """Settings whose fetcher may reach OUTSIDE only (as a public address would be)."""
    return Settings(PURCHASESHARE_DATA_DIR=tmp_path, PURCHASESHARE_IMAGE_PROXY_ALLOW=f"{OUTSIDE}/32")


def test_an_image_is_fetched_over_http_and_re_encoded(remote, allowed):
    source, camera = jpeg_with_gps(random.Random(7))
    remote.bodies["/photo.jpg"] = (200, "image/jpeg", source, {})
    remote.bodies["/moved.jpg"] = (301, "text/plain", b"", {"location": "/photo.jpg"})
    for path in ("/photo.jpg", "/moved.jpg"):  # a redirect to a public address is followed
        variants = fetch_image(remote.url(path), allowed)
        assert opened(variants[CARD]).format == "WEBP" and camera.encode() not in variants[CARD]


def test_a_redirect_to_the_private_network_is_refused_without_a_request_there(remote, allowed):
    remote.bodies["/pixel.png"] = (200, "image/png", picture(), {})
    remote.bodies["/to-private.png"] = (302, "text/plain", b"", {"location": remote.url("/pixel.png", PRIVATE)})
    remote.bodies["/to-localhost.png"] = (302, "text/plain", b"",
                                          {"location": f"http://localhost:{remote.port}/pixel.png"})
    for url in (remote.url("/to-private.png"), remote.url("/to-localhost.png"), remote.url("/pixel.png", PRIVATE)):
        with pytest.raises(ImageError, match="non-public"):
            fetch_image(url, allowed)
    assert remote.hits("/pixel.png", PRIVATE) == 0
    # Production's policy lets no loopback address through at all.
    with pytest.raises(ImageError, match="non-public"):
        fetch_image(remote.url("/pixel.png"), Settings(PURCHASESHARE_IMAGE_PROXY_ALLOW=""))


@pytest.mark.parametrize(("kind", "body"), [("image/svg+xml", SVG), ("image/png", SVG), ("text/html", picture()),
                                             ("image/png", png_claiming(100_000, 100_000))])
def test_svg_html_and_bombs_from_the_network_are_refused(remote, allowed, kind, body):
    path = f"/refused-{random.randrange(10**9)}"
    remote.bodies[path] = (200, kind, body, {})
    with pytest.raises(ImageError):
        fetch_image(remote.url(path), allowed)


def test_only_http_and_https_urls_without_user_info(allowed):
    for url in ("file:///etc/passwd", "ftp://127.0.0.2/x.png", f"http://user:pw@{OUTSIDE}/x.png", "data:image/png,x"):
        with pytest.raises(ImageError, match="only plain"):
            fetch_image(url, allowed)
