"""Pictures made on the spot (Pillow), and a fetcher that returns them instead of the network:
for tests that need an item's image STORED (the worker's fetch has its own tests, against local
HTTP servers, in tests/images/test_stored_images.py)."""

from __future__ import annotations

import hashlib
import io

from PIL import Image
from sqlmodel import select

from purchaseshare.config import Settings
from purchaseshare.db import session_scope
from purchaseshare.images import media_path, reencode
from purchaseshare.item_images import sync_purchase
from purchaseshare.models import PurchaseItem


def picture(color: tuple[int, int, int] = (200, 40, 40), size: tuple[int, int] = (60, 40), kind: str = "PNG",
            **save: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=kind, **save)
    return out.getvalue()


def fake_fetcher(url: str, settings: Settings) -> dict[int, bytes]:
    """A picture of a colour drawn from the URL: two URLs, two different stored files."""
    digest = hashlib.sha256(url.encode()).digest()
    return reencode(picture((digest[0], digest[1], digest[2])))


def store_images(settings: Settings, purchase_id: int) -> dict[int, str]:
    """Run the worker's sync for the purchase with `fake_fetcher`; {position: our image path}."""
    sync_purchase(settings, purchase_id, fetcher=fake_fetcher)
    with session_scope(settings) as session:
        rows = session.exec(select(PurchaseItem.position, PurchaseItem.image_file)
                            .where(PurchaseItem.purchase_id == purchase_id)).all()
    return {position: media_path(name) for position, name in rows if name}
