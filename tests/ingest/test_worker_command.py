"""`purchaseshare worker`: dramatiq workers on real Redis, started again when they die."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from purchaseshare.db import session_scope
from purchaseshare.mailstore import store_raw
from purchaseshare.models import RawEmail
from purchaseshare.users import create_user
from tests.helpers import FIXTURES, ROOT
from tests.ingest.workers_harness import flush_redis, sending_to, wait_until_final, worker_env

EMAILS = [FIXTURES / "amazon" / "amazon_1.eml", FIXTURES / "amazon" / "amazon_2.eml"]


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_worker_command_restarts_dead_workers_and_they_process_mail(settings, redis_service, tmp_path):
    flush_redis(redis_service.url)
    env = worker_env(redis_service.url)
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115  (closed below, after the process)
    supervisor = subprocess.Popen([sys.executable, "-m", "purchaseshare.cli", "worker", "--processes", "1",
                                   "--threads", "1"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        # supervisor -> dramatiq main -> 1 worker process (plus dramatiq's fork helpers, if any)
        first = _wait_for(lambda: sorted(_descendants(supervisor.pid)) if len(_descendants(supervisor.pid)) >= 2
                          else None, 60, "dramatiq to start")
        time.sleep(2)  # let the workers boot before the kill (a kill during boot stalls dramatiq 30 s)
        for pid in first:
            os.kill(pid, signal.SIGKILL)
        _wait_for(lambda: len(_descendants(supervisor.pid) - set(first)) >= 2, 60, "the workers to be started again")
        with session_scope(settings) as session:
            user = create_user(session, "wendy")
            session.commit()
            ids = [store_raw(session, path.read_bytes(), source="t", user_id=user.id, attributed_by="cli").raw_email.id
                   for path in EMAILS]
            with sending_to(redis_service.url):
                from workers.actors import enqueue_parse

                enqueue_parse(session, ids)
        wait_until_final(settings, timeout=60)
        with session_scope(settings) as session:
            assert [session.get(RawEmail, raw_id).status for raw_id in ids] == ["parsed", "parsed"]
        assert "restarting" in (tmp_path / "worker.log").read_text()
    finally:
        supervisor.send_signal(signal.SIGTERM)
        try:
            supervisor.wait(30)
        except subprocess.TimeoutExpired:
            supervisor.kill()
        for pid in _descendants(supervisor.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
