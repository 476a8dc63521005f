"""Give memory back after reading a large email. glibc keeps the heap a big parse freed (a 46 MB
HTML email left 1.39 GB resident in the web process running the in-process worker); malloc_trim
returns it to the system. The cost of the parse itself is issue 17's; this only stops it lingering."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
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


# --- the per-email memory bound (issue 17) ---------------------------------------------------

MEMORY_LIMIT_ENV = "PURCHASESHARE_PARSE_MEMORY_MB"
DEFAULT_LIMIT_MB = 1024  # growth of the process while one email is read; a bounded parse takes < 150 MB
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class TooCostly(Exception):
    """One email asked for more than a worker gives any email (time or memory)."""


def resident() -> int:
    """The process's resident memory in bytes (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def limit_bytes() -> int:
    """The memory one email's parse may add (PURCHASESHARE_PARSE_MEMORY_MB; 0: no limit)."""
    try:
        return int(os.environ.get(MEMORY_LIMIT_ENV, DEFAULT_LIMIT_MB)) * 1024 * 1024
    except ValueError:
        return DEFAULT_LIMIT_MB * 1024 * 1024


MEASURED_ABOVE = 256 * 1024  # smaller emails are not measured: the reader's bounds keep them small


class Budget:
    """The memory a parse started from; `check(step)` between steps raises TooCostly past the limit.
    An email of `size` bytes under MEASURED_ABOVE is not measured (no /proc read on the common path)."""

    def __init__(self, size: int) -> None:
        self.limit = limit_bytes() if size > MEASURED_ABOVE else 0
        self.start = resident() if self.limit else 0

    def check(self, step: str) -> None:
        if self.limit and self.start and resident() - self.start > self.limit:
            raise TooCostly(f"over {self.limit // (1024 * 1024)} MB of memory after {step}")
