"""Product images stored by us (issue 13): fetched ONCE by a worker when an item is shared,
decoded and re-encoded with Pillow, written under the data dir, and served from our own origin
(web/images.py, /media/<name>). A visitor's browser never contacts a merchant's server, and what
it gets are pixels we drew ourselves: no EXIF (GPS, camera serials), no ICC or XMP blocks, no
trailing bytes, no second frame, no script.

Decoding is where an image attacks the decoder, so: only PNG, JPEG, GIF and WebP are opened (no
SVG: Pillow has no SVG reader, and the fetcher refuses what is not one of those four by its bytes);
the pixel count is read from the header and refused above MAX_PIXELS BEFORE any pixel is decoded
(a 1 kB PNG can claim 100 000 x 100 000 pixels: a "decompression bomb"); an animated GIF or WebP
gives its first frame only.

Files are content-addressed: <sha256 of the card-size file, 32 hex>-<size>.webp. The same picture
shared by two items is one file, a name never changes meaning (so it is cached "immutable"), and a
file is removed once no row names it any more (purchaseshare/item_images.py).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from purchaseshare.image_proxy import ImageError

CARD, THUMB = 480, 160  # the two sizes stored: a box the image fits in (never enlarged)
SIZES = (CARD, THUMB)
MAX_PIXELS = 25_000_000  # of the source image (a 5000 x 5000 photo); decoded RGBA ~100 MB at most
MAX_SIDE = 20_000  # a 1 x 25 000 000 strip is no product photo either
QUALITY = 82
FORMATS = ("PNG", "JPEG", "GIF", "WEBP")
MEDIA_PREFIX = "/media/"
# What a stored file is called (also the only names the /media route accepts).
FILE_NAME = re.compile(r"([0-9a-f]{32})-(\d{2,4})\.webp")
NAME = re.compile(r"[0-9a-f]{32}")


def reencode(data: bytes) -> dict[int, bytes]:
    """{size: WebP bytes} for each of SIZES, drawn from the first frame of `data`; ImageError for
    anything that is not a reasonable PNG, JPEG, GIF or WebP."""
    try:
        with warnings.catch_warnings():
            # Pillow's own guard, past its (higher) MAX_IMAGE_PIXELS: an error, never a warning.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                width, height = image.size  # from the header: nothing decoded yet
                if width < 1 or height < 1 or width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
                    raise ImageError(f"refused: {width}x{height} pixels")
                image.seek(0)  # an animation: its first frame
                image.load()
                # Turned upright by its EXIF orientation before the EXIF goes away.
                upright = ImageOps.exif_transpose(image)
                has_alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
                pixels = upright.convert("RGBA" if has_alpha else "RGB")
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning,
            OSError, ValueError, SyntaxError, EOFError) as exc:  # what Pillow raises on a bad file
        raise ImageError(f"not a decodable image: {type(exc).__name__}") from exc
    return {size: _webp(pixels, size) for size in SIZES}


def _webp(pixels: Image.Image, size: int) -> bytes:
    small = pixels.copy()
    small.thumbnail((size, size), Image.Resampling.LANCZOS)
    # A fresh image of the pixels alone: no `info` (EXIF, ICC, XMP, comments) can ride along.
    clean = Image.frombytes(small.mode, small.size, small.tobytes())
    out = io.BytesIO()
    clean.save(out, format="WEBP", quality=QUALITY, method=4)
    return out.getvalue()


def content_name(variants: dict[int, bytes]) -> str:
    """The stored image's name: the hash of its card-size file (so equal pictures share files)."""
    return hashlib.sha256(variants[CARD]).hexdigest()[:32]


def file_name(name: str, size: int = CARD) -> str:
    return f"{name}-{size}.webp"


def media_path(name: str, size: int = CARD) -> str:
    """The path on our site that serves a stored image (absolute URLs add the base URL)."""
    return MEDIA_PREFIX + file_name(name, size)


def resized_path(path: str, size: int) -> str:
    """Another stored size of the image at `path` (a /media path), or `path` itself."""
    found = FILE_NAME.fullmatch(path.removeprefix(MEDIA_PREFIX))
    return media_path(found.group(1), size) if found and size in SIZES else path


class ImageStore:
    """Stored images as files: <directory>/<first two hex>/<name>-<size>.webp."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, file: str) -> Path | None:
        """The file behind a /media file name, or None for a name we never make."""
        found = FILE_NAME.fullmatch(file)
        if found is None or int(found.group(2)) not in SIZES:
            return None
        return self.directory / file[:2] / file

    def put(self, name: str, variants: dict[int, bytes]) -> None:
        """Write the files that are missing (content-addressed: an existing file is already right)."""
        for size, data in variants.items():
            path = self.directory / name[:2] / file_name(name, size)
            if path.exists():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{os.getpid()}.part")
            partial.write_bytes(data)
            partial.replace(path)  # readers never see half a file

    def has(self, name: str) -> bool:
        return all((self.directory / name[:2] / file_name(name, size)).exists() for size in SIZES)

    def remove(self, name: str) -> None:
        if not NAME.fullmatch(name):
            return
        for size in SIZES:
            try:
                (self.directory / name[:2] / file_name(name, size)).unlink()
            except FileNotFoundError:
                pass

    def names(self) -> set[str]:
        """Every stored image's name (tests, and a check that nothing is left behind)."""
        return {found.group(1) for path in self.directory.glob("*/*.webp")
                if (found := FILE_NAME.fullmatch(path.name))}
