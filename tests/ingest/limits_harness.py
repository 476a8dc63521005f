"""Imported by the workers of tests/ingest/test_worker_limits.py next to workers.actors
(`python -m dramatiq workers.actors tests.ingest.limits_harness`).

With PURCHASESHARE_TEST_SLOW set, an email carrying `X-Test-Slow: SECONDS` keeps its parse busy
that long before the real pipeline runs: a parse slower than the worker's time limit, on
demand. It is busy in Python (short sleeps), as a real parse is busy in bytecode - where
dramatiq's TimeLimitExceeded lands. Nothing is patched unless that variable is set.
"""

from __future__ import annotations

import email.parser
import email.policy
import os
import time


def _install() -> None:
    from purchaseshare import pipeline

    real_run = pipeline.run
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32)

    def slow_run(raw: bytes, source: str | None = None, **kwargs: object):
        seconds = float(str(headers.parsebytes(raw[:65536]).get("X-Test-Slow", "0")).strip() or 0)
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            time.sleep(0.02)
        return real_run(raw, source=source, **kwargs)

    pipeline.run = slow_run  # processing.py calls pipeline.run(...) through the module


if os.environ.get("PURCHASESHARE_TEST_SLOW") and os.environ.get("REDIS_URL"):
    _install()
