"""README screenshots: seeds a throwaway `purchaseshare demo` data dir (the sample emails through the
real queue), serves the app on a free loopback port, and saves PNGs of the main pages with
Debian's Chromium driven by Playwright.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--chromium /usr/bin/chromium]

Product images live on merchants' CDNs, which this offline machine cannot reach: the worker that
stores a shared item's picture (purchaseshare/item_images.py) is given neutral picture tiles (a
tint per image) instead, and the owner's /img proxy answers are replaced the same way, so the pages
look as they do online, minus the photos. Items without a picture show the page's own placeholder
(the merchant's initial), as they do online.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.services.servers import free_port, wait_for_port  # noqa: E402  (after the path is set)

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
PLACEHOLDER = ('<svg xmlns="http://www.w3.org/2000/svg" width="240" height="240" viewBox="0 0 120 120">'
               '<rect width="120" height="120" fill="hsl({hue} 35% 92%)"/>'
               '<path d="M28 86l22-28 16 19 10-12 16 21z" fill="hsl({hue} 25% 72%)"/>'
               '<circle cx="80" cy="40" r="9" fill="hsl({hue} 25% 72%)"/></svg>')


def picture_tile(url: str) -> bytes:
    """A stand-in picture, tinted by its URL: different products look different."""
    return PLACEHOLDER.format(hue=zlib.crc32(url.encode()) % 360).encode()


def tile_fetcher(url: str, settings) -> dict[int, bytes]:
    """The worker's fetch, offline: a tinted raster tile re-encoded like a fetched picture."""
    import colorsys
    import io

    from PIL import Image, ImageDraw

    from purchaseshare.images import reencode

    hue = zlib.crc32(url.encode()) % 360 / 360
    light, shade = ([round(c * 255) for c in colorsys.hls_to_rgb(hue, lum, 0.35)] for lum in (0.92, 0.72))
    tile = Image.new("RGB", (240, 240), tuple(light))
    draw = ImageDraw.Draw(tile)
    draw.polygon([(56, 172), (100, 116), (132, 154), (152, 130), (184, 172)], fill=tuple(shade))
    draw.ellipse([(142, 62), (178, 98)], fill=tuple(shade))
    out = io.BytesIO()
    tile.save(out, format="PNG")
    return reencode(out.getvalue())


def store_shared_images(settings) -> None:
    """What the worker does for each shared purchase, with the offline tiles."""
    from sqlmodel import col, select, update

    from purchaseshare.db import session_scope
    from purchaseshare.item_images import sync_purchase
    from purchaseshare.models import Purchase, PurchaseItem

    with session_scope(settings) as session:
        ids = session.exec(select(Purchase.id).where(col(Purchase.published_at).is_not(None))).all()
        # The seeding's own worker found no network: forget those failures, fetch the tiles instead.
        session.exec(update(PurchaseItem).where(col(PurchaseItem.image_failed_at).is_not(None))
                     .values(image_from=None, image_failed_at=None))
        session.commit()
    for purchase_id in ids:
        sync_purchase(settings, purchase_id, fetcher=tile_fetcher)


def pick_pages(settings) -> dict[str, str]:
    """Paths worth showing in the seeded data: a shared purchase with likes and a comment, and a
    private one in the inbox with several items."""
    from sqlalchemy import func
    from sqlmodel import col, select

    from purchaseshare.db import session_scope
    from purchaseshare.models import Comment, Purchase, PurchaseItem, User
    from purchaseshare.public import published_filter

    with session_scope(settings) as session:
        demo = session.exec(select(User).where(User.handle == "demo")).one()
        commented = session.exec(select(Purchase).join(Comment, col(Comment.purchase_id) == col(Purchase.id))
                                 .where(Purchase.user_id == demo.id, published_filter())).first()
        shared = commented or session.exec(select(Purchase).where(Purchase.user_id == demo.id,
                                                                  published_filter())).first()
        counts = (select(Purchase.id, func.count(col(PurchaseItem.id)).label("n"))
                  .join(PurchaseItem, col(PurchaseItem.purchase_id) == col(Purchase.id))
                  .where(Purchase.user_id == demo.id, Purchase.review == "new")
                  .group_by(col(Purchase.id)).order_by(func.count(col(PurchaseItem.id)).desc(), col(Purchase.id)))
        private = session.exec(counts).first()
        if shared is None or private is None:
            raise SystemExit("the demo data has no shared or no private purchase to show")
        source = session.get(Purchase, private[0]).source_raw_id
        return {"shared": f"/u/demo/p/{shared.public_id}", "private": f"/purchases/{private[0]}",
                "teach": f"/emails/{source}/teach"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="purchaseshare-shots-") as data_dir:
        from purchaseshare.demo import prepare_environment, seed

        settings = prepare_environment(Path(data_dir), base_url=base)  # before the broker is imported
        print("seeding the demo data (the sample emails go through the queue)...", flush=True)
        info = seed(settings)
        store_shared_images(settings)

        import uvicorn

        from web.app import create_app
        from workers.broker import stop_in_process_worker

        server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            wait_for_port(port)
            written = shoot(base, info.password, pick_pages(settings), args.out, args.chromium)
        finally:
            server.should_exit = True
            thread.join(15)
            stop_in_process_worker()
    for path in written:
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


def shoot(base: str, password: str, paths: dict[str, str], out: Path, chromium: str) -> list[Path]:
    from playwright.sync_api import Page, Route, sync_playwright

    def offline_images(route: Route) -> None:
        if route.request.resource_type == "image":
            route.fulfill(status=200, content_type="image/svg+xml", body=picture_tile(route.request.url))
        else:
            route.abort()

    written: list[Path] = []

    def save(page: Page, name: str, path: str, full_page: bool = False) -> None:
        response = page.goto(path)
        if response is None or response.status != 200:
            raise SystemExit(f"{path}: HTTP {response.status if response else '?'}")
        page.wait_for_load_state("load")
        page.evaluate("document.fonts.ready")
        target = out / f"{name}.png"
        page.screenshot(path=str(target), full_page=full_page)
        written.append(target)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium,
                                             args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            for label, viewport, scale in (("desktop", DESKTOP, 1), ("phone", PHONE, 2)):
                context = browser.new_context(base_url=base, viewport=viewport, device_scale_factor=scale,
                                              is_mobile=label == "phone", has_touch=label == "phone")
                context.route(lambda url: not url.startswith(base) or url.startswith(f"{base}/img/"), offline_images)
                page = context.new_page()
                if label == "desktop":  # as a visitor sees them: the pitch, and a purchase with its comments
                    save(page, "home", "/")
                    save(page, "purchase", paths["shared"], full_page=True)
                page.goto("/login")
                page.get_by_label("Handle or email address").fill("demo")
                page.get_by_label("Password").fill(password)
                page.get_by_role("button", name="Log in").click()
                page.wait_for_url(f"{base}/inbox")
                if label == "desktop":
                    save(page, "profile", "/u/demo")
                    save(page, "inbox", "/inbox")
                    save(page, "review", paths["private"])
                    save(page, "feed", "/feed")
                    save(page, "forwarding", "/settings/forwarding")
                    save(page, "notifications", "/notifications")
                    save(page, "teach", paths["teach"])
                else:
                    save(page, "phone-profile", "/u/demo")
                    save(page, "phone-inbox", "/inbox")
                context.close()  # also ends the feed's event stream
        finally:
            browser.close()
    return written


if __name__ == "__main__":
    raise SystemExit(main())
