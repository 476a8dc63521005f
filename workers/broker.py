"""The dramatiq broker: Redis when REDIS_URL is set, otherwise an in-process one.

Actors bind to the broker that is current when workers/actors.py is imported, so this module
sets it first. With no REDIS_URL the same actors run on dramatiq's StubBroker and a worker
thread inside the process that sends (the embedded default needs no service).
"""

from __future__ import annotations

import os
import threading

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from purchaseshare.config import get_settings


def _make_broker() -> dramatiq.Broker:
    url = get_settings().redis_url
    if url:
        # A worker that dies holding messages: they go back to the queue once its heartbeat is
        # this old. Tests shorten it to see SIGKILL recovery quickly.
        heartbeat_ms = int(os.environ.get("PURCHASESHARE_REDIS_HEARTBEAT_MS", "60000"))
        return RedisBroker(url=url, heartbeat_timeout=heartbeat_ms,
                           maintenance_chance=int(os.environ.get("PURCHASESHARE_REDIS_MAINTENANCE", "1000")))
    return StubBroker()


broker = _make_broker()
dramatiq.set_broker(broker)
IN_PROCESS = isinstance(broker, StubBroker)

_worker: dramatiq.Worker | None = None
_worker_lock = threading.Lock()
_booted = False  # process_boot starts middleware threads: once per process, not per worker


def start_in_process_worker(threads: int = 2) -> dramatiq.Worker | None:
    """Run the actors in this process (no REDIS_URL). Idempotent; None with a real broker."""
    global _worker, _booted
    if not IN_PROCESS:
        return None
    with _worker_lock:
        if _worker is None:
            if not _booted:
                broker.emit_after("process_boot")
                _booted = True
            _worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
            _worker.start()
        return _worker


def wait_in_process(queue_name: str = "default", timeout_ms: int | None = None) -> None:
    """Block until the in-process queue is drained (CLI `ingest`, `reparse`); no-op with Redis."""
    if IN_PROCESS and _worker is not None:
        import workers.actors  # noqa: F401  (declares the queues, even if nothing was sent yet)

        broker.join(queue_name, timeout=timeout_ms, fail_fast=False)
        _worker.join()


def stop_in_process_worker() -> None:
    global _worker
    with _worker_lock:
        if _worker is not None:
            _worker.stop()
            _worker = None
