"""Images on our pages. Product images of SHARED items are stored by us (purchaseshare/images.py)
and served here from /media/<name>-<size>.webp: content-addressed, so cached for a year as
immutable. `image_src` is the template helper: a stored path stays ours (a size picks the
thumbnail); any other URL - only the owner's own private pages still show a merchant's image,
before the item is shared - goes through /img/<signed token>, the server-side proxy
(purchaseshare/image_proxy.py). Pages never point at a remote image."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse
from jinja2 import pass_context
from starlette.concurrency import run_in_threadpool

from purchaseshare.image_proxy import DiskCache, ImageError, fetch, image_path, policy_from, url_from_token
from purchaseshare.images import MEDIA_PREFIX, resized_path
from purchaseshare.item_images import store_for
from web.deps import SettingsDep, not_found

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)

# A stored file never changes under its name; it is an image, no document.
STORED_HEADERS = {"cache-control": "public, max-age=31536000, immutable",
                  "content-security-policy": "default-src 'none'", "x-content-type-options": "nosniff",
                  "content-disposition": "inline"}


def image_key(context: Any) -> str:
    """The signing key in a template: a memoized card gets it as `image_key`, a page via its request."""
    return context.get("image_key") or context["request"].app.state.settings.secret_key


@pass_context
def image_src(context: Any, url: str, size: int | None = None) -> str:
    """The src for an image: our stored path as it is (or its `size`), anything else via /img."""
    if url.startswith(MEDIA_PREFIX):
        return resized_path(url, size) if size else url
    return image_path(image_key(context), url)


@router.get("/media/{file}")
async def stored_image(file: str, settings: SettingsDep) -> Response:
    path = store_for(settings).path(file)  # None for any name we never make (no path tricks)
    if path is None or not await run_in_threadpool(path.is_file):
        raise not_found()
    return FileResponse(path, media_type="image/webp", headers=STORED_HEADERS)


@router.get("/img/{token}")
async def image(token: str, settings: SettingsDep) -> Response:
    url = url_from_token(settings.secret_key, token)
    if url is None:
        raise not_found()  # not signed by us: no open proxy
    cache = DiskCache(settings.data_dir / "image-cache")
    found = await run_in_threadpool(cache.get, url)
    if found is None:
        try:
            found = await run_in_threadpool(fetch, url, policy_from(settings.image_proxy_allow,
                                                                    settings.image_proxy_ca_file))
        except ImageError as exc:
            log.info("image proxy refused an image from %s: %s", urlsplit(url).hostname, exc)  # no path: it may be personal
            raise not_found() from None
        await run_in_threadpool(cache.put, url, found[0])
    data, kind = found
    # The sniffed type only; the image is no document: a CSP of its own, and no sniffing.
    return Response(data, media_type=kind, headers={
        "cache-control": "public, max-age=86400", "content-security-policy": "default-src 'none'",
        "x-content-type-options": "nosniff", "content-disposition": "inline"})
