"""The real services the later tests rely on start here and answer their protocol."""

from __future__ import annotations

import psycopg
import redis
from imapclient import IMAPClient


def test_redis_answers(redis_service):
    client = redis.Redis.from_url(redis_service.url)
    client.set("purchaseshare:probe", "1")
    assert client.get("purchaseshare:probe") == b"1"


def test_dovecot_takes_a_message(dovecot_service):
    with IMAPClient("127.0.0.1", port=dovecot_service.port, ssl=False) as imap:
        imap.login(dovecot_service.user, dovecot_service.password)
        imap.select_folder("INBOX")
        before = len(imap.search("ALL"))
        imap.append("INBOX", b"From: a@example.org\r\nSubject: probe\r\n\r\nhello\r\n")
        imap.select_folder("INBOX")
        assert len(imap.search("ALL")) == before + 1
        assert b"IDLE" in imap.capabilities()


def test_postgres_answers(postgres_service):
    url = postgres_service.create_database("probe").replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(url) as conn:
        assert conn.execute("select 1 + 1").fetchone() == (2,)


def test_chromium_renders_a_page(page, tmp_path):
    """Debian's Chromium through pytest-playwright (the same fixtures the browser tests use)."""
    page_file = tmp_path / "probe.html"
    page_file.write_text("<title>probe</title><button onclick=\"this.textContent='clicked'\">go</button>")
    page.goto(page_file.as_uri())
    page.click("button")
    assert page.text_content("button") == "clicked"
    assert "Chrome/" in page.evaluate("navigator.userAgent")
