"""The dramatiq broker: Redis when REDIS_URL is set, otherwise an in-process one.

Actors bind to the broker that is current when workers/actors.py is imported, so this module
sets it first. With no REDIS_URL the same actors run on dramatiq's StubBroker and a worker
thread inside the process that sends (the embedded default needs no service).
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterable
from uuid import uuid4

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import current_millis
from dramatiq.middleware import Middleware

from purchaseshare.config import get_settings


class FreezeAtBoot(Middleware):
    """In a worker process, once its modules are imported and one small email was read (the
    parsers' lazy imports): move every object alive then out of the garbage collector's sight
    (gc.freeze). A full collection walks every tracked object; without this, the one after each
    large email (purchaseshare.memory.give_back) and Python's own gen-2 collections cost 100+ ms,
    walking the same few hundred thousand module-level objects every time."""

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        from purchaseshare import pipeline

        pipeline.run(WARM_UP, source="warm-up")
        gc.collect()
        gc.freeze()


WARM_UP = (b"From: Shop <orders@shop.example>\r\nTo: someone@example.org\r\nSubject: Your order 1234\r\n"
           b"Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Thank you for your order 1234.</p>"
           b"<table><tr><td>Tea</td><td>1</td><td>4.50 EUR</td></tr></table><p>Total 4.50 EUR</p></body></html>\r\n")


def _make_broker() -> dramatiq.Broker:
    url = get_settings().redis_url
    if url:
        # A worker that dies holding messages: they go back to the queue once its heartbeat is
        # this old. Tests shorten it to see SIGKILL recovery quickly.
        heartbeat_ms = int(os.environ.get("PURCHASESHARE_REDIS_HEARTBEAT_MS", "60000"))
        redis = RedisBroker(url=url, heartbeat_timeout=heartbeat_ms,
                            maintenance_chance=int(os.environ.get("PURCHASESHARE_REDIS_MAINTENANCE", "1000")))
        redis.add_middleware(FreezeAtBoot())  # worker processes only: in-process (web) workers never freeze
        return redis
    return StubBroker()


broker = _make_broker()
dramatiq.set_broker(broker)
IN_PROCESS = isinstance(broker, StubBroker)

SEND_CHUNK = 500  # messages per Redis round trip at most


def send_many(actor: dramatiq.Actor, args_list: Iterable[tuple]) -> None:
    """`actor.send(*args)` for each, in as few Redis round trips as possible.

    RedisBroker.enqueue is one EVALSHA round trip per message (most of what queueing a parse
    costs the IMAP poller); this runs the same dispatch script, with the same arguments and the
    same enqueue middleware hooks, through one pipeline per chunk. Another broker (the in-process
    StubBroker), or a RedisBroker without the internals this relies on, sends one by one. A Redis
    error is raised as from `send` (messages of the failed chunk may or may not be queued: the
    caller's rows are stamped queued, so the sweeper sends them again when they are overdue)."""
    broker = actor.broker
    pending = list(args_list)
    if not (isinstance(broker, RedisBroker) and hasattr(broker, "scripts") and hasattr(broker, "_max_unpack_size")):
        for args in pending:
            actor.send(*args)
        return
    for start in range(0, len(pending), SEND_CHUNK):
        messages = []
        with broker.client.pipeline(transaction=False) as pipe:
            for args in pending[start:start + SEND_CHUNK]:
                # What RedisBroker.enqueue does for a message without a delay, bar the round trip.
                message = actor.message(*args).copy(options={"redis_message_id": str(uuid4())})
                broker.emit_before("enqueue", message, None)
                broker.scripts["dispatch"](keys=[broker.namespace], client=pipe, args=[
                    "enqueue", current_millis(), message.queue_name, broker.broker_id, broker.heartbeat_timeout,
                    broker.dead_message_ttl, broker._should_do_maintenance("enqueue"), broker._max_unpack_size(),
                    message.options["redis_message_id"], message.encode(),
                ])
                messages.append(message)
            pipe.execute()
        for message in messages:
            broker.emit_after("enqueue", message, None)


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
