"""The hard limit per email in the worker (issue 17), with a real `python -m dramatiq
workers.actors` process on a real redis-server: an email over the time limit (dramatiq's
time_limit on parse_email) or over the memory limit (checked between the pipeline's steps) ends
`failed` with the reason "too large/complex to read", once (no retry), and the same worker goes
on with the next email."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlmodel import select

from bench.adversarial import MB, one_line_text, small_order
from purchaseshare.mailstore import store_raw
from purchaseshare.models import RawEmail
from purchaseshare.pipeline import TOO_COSTLY
from purchaseshare.users import create_user
from tests.ingest.workers_harness import (
    ROOT,
    sending_to,
    wait_until_final,
    with_header,
    with_message_id,
    worker_env,
)
from workers.actors import enqueue_parse

pytestmark = pytest.mark.services


def _store(session, user_id: int, raw: bytes, name: str) -> int:
    stored = store_raw(session, raw, source=f"test:{name}", user_id=user_id, attributed_by="cli")
    assert stored.raw_email.id is not None
    return stored.raw_email.id


def test_an_email_over_the_worker_limits_fails_visibly_and_the_worker_goes_on(settings, session, redis_url,
                                                                              tmp_path):
    user = create_user(session, "limits")
    session.commit()
    slow = _store(session, user.id, with_header(with_message_id(small_order(), "slow@limits.test"),
                                                "X-Test-Slow: 30"), "slow")
    # A 10 MB line of words and prices: the reader still holds ~6 MB beyond the email between its
    # steps (the MIME structure, the ~1 MB of the body it keeps, split into words), over this
    # worker's 2 MB; a small order is not measured at all.
    big = _store(session, user.id, with_message_id(one_line_text(10 * MB), "big@limits.test"), "big")
    normal = _store(session, user.id, with_message_id(small_order(), "normal@limits.test"), "normal")
    assert len({slow, big, normal}) == 3

    env = worker_env(redis_url, PURCHASESHARE_TEST_SLOW="1", PURCHASESHARE_PARSE_TIME_LIMIT_MS="1000",
                     PURCHASESHARE_PARSE_MEMORY_MB="2")
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "workers.actors", "tests.ingest.limits_harness",
             "--processes", "1", "--threads", "1"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        started = time.monotonic()
        with sending_to(redis_url):
            enqueue_parse(session, [slow, big, normal])  # one worker thread: in this order
        wait_until_final(settings, timeout=60)
        elapsed = time.monotonic() - started
        assert worker.poll() is None, log.read_text()  # the worker lived through both
    finally:  # its own session: the main process and its worker child
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)

    session.expire_all()
    rows = {row.id: row for row in session.exec(select(RawEmail)).all()}
    assert rows[slow].status == "failed" and rows[big].status == "failed", log.read_text()
    assert rows[slow].reason == f"could not read this email: {TOO_COSTLY} (stopped after 1 s)"
    assert rows[big].reason.startswith(f"could not read this email: {TOO_COSTLY} (over 2 MB of memory after ")
    assert rows[slow].attempts == 1 and rows[big].attempts == 1  # failed for good, not retried
    assert rows[normal].status == "parsed" and rows[normal].purchase_id is not None
    assert elapsed < 25, f"the slow email held the worker {elapsed:.1f} s: its 30 s were not cut short"
