"""`purchaseshare worker`: dramatiq's worker processes, restarted when they die.

dramatiq's main process stops the whole group when one worker process dies (a SIGKILL, the
OOM killer, a crash in a C library). Messages are safe (Redis re-queues a dead worker's
messages after its heartbeat times out), but nobody would be left to run them, so this loop
starts the group again with a capped backoff, and passes SIGINT/SIGTERM on for a clean stop.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time

log = logging.getLogger(__name__)


def supervise(processes: int, threads: int, max_backoff: float = 30.0) -> int:
    command = [sys.executable, "-m", "dramatiq", "workers.actors", "--processes", str(processes),
               "--threads", str(threads)]
    stopping = False
    child: subprocess.Popen | None = None

    def stop(signum: int, _frame) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    backoff = 0.5
    try:
        while True:
            started = time.monotonic()
            child = subprocess.Popen(command)
            code = child.wait()
            if stopping:
                return code
            if time.monotonic() - started > 60:
                backoff = 0.5  # it ran fine for a while: this is a fresh failure
            log.warning("dramatiq workers exited with %s; starting them again in %.1fs", code, backoff)
            print(f"purchaseshare worker: workers exited with {code}; restarting in {backoff:.1f}s",
                  file=sys.stderr, flush=True)
            time.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
