"""`purchaseshare demo` as a person runs it: a real subprocess on a free port with its own data
dir. The printed password logs in; /u/demo shows exactly the approved purchases; the drop folder
ingests a new email; a restart on the same data dir duplicates nothing. SQLite only: the demo
is SQLite by definition."""

from __future__ import annotations

import html
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.services.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "fixtures" / "emails" / "_generic" / "generic_1_table_en.eml"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_PASSWORD = re.compile(r"handle: demo\s+password: (\S+)")
_LINK = re.compile(r'href="/u/demo/p/([A-Za-z0-9_-]+)"')


class Demo:
    """One `purchaseshare demo` process; its output is collected by a reader thread."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "SECRET_KEY")}
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("PURCHASESHARE_BASE_URL", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "purchaseshare.cli", "demo", "--port", str(self.port), "--data-dir", str(data_dir)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout_s: float = 90) -> str:
        """Until /healthz answers; returns the printed password."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"demo exited early:\n{self.output}"
            found = _PASSWORD.search(self.output)
            if found:
                try:
                    if httpx.get(f"{self.url}/healthz", timeout=2).json() == {"status": "ok"}:
                        return found.group(1)
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        raise AssertionError(f"demo not ready after {timeout_s}s:\n{self.output}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # what Ctrl-C does
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _counts(db) -> dict[str, int]:
    tables = ("user", "raw_email", "purchase", "purchase_item", "follow", "like", "comment", "notification")
    with db.connect() as conn:
        return {table: conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one() for table in tables}


def _profile_ids(client: httpx.Client) -> set[str]:
    """Every purchase linked from /u/demo, across its pages."""
    seen: set[str] = set()
    for page in range(1, 20):
        response = client.get(f"/u/demo?page={page}", headers={"accept": "text/html"})
        assert response.status_code == 200, response.text[:500]
        found = set(_LINK.findall(response.text))
        if not found - seen:
            break
        seen |= found
    return seen


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "demo-data"


def test_demo_end_to_end_and_restart(data_dir):
    demo = Demo(data_dir)
    try:
        password = demo.wait_ready()
        assert f"{demo.url}/" in demo.output
        assert str(data_dir / "drop") in demo.output
        assert f"{demo.url}/operator/outbox" in demo.output
        db = create_engine(f"sqlite:///{data_dir / 'purchaseshare.db'}")

        # The printed password logs in through the real login form.
        with httpx.Client(base_url=demo.url, follow_redirects=False, timeout=10) as client:
            form = client.get("/login", headers={"accept": "text/html"})
            token = _CSRF.search(form.text)
            assert token, form.text[:500]
            wrong = client.post("/login", data={"handle": "demo", "password": password + "x",
                                                "csrf_token": token.group(1)}, headers={"accept": "text/html"})
            assert wrong.status_code != 303
            form = client.get("/login", headers={"accept": "text/html"})
            response = client.post("/login", data={"handle": "demo", "password": password,
                                                   "csrf_token": _CSRF.search(form.text).group(1)},
                                   headers={"accept": "text/html"})
            assert response.status_code == 303, response.text[:500]
            assert "/login" not in response.headers["location"]
            session_cookie = client.cookies["ps_session"]
            # With no mail server the demo's operator reads outgoing mail (the welcome mail
            # with its verification link) in the outbox.
            outbox = client.get("/operator/outbox", headers={"accept": "text/html"})
            assert outbox.status_code == 200 and "No mail server is configured" in outbox.text
            assert client.get("/settings/addresses").status_code == 200

        # The sample emails went through the queue; /u/demo shows the approved ones, not the private ones.
        with db.connect() as conn:
            demo_id = conn.execute(text("SELECT id FROM user WHERE handle = 'demo'")).scalar_one()
            statuses = dict(conn.execute(text("SELECT status, count(*) FROM raw_email WHERE user_id = :u "
                                              "GROUP BY status"), {"u": demo_id}).all())
            rows = conn.execute(text(
                "SELECT p.public_id, p.review, i.name, i.approved FROM purchase p JOIN purchase_item i "
                "ON i.purchase_id = p.id WHERE p.user_id = :u"), {"u": demo_id}).all()
        assert statuses.get("received", 0) == 0 and statuses.get("parsed", 0) >= 20, statuses
        shared = {public_id for public_id, _, _, approved in rows if approved}
        private = {public_id for public_id, _, _, _ in rows} - shared
        assert len(shared) >= 10 and len(private) >= 10, (len(shared), len(private))
        approved_names = {name for _, _, name, approved in rows if approved}
        withheld = {name for public_id, _, name, approved in rows if not approved and public_id in shared}
        assert withheld, "one purchase is shared with only some of its items"
        with httpx.Client(base_url=demo.url, timeout=10) as anonymous:
            assert _profile_ids(anonymous) == shared
            pages = "".join(anonymous.get(f"/u/demo?page={n}", headers={"accept": "text/html"}).text
                            for n in (1, 2, 3))
            for name in withheld:  # an unapproved item of a shared purchase never shows
                if not any(name in other for other in approved_names):
                    assert html.escape(name) not in pages, name
            sam = anonymous.get("/u/sam", headers={"accept": "text/html"})
            assert sam.status_code == 200 and "/u/sam/p/" in sam.text  # other sample users share too

        # The drop folder: a new .eml is ingested for demo (private), and moved to drop/done/.
        raw = FIXTURE.read_bytes().replace(b"WB-481207", b"WB-990017").replace(
            b"<wb-481207@", b"<drop-test-990017@").replace(b"The Salt Road", b"The Drop Folder Atlas")
        (data_dir / "drop" / "new-order.eml").write_bytes(raw)
        deadline = time.monotonic() + 45
        found = None
        while time.monotonic() < deadline and found is None:
            with db.connect() as conn:
                found = conn.execute(text(
                    "SELECT p.review, i.approved FROM purchase p JOIN purchase_item i ON i.purchase_id = p.id "
                    "WHERE p.user_id = :u AND i.name LIKE 'The Drop Folder Atlas%'"), {"u": demo_id}).first()
            time.sleep(0.3)
        assert found is not None, demo.output[-2000:]
        assert tuple(found) == ("new", False)  # private until approved
        assert (data_dir / "drop" / "done" / "new-order.eml").exists()
        assert not (data_dir / "drop" / "new-order.eml").exists()
        before = _counts(db)
    finally:
        code = demo.stop()
    assert code == 0, demo.output[-3000:]
    assert "Traceback" not in demo.output, demo.output[-3000:]

    # Restart on the same data dir: same password, the same session secret, nothing duplicated.
    again = Demo(data_dir)
    try:
        assert again.wait_ready() == password
        assert _counts(db) == before
        # The secret key is kept in the data dir: the session from before the restart still works.
        assert httpx.get(f"{again.url}/settings/addresses").status_code == 303  # anonymous: to /login
        with httpx.Client(base_url=again.url, timeout=10, cookies={"ps_session": session_cookie}) as client:
            assert client.get("/settings/addresses").status_code == 200
        with httpx.Client(base_url=again.url, timeout=10) as anonymous:
            assert _profile_ids(anonymous) == shared
    finally:
        assert again.stop() == 0, again.output[-3000:]
    db.dispose()
