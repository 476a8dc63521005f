"""Real dramatiq workers for the fault tests: start/stop/kill `python -m dramatiq workers.actors`
processes on a real Redis, supervise them the way an operator's supervisor would (restart what
exits), wait until every raw email is final, and count what ended up in the database.

It is also
- `sending_to(redis_url)`: the real `enqueue_parse` / `requeue_stale`, called in the test process,
  send on the real Redis. The broker is chosen when workers.broker is imported and this process
  keeps its in-process StubBroker (other tests rely on it), so for the duration of the block the
  `parse_email` actor's sending side is pointed at a RedisBroker. (A subprocess per send, as
  `purchaseshare ingest` with REDIS_URL would be, costs ~2 s of imports on a 2-core machine
  each time, while the workers are booting.)
- a module the workers import next to workers.actors (`python -m dramatiq workers.actors
  tests.ingest.workers_harness`): with PURCHASESHARE_TEST_TRACE set it appends one line per
  pipeline run (which raw email, which attempt, when, which process) so a test can see kills
  landing mid-job, races and backoff; PURCHASESHARE_TEST_JOB_SECONDS stretches every job (a wider
  window for a kill to land in); and an email carrying `X-Test-Fault: fail-attempts=N` (or `always`) makes
  its pipeline run raise for its first N attempts (or every time). Nothing is patched unless
  that variable is set, i.e. only inside the workers a test starts.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.mailcopies import with_headers

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "emails"
TRACE_ENV = "PURCHASESHARE_TEST_TRACE"


def worker_env(redis_url: str, **extra: str) -> dict[str, str]:
    """The test's environment (DATABASE_URL, PURCHASESHARE_DATA_DIR set by the `settings`
    fixture) plus Redis, with a short heartbeat and frequent maintenance so the messages a
    SIGKILLed worker held go back to the queue within ~2 s instead of a minute."""
    env = dict(os.environ)
    env.update({
        "REDIS_URL": redis_url,
        "PURCHASESHARE_REDIS_HEARTBEAT_MS": "1500",
        "PURCHASESHARE_REDIS_MAINTENANCE": "500000",  # of a million commands
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


# --- worker processes --------------------------------------------------------------------------

@dataclass
class WorkerGroup:
    """One `python -m dramatiq workers.actors` main process and its worker child(ren)."""

    name: str
    env: dict[str, str]
    log: Path
    processes: int = 1
    threads: int = 2
    proc: subprocess.Popen | None = None
    exits: list[int] = field(default_factory=list)  # exit codes of the runs the supervisor restarted
    log_offset: int = 0  # where this run's log starts

    def ready(self) -> bool:
        """dramatiq's main process logs "booting up" once its workers are up and consuming. (A
        worker killed while still importing would leave the main process waiting 30 s for it.)"""
        if not self.running():
            return False
        with open(self.log, "rb") as log:
            log.seek(self.log_offset)
            return b"is booting up" in log.read()

    def start(self) -> None:
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dramatiq", "workers.actors", "tests.ingest.workers_harness",
                 "--processes", str(self.processes), "--threads", str(self.threads)],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def children(self) -> list[int]:
        """The worker processes (dramatiq's main process only supervises them)."""
        if not self.running():
            return []
        assert self.proc is not None
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text.split() if _alive(int(pid))]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the main process and its workers
            self.proc.wait(10)


def _alive(pid: int) -> bool:
    """Not a zombie: a killed worker stays listed until dramatiq's main process reaps it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Workers:
    """Worker groups plus a supervisor thread that restarts any group whose main process exited
    (dramatiq's main process shuts everything down when one of its workers dies)."""

    def __init__(self, env: dict[str, str], log_dir: Path, groups: int = 2, threads: int = 2) -> None:
        self.groups = [WorkerGroup(f"w{i}", env, log_dir / f"worker-{i}.log", threads=threads)
                       for i in range(groups)]
        self.kills = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)

    def __enter__(self) -> Workers:
        for group in self.groups:
            group.start()
        self._supervisor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._supervisor.join(5)
        with self._lock:  # the test is over: no need for dramatiq's graceful (~2 s) shutdown
            for group in self.groups:
                group.kill()

    @property
    def restarts(self) -> int:
        return sum(len(group.exits) for group in self.groups)

    def _supervise(self) -> None:
        while not self._stopping.wait(0.1):
            with self._lock:
                for group in self.groups:
                    if group.proc is not None and group.proc.poll() is not None and not self._stopping.is_set():
                        group.exits.append(group.proc.returncode)
                        group.start()

    def kill_one_busy_worker(self, trace: Path, within: float = 0.3) -> int | None:
        """SIGKILL a worker process that started a job in the last `within` seconds (per the trace):
        most likely it is in the middle of it."""
        now = time.time()
        busy = {pid for _, _, moment, pid in read_trace(trace) if now - moment <= within}
        with self._lock:
            candidates = [pid for group in self.groups if group.ready() for pid in group.children() if pid in busy]
            if not candidates:
                return None
            pid = random.choice(candidates)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return None
            self.kills += 1
            return pid

    def logs(self, tail: int = 4000) -> str:
        out = []
        for group in self.groups:
            text = group.log.read_text(errors="replace") if group.log.exists() else ""
            out.append(f"--- {group.name} (exits {group.exits}) ---\n{text[-tail:]}")
        return "\n".join(out)


# --- sending on the RedisBroker ---------------------------------------------------------------------

@contextmanager
def sending_to(redis_url: str) -> Iterator[None]:
    """`parse_email.send` (hence `enqueue_parse`, `requeue_stale`) goes to this Redis meanwhile."""
    from dramatiq.brokers.redis import RedisBroker

    from workers.actors import parse_email

    stub, redis_broker = parse_email.broker, RedisBroker(url=redis_url)
    parse_email.broker = redis_broker
    try:
        yield
    finally:
        parse_email.broker = stub
        redis_broker.close()


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushall()


def redis_keys(url: str) -> list[bytes]:
    """Every key dramatiq has in Redis (queues, delay queues, acks, heartbeats)."""
    import redis

    return sorted(redis.Redis.from_url(url).keys("dramatiq:*"))


# --- the database side ---------------------------------------------------------------------------

@dataclass
class Counts:
    raw: int
    statuses: Counter
    purchases: int
    duplicate_orders: list[tuple]  # (user, domain, order) stored more than once
    duplicate_message_ids: list[tuple]  # (user, original Message-ID) stored more than once
    orders: Counter  # (user_id, merchant_domain, order_number) -> purchases


def counts(settings) -> Counts:
    from sqlmodel import select

    from purchaseshare.db import session_scope
    from purchaseshare.models import Purchase, RawEmail

    with session_scope(settings) as session:
        statuses = Counter(session.exec(select(RawEmail.status)).all())
        rows = session.exec(select(Purchase.user_id, Purchase.merchant_domain, Purchase.order_number,
                                   Purchase.original_message_id)).all()
    orders = Counter((user, domain, order) for user, domain, order, _ in rows)
    message_ids = Counter((user, mid) for user, _, _, mid in rows if mid)
    return Counts(
        raw=sum(statuses.values()), statuses=statuses, purchases=len(rows),
        duplicate_orders=[key for key, n in orders.items() if n > 1 and key[2] is not None],
        duplicate_message_ids=[key for key, n in message_ids.items() if n > 1], orders=orders,
    )


def received_left(settings, raw_ids: list[int] | None = None) -> int:
    from sqlmodel import func, select

    from purchaseshare.db import session_scope
    from purchaseshare.models import RawEmail

    query = select(func.count()).select_from(RawEmail).where(RawEmail.status == "received")
    if raw_ids is not None:
        query = query.where(RawEmail.id.in_(raw_ids))  # type: ignore[union-attr]
    with session_scope(settings) as session:
        return int(session.exec(query).one())


def wait_until_final(settings, workers: Workers | None = None, timeout: float = 45.0,
                     during: object = None) -> float:
    """Poll until no raw email is `received`; returns the seconds it took. `during` (a callable)
    runs on every poll (the kill loop)."""
    start = time.monotonic()
    while True:
        left = received_left(settings)
        if left == 0:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            logs = workers.logs() if workers else ""
            raise AssertionError(f"{left} raw emails still `received` after {timeout}s: {counts(settings)}\n{logs}")
        if callable(during):
            during()
        time.sleep(0.2)


def read_trace(path: Path) -> list[tuple[int, int, float, int]]:
    """(raw_id, attempt, unix time, worker pid) for every pipeline run the workers made."""
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        raw_id, attempt, moment, pid = line.split()
        runs.append((int(raw_id), int(attempt), float(moment), int(pid)))
    return runs


# --- emails ----------------------------------------------------------------------------------------

@dataclass
class FixtureEmail:
    path: Path
    raw: bytes
    domain: str
    order_number: str


def purchase_fixtures() -> list[FixtureEmail]:
    """Every fixture email whose golden is a purchase with a merchant domain and order number,
    one per order (a later email of the same order, e.g. an invoice, is left out)."""
    found: dict[tuple[str, str], FixtureEmail] = {}
    for path in sorted(FIXTURES.glob("*/*.eml")):
        golden = json.loads(path.with_suffix(".json").read_text())
        domain, order = (golden.get("merchant") or {}).get("domain"), golden.get("order_number")
        if golden.get("status") == "purchase" and domain and order and (domain, order) not in found:
            found[(domain, order)] = FixtureEmail(path, path.read_bytes(), domain, order)
    return list(found.values())


def with_message_id(raw: bytes, message_id: str) -> bytes:
    """The same email under another Message-ID (a distinct delivery for the raw-mail store)."""
    return with_headers(raw, {"Message-ID": f"<{message_id}>"})


def with_header(raw: bytes, header: str) -> bytes:
    """The email with one more field on top, e.g. "X-Test-Fault: always"."""
    name, _, value = header.partition(":")
    return with_headers(raw, {name: value.strip()}, keep={name})


# --- inside the workers: trace and injected faults ---------------------------------------------------

def _install_trace(trace: Path) -> None:
    from purchaseshare import pipeline
    from purchaseshare.config import get_settings
    from purchaseshare.db import session_scope
    from purchaseshare.models import RawEmail

    real_run = pipeline.run
    job_seconds = float(os.environ.get("PURCHASESHARE_TEST_JOB_SECONDS", "0"))
    header_parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)

    def traced_run(raw: bytes, source: str | None = None, **kwargs: object):
        if not (source and source.startswith("raw_email:")):  # the worker's own warm-up (workers.broker)
            return real_run(raw, source=source, **kwargs)
        raw_id = int(source.rsplit(":", 1)[-1])
        with session_scope(get_settings()) as session:
            row = session.get(RawEmail, raw_id)
            attempt = row.attempts if row is not None else 0
        with open(trace, "a") as out:  # one short O_APPEND write per line: safe across processes
            out.write(f"{raw_id} {attempt} {time.time():.3f} {os.getpid()}\n")
        time.sleep(job_seconds)  # a longer job: more of the kills land in the middle of one
        fault = str(header_parser.parsebytes(raw[:65536]).get("X-Test-Fault", "")).strip()
        if fault == "always" or (fault.startswith("fail-attempts=") and attempt <= int(fault.split("=")[1])):
            raise RuntimeError(f"injected fault on attempt {attempt}")
        return real_run(raw, source=source, **kwargs)

    pipeline.run = traced_run  # processing.py calls pipeline.run(...) through the module


if os.environ.get(TRACE_ENV) and os.environ.get("REDIS_URL"):
    _install_trace(Path(os.environ[TRACE_ENV]))


