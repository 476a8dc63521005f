"""The attack suite runs against a REAL server: `purchaseshare serve` in its own process (uvicorn on
loopback), on the test's database (SQLite and PostgreSQL through the `settings` fixture), with the
in-process worker. Attacks are plain HTTP from httpx clients, as an attacker would send them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from purchaseshare.db import session_scope
from purchaseshare.models import User
from purchaseshare.users import create_user
from tests.services.servers import free_port, wait_for_port
from web.security import hash_password

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Site:
    """A running server and the database it uses."""

    url: str
    settings: object
    process: subprocess.Popen
    log: Path

    def client(self, **kwargs) -> httpx.Client:
        kwargs.setdefault("timeout", 30)
        return httpx.Client(base_url=self.url, follow_redirects=False, **kwargs)

    def make_user(self, handle: str, password: str = PASSWORD, email: str | None = None) -> User:
        with session_scope(self.settings) as session:
            user = create_user(session, handle, email=email or f"{handle}@example.org",
                               password_hash=hash_password(password))
            session.commit()
            return user

    def log_in(self, client: httpx.Client, handle: str, password: str = PASSWORD) -> httpx.Response:
        response = post_form(client, "/login", {"handle": handle, "password": password}, page="/login")
        assert response.status_code == 303, response.text[:500]
        return response

    def server_log(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def csrf(client: httpx.Client, page: str = "/") -> str:
    found = _CSRF.search(client.get(page, headers={"accept": "text/html"}).text)
    assert found, f"no CSRF token on {page}"
    return found.group(1)


def post_form(client: httpx.Client, path: str, data: dict | None = None, *, page: str = "/", files=None,
              headers: dict | None = None) -> httpx.Response:
    """A form POST with the session's CSRF token, read from `page` as a browser would."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf(client, page)}, files=files,
                       headers={"accept": "text/html", **(headers or {})})


def serve(settings, tmp_path: Path, *, env: dict[str, str] | None = None) -> Iterator[Site]:
    """`purchaseshare serve` on a free loopback port until the block ends."""
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    environment = {**os.environ, "PURCHASESHARE_SECURE_COOKIES": "false",  # plain http on loopback
                   "PURCHASESHARE_BASE_URL": f"http://127.0.0.1:{port}", **(env or {})}
    command = [str(Path(sys.executable).with_name("purchaseshare")), "serve", "--host", "127.0.0.1",
               "--port", str(port)]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=environment, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_for_port(port, timeout=60)
        yield Site(url=f"http://127.0.0.1:{port}", settings=settings, process=process, log=log)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        time.sleep(0.05)


@pytest.fixture
def site(settings, tmp_path) -> Iterator[Site]:
    """The real server on this test's database (SQLite and PostgreSQL)."""
    yield from serve(settings, tmp_path)


def share_purchase(settings, user: User, *, image: str | None = None) -> str:
    """A published purchase of `user` with one approved item; its public path."""
    from datetime import date
    from decimal import Decimal

    from purchaseshare.clock import utcnow
    from purchaseshare.models import Purchase, PurchaseItem

    with session_scope(settings) as session:
        purchase = Purchase(user_id=user.id, merchant_name="Shop", merchant_domain="shop.test", order_number="A-1",
                            order_date=date(2024, 3, 1), currency="EUR", total=Decimal("10.00"),
                            review="reviewed", published_at=utcnow())
        session.add(purchase)
        session.flush()
        session.add(PurchaseItem(purchase_id=purchase.id, position=0, name="Mug", unit_price=Decimal("10.00"),
                                 approved=True, approved_at=utcnow(), image=image))
        session.commit()
        return f"/u/{user.handle}/p/{purchase.public_id}"
