"""Thread limiters of their own, apart from AnyIO's shared pool (which a burst of requests may fill):
work that must not wait behind that burst runs on a few threads reserved for it."""

from __future__ import annotations

import anyio
from anyio.lowlevel import RunVar

_limiters: dict[str, RunVar[anyio.CapacityLimiter]] = {}


def reserved_threads(name: str, size: int) -> anyio.CapacityLimiter:
    """The limiter called `name` with `size` threads, one per event loop (made on first use)."""
    var = _limiters.setdefault(name, RunVar(name))
    limiter = var.get(None)
    if limiter is None:
        limiter = anyio.CapacityLimiter(size)
        var.set(limiter)
    return limiter
