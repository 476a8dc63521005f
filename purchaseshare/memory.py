"""Give memory back after reading a large email. glibc keeps the heap a big parse freed (a 46 MB
HTML email left 1.39 GB resident in the web process running the in-process worker); malloc_trim
returns it to the system. The cost of the parse itself is issue 17's; this only stops it lingering."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import lru_cache

LARGE = 1024 * 1024  # emails above this are worth a trim after their parse


@lru_cache(maxsize=1)
def _trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
        return None


def give_back(size: int) -> None:
    """After reading an email of `size` bytes: hand freed heap back to the system if it was large."""
    if size <= LARGE:
        return
    # The reader's objects hold each other (a layout and its blocks): free those cycles first,
    # or their heap would still be in use when it is trimmed.
    gc.collect()
    trim = _trim()
    if trim is not None:
        trim(0)
