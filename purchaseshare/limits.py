"""Limits on actions that reach other people or cost us (comments notify an owner, verification
mail goes to an outside address, accounts are cheap to make but not free), taken with
purchaseshare.ratelimit.take; and the time one email's parse may take (`time_limit`)."""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from purchaseshare.ratelimit import Rule

COMMENT_RULES: list[Rule] = [(5, timedelta(minutes=1)), (30, timedelta(hours=1))]
# Verification mail to one address, whichever accounts ask for it, and from one account.
VERIFY_TO_RULES: list[Rule] = [(3, timedelta(hours=1)), (5, timedelta(days=1))]
VERIFY_BY_RULES: list[Rule] = [(9, timedelta(hours=1)), (20, timedelta(days=1))]
SIGNUP_RULES: list[Rule] = [(10, timedelta(hours=1))]  # per client

# One length limit per text field, in characters: the forms' maxlength (and the counters on
# text areas) and the server's checks read these same numbers (web templates: `field_max`).
TEXT_MAX: dict[str, int] = {
    "merchant": 200,
    "item_name": 500,
    "items": 60_000,  # the manual entry's item lines (at most pipeline.MAX_ITEMS of them)
    "caption": 1000,
    "url": 2000,
    "money": 40,
    "currency": 3,
    "handle": 40,
    "display_name": 80,
    "avatar_url": 500,
    "bio": 2000,
    "comment": 2000,
    "review": 4000,
    "collection_name": 80,
    "collection_description": 1000,
}


# --- the time one email's parse may take (issue 17) -------------------------------------------
# workers.actors gives parse_email this limit through dramatiq's time_limit (the same variable);
# `time_limit` below gives it to work dramatiq does not time that way (reparse_email).

PARSE_TIME_LIMIT_ENV = "PURCHASESHARE_PARSE_TIME_LIMIT_MS"
DEFAULT_PARSE_TIME_LIMIT_MS = 120_000


def parse_time_limit_ms() -> int:
    """The milliseconds one email's parse may take (PURCHASESHARE_PARSE_TIME_LIMIT_MS)."""
    try:
        return max(1, int(os.environ.get(PARSE_TIME_LIMIT_ENV, DEFAULT_PARSE_TIME_LIMIT_MS)))
    except ValueError:
        return DEFAULT_PARSE_TIME_LIMIT_MS


class TimeUp(BaseException):
    """Raised in a thread that ran past its `time_limit`. A BaseException, as dramatiq's
    TimeLimitExceeded is: no parser's `except Exception` may swallow it and go on."""


_deadlines: dict[int, float] = {}  # thread id -> monotonic deadline, while its block runs
_fired: set[int] = set()  # threads TimeUp was sent to
_watch = threading.Condition()
_watcher: threading.Thread | None = None


@contextmanager
def time_limit(milliseconds: int) -> Iterator[None]:
    """Raise TimeUp in this thread once `milliseconds` have passed inside the block. The
    exception lands between two bytecodes (a long call into C ends first), as dramatiq's own
    time limit does: one watcher thread for every block, a TimeUp never lands after the block."""
    global _watcher
    ident = threading.get_ident()
    with _watch:
        _deadlines[ident] = time.monotonic() + milliseconds / 1000
        if _watcher is None or not _watcher.is_alive():
            _watcher = threading.Thread(target=_watching, name="time-limit", daemon=True)
            _watcher.start()
        _watch.notify()
    try:
        yield
    finally:
        with _watch:
            _deadlines.pop(ident, None)
            fired = ident in _fired
            _fired.discard(ident)
        if fired:  # sent but not raised yet (the block had just ended): it is not raised now
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)


def _watching() -> None:
    with _watch:
        while True:
            now = time.monotonic()
            for ident, deadline in list(_deadlines.items()):
                if deadline <= now:
                    del _deadlines[ident]
                    _fired.add(ident)
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(TimeUp))
            _watch.wait(min(_deadlines.values()) - now if _deadlines else None)
