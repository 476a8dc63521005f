"""Memory and storage under attack (issue 11, points 6 and 13), against a real `purchaseshare serve`:
upload limits refused before the body is read, a per-user storage quota (upload and mail), exports
streamed and bounded, /settings/forwarding parsing nothing, and items per purchase capped. The
server's memory is read from /proc/<pid>/status (VmHWM: the peak resident size so far)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
import zipfile
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert
from sqlmodel import select as sql_select

from purchaseshare import pipeline
from purchaseshare.clock import utcnow
from purchaseshare.db import session_scope
from purchaseshare.models import Purchase, PurchaseItem, RawEmail, RawStatus, User
from tests.security.conftest import Site, csrf, post_form, serve

MB = 1024 * 1024


def peak_kb(pid: int) -> int:
    """The process's peak resident memory so far (kB)."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    assert found, status
    return int(found.group(1))


def email(subject: str, body_size: int = 0, *, sender: str = "shop@example.net", tag: str = "") -> bytes:
    """A plain email with a body of `body_size` bytes that does not compress much."""
    # Random bytes in base64, as attachments are sent: compresses to about 3/4, like real mail.
    body = base64.encodebytes(os.urandom(body_size * 3 // 4 + 3)).replace(b"\n", b"\r\n")[:body_size]
    return (f"From: {sender}\r\nTo: someone@example.org\r\nSubject: {subject}\r\n"
            f"Date: Mon, 14 Apr 2025 18:22:05 +0000\r\nMessage-ID: <{tag or os.urandom(8).hex()}@example.net>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n").encode() + body


def store_raws(site: Site, user: User, blobs: list[bytes], **fields) -> list[int]:
    """Raw emails stored directly (as a past IMAP fetch would have), already processed."""
    ids = []
    with session_scope(site.settings) as session:
        for blob in blobs:
            row = RawEmail(sha256=os.urandom(32).hex(), raw=blob, size=len(blob), user_id=user.id,
                           status=RawStatus.NOT_PURCHASE.value, processed_at=utcnow(), **fields)
            session.add(row)
            session.commit()
            ids.append(row.id)
    return ids


def signed_in(site: Site, handle: str, **kwargs) -> tuple[User, httpx.Client]:
    user = site.make_user(handle)
    client = site.client(**kwargs)
    site.log_in(client, handle)
    return user, client


def raw_post(site: Site, client: httpx.Client, headers: dict[str, str], body_chunks, *, wait: float):
    """POST /upload over a bare socket: returns (the server's answer, bytes of body sent). Before
    each chunk of the body it waits up to `wait` seconds for an answer, and stops sending once the
    server has answered (as an `Expect: 100-continue` client would)."""
    host, port = site.url.removeprefix("http://").split(":")
    cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    head = "".join(f"{name}: {value}\r\n" for name, value in {
        "Host": f"{host}:{port}", "Cookie": cookie, "Accept": "text/html", **headers}.items())
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(f"POST /upload HTTP/1.1\r\n{head}\r\n".encode())
        try:
            for chunk in body_chunks:
                if select.select([conn], [], [], wait)[0]:
                    break  # the server answered: an attacker's client would see it now
                conn.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection on a body it refused
        answer = b""
        conn.settimeout(10)
        try:
            while not _complete(answer):
                part = conn.recv(65536)
                if not part:
                    break
                answer += part
        except (ConnectionResetError, TimeoutError):
            pass
    return answer.decode("latin-1"), sent


def _complete(answer: bytes) -> bool:
    head, found, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"content-length: (\d+)", head, re.I)
    return bool(found and length and len(body) >= int(length.group(1)))


# --- uploads: per-request limits ---------------------------------------------------------------


@pytest.fixture
def small_site(settings, tmp_path):
    """The server with a small upload limit (8 MB a request) and quota (1 MB a user)."""
    yield from serve(settings, tmp_path, env={"PURCHASESHARE_UPLOAD_MAX_MB": "8", "PURCHASESHARE_USER_QUOTA_MB": "1"})


def test_an_oversized_upload_is_refused_before_its_body_is_read(small_site):
    site = small_site
    _, client = signed_in(site, "mallory")
    token = csrf(client, "/upload")
    client.get("/upload")
    before = peak_kb(site.process.pid)
    boundary = "xXxBOUNDARYxXx"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{token}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.eml\"\r\n"
            "Content-Type: message/rfc822\r\n\r\n").encode()
    total = 40 * MB

    def body():
        yield head
        for _ in range(total // MB):
            yield b"x" * MB

    # Content-Length says 40 MB: the answer comes before the body is sent at all.
    answer, sent = raw_post(site, client, {"Content-Type": f"multipart/form-data; boundary={boundary}",
                                           "Content-Length": str(len(head) + total)}, body(), wait=2)
    assert answer.startswith("HTTP/1.1 413"), answer[:300]
    assert "at most 8 MB in one request" in answer
    assert sent == 0

    # Chunked, no length given: refused once 8 MB are read, not after 40.
    def chunked():
        for chunk in body():
            yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        yield b"0\r\n\r\n"

    answer, sent = raw_post(site, client, {"Content-Type": f"multipart/form-data; boundary={boundary}",
                                           "Transfer-Encoding": "chunked"}, chunked(), wait=0.02)
    assert answer.startswith("HTTP/1.1 413"), answer[:300]
    assert 8 * MB < sent < 16 * MB, sent  # read up to the limit, then refused: not the 40 MB
    growth = peak_kb(site.process.pid) - before
    assert growth < 16 * 1024, f"server peak memory grew {growth} kB"
    assert site.process.poll() is None and client.get("/healthz").status_code == 200

    # Too many files in one form: a clear 413, nothing stored.
    files = [("files", (f"f{n}.eml", email(f"n{n}"), "message/rfc822")) for n in range(11)]
    response = post_form(client, "/upload", files=files, page="/upload")
    assert response.status_code == 413 and "at most 10 in one upload" in response.text
    with session_scope(site.settings) as session:
        assert session.exec(sql_select(RawEmail)).all() == []


def test_a_user_over_quota_is_refused_on_upload_and_mail_for_them_fails_visibly(small_site, tmp_path):
    site = small_site
    user, client = signed_in(site, "hoarder")
    first = post_form(client, "/upload", files=[("files", ("a.eml", email("first", 600_000), "message/rfc822"))],
                      page="/upload")
    assert first.status_code == 200 and "queued" in first.text
    second = post_form(client, "/upload", files=[("files", ("b.eml", email("second", 600_000), "message/rfc822"))],
                       page="/upload")
    assert second.status_code == 400 and "over your storage quota" in second.text and "of 1 MB used" in second.text
    assert "Your stored emails: 0.6 of 1 MB." in client.get("/upload").text

    # Mail for them (here through `ingest`, the same path as IMAP) over the quota: kept as a failed
    # row with the reason, without its bytes, and shown on their emails page.
    mail = tmp_path / "third.eml"
    mail.write_bytes(email("third over quota", 600_000))
    env = {**os.environ, "PURCHASESHARE_USER_QUOTA_MB": "1"}
    result = subprocess.run([str(Path(sys.executable).with_name("purchaseshare")), "ingest", str(mail),
                             "--user", "hoarder"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "failed" in result.stdout and "over your storage quota" in result.stdout
    with session_scope(site.settings) as session:
        rows = session.exec(sql_select(RawEmail).where(RawEmail.user_id == user.id)).all()
        third = next(row for row in rows if row.subject == "third over quota")
        assert third.status == RawStatus.FAILED.value and third.raw is None and third.raw_purged_at is not None
        assert sum(row.size for row in rows if row.raw is not None) <= MB
    page = client.get("/emails", headers={"accept": "text/html"}).text
    assert "third over quota" in page and "over your storage quota" in page


# --- export -----------------------------------------------------------------------------------


def test_export_is_streamed_with_memory_bounded_below_the_data(site):
    user, client = signed_in(site, "archivist")
    blobs = [email(f"mail {n}", 4 * MB) for n in range(8)]  # 32 MB of mail
    ids = store_raws(site, user, blobs)
    client.get("/settings")
    before = peak_kb(site.process.pid)
    chunks = 0
    data = io.BytesIO()
    with client.stream("GET", "/settings/export") as response:
        assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
        assert "content-length" not in response.headers  # written as it is read, not built first
        for chunk in response.iter_raw():
            chunks += 1
            data.write(chunk)
    growth = peak_kb(site.process.pid) - before
    assert chunks >= len(blobs)
    archive = zipfile.ZipFile(data)
    for raw_id, blob in zip(ids, blobs, strict=True):
        assert archive.read(f"emails/{raw_id}.eml") == blob
    listed = json.loads(archive.read("raw_emails.json"))
    assert [row["id"] for row in listed] == ids and all("raw" not in row for row in listed)
    assert growth < 16 * 1024, f"server peak memory grew {growth} kB for 32 MB of mail"


def test_concurrent_exports_are_bounded_and_slots_come_back(site):
    # A slow reader: a small receive buffer, so the server cannot hand it the whole zip at once.
    def slow() -> dict:
        return {"transport": httpx.HTTPTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)])}

    accounts = [signed_in(site, f"user{n}", **(slow() if n < 2 else {})) for n in range(4)]
    for number, (user, _) in enumerate(accounts):  # the two read slowly: more than socket buffers hold
        store_raws(site, user, [email(f"{user.handle} {n}", 8 * MB if number < 2 else MB) for n in range(2)])
    before = peak_kb(site.process.pid)
    # Two exports at once are being read slowly; more wait for a slot.
    held = [client.stream("GET", "/settings/export") for _, client in accounts[:2]]
    streams = [stream.__enter__() for stream in held]
    assert [stream.status_code for stream in streams] == [200, 200]
    readers = [stream.iter_raw() for stream in streams]  # kept: dropping one closes its response
    for reader in readers:
        assert next(reader).startswith(b"PK")
    busy = [client.get("/settings/export") for _, client in accounts[2:]]
    assert [r.status_code for r in busy] == [503, 503] and all(r.headers["retry-after"] for r in busy)
    again = accounts[0][1].get("/settings/export", headers={"accept": "text/html"})  # one per user
    assert again.status_code == 503 and "try again in a minute" in again.text
    # One finishes; one is abandoned halfway: both slots are free again.
    rest = b"".join(readers[0])
    assert len(rest) > 10 * MB
    held[0].__exit__(None, None, None)
    held[1].__exit__(None, None, None)
    deadline = time.monotonic() + 10
    statuses = [0, 0]

    def fetch(index: int, client: httpx.Client) -> None:
        statuses[index] = client.get("/settings/export").status_code

    while time.monotonic() < deadline:  # two at once again, on the freed slots
        threads = [threading.Thread(target=fetch, args=(i, client)) for i, (_, client) in enumerate(accounts[2:])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if statuses == [200, 200]:
            break
        time.sleep(0.2)
    assert statuses == [200, 200]
    growth = peak_kb(site.process.pid) - before
    assert growth < 30 * 1024, f"server peak memory grew {growth} kB for 34 MB of mail in 4 accounts"


# --- /settings/forwarding ------------------------------------------------------------------------


GMAIL = ("From: Gmail Team <forwarding-noreply@google.com>\r\nTo: receipts+{token}@purchaseshare.test\r\n"
         "Subject: (#{code}) Gmail Forwarding Confirmation - Receive Mail from alice@gmail.com\r\n"
         "Date: Mon, 14 Apr 2025 18:22:05 +0000\r\nMessage-ID: <{code}@google.com>\r\n"
         "Content-Type: text/plain; charset=utf-8\r\n\r\nalice@gmail.com has requested to automatically forward mail.\r\n"
         "To allow it, click the link below:\r\n\r\nhttps://mail-settings.google.com/mail/vf-%5B{code}%5D\r\n")


def test_forwarding_page_parses_nothing_however_big_the_stored_email(site):
    user, client = signed_in(site, "forwarder")
    # A real confirmation: the worker reads its link once, when it processes it.
    small = GMAIL.format(token=user.forwarding_token, code="123456789").encode()
    response = post_form(client, "/upload", files=[("files", ("g.eml", small, "message/rfc822"))], page="/upload")
    assert response.status_code == 200
    deadline = time.monotonic() + 20
    while "vf-%5B123456789%5D" not in (page := client.get("/settings/forwarding").text):
        assert time.monotonic() < deadline, page[-2000:]
        time.sleep(0.2)
    assert "123456789" in page
    # A 20 MB one from the same sender, stored since: each view reads two columns, nothing more.
    big = GMAIL.format(token=user.forwarding_token, code="987654321").encode() + b"x" * (20 * MB)
    store_raws(site, user, [big], from_addr="forwarding-noreply@google.com",
               subject="(#987654321) Gmail Forwarding Confirmation")
    client.get("/settings/forwarding")
    before = peak_kb(site.process.pid)
    for _ in range(5):
        started = time.monotonic()
        page = client.get("/settings/forwarding", headers={"accept": "text/html"})
        assert page.status_code == 200 and "987654321" in page.text
        assert time.monotonic() - started < 1.5
    growth = peak_kb(site.process.pid) - before
    assert growth < 8 * 1024, f"server peak memory grew {growth} kB over 5 views"


# --- items per purchase -------------------------------------------------------------------------


def _order_with_items(count: int) -> bytes:
    rows = "".join(f"<tr><td>Pencil number {n}</td><td>1</td><td>&pound;1.00</td><td>&pound;1.00</td></tr>\n"
                   for n in range(count))
    return ("From: Wrenfield Books <orders@wrenfield-books.co.uk>\r\nTo: a@example.org\r\n"
            "Subject: Thank you for your order WB-4812\r\nDate: Mon, 14 Apr 2025 18:22:05 +0100\r\n"
            "Message-ID: <wb-4812@mail.wrenfield-books.co.uk>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/html; charset=utf-8\r\n\r\n"
            "<html><body><h1>Thank you for your order!</h1><table class=\"meta\"><tr><td>Order number:</td>"
            "<td>WB-4812</td></tr></table><table class=\"items\"><tr><th>Item</th><th>Qty</th><th>Price</th>"
            f"<th>Total</th></tr>\n{rows}</table><table><tr><td><strong>Order total</strong></td>"
            f"<td><strong>&pound;{count}.00</strong></td></tr></table></body></html>").encode()


def test_the_pipeline_keeps_at_most_max_items_with_a_warning():
    capped = pipeline.run(_order_with_items(pipeline.MAX_ITEMS + 50))
    assert capped.status == "purchase" and len(capped.items) == pipeline.MAX_ITEMS
    assert f"only the first {pipeline.MAX_ITEMS} of {pipeline.MAX_ITEMS + 50} items were kept" in capped.warnings
    assert [item.name for item in capped.items[:2]] == ["Pencil number 0", "Pencil number 1"]
    whole = pipeline.run(_order_with_items(pipeline.MAX_ITEMS))
    assert len(whole.items) == pipeline.MAX_ITEMS and not any("were kept" in w for w in whole.warnings)


def test_a_purchase_with_20000_items_renders_small_pages_and_takes_no_more(site):
    user, client = signed_in(site, "shopper")
    with session_scope(site.settings) as session:
        purchase = Purchase(user_id=user.id, merchant_name="Pencils Ltd", order_date=date(2025, 4, 14),
                            currency="GBP", total=Decimal("20000.00"), review="reviewed", published_at=utcnow())
        session.add(purchase)
        session.commit()
        session.execute(insert(PurchaseItem), [
            {"purchase_id": purchase.id, "position": n, "name": f"Pencil number {n}", "quantity": 1,
             "approved": True, "approved_at": utcnow()} for n in range(20_000)])
        session.commit()
        purchase_id, public_id = purchase.id, purchase.public_id
    cap = pipeline.MAX_ITEMS
    owner_page = client.get(f"/purchases/{purchase_id}", headers={"accept": "text/html"})
    assert owner_page.status_code == 200 and len(owner_page.content) < 1 * MB, len(owner_page.content)
    assert f"Pencil number {cap - 1}<" in owner_page.text and f"Pencil number {cap}<" not in owner_page.text
    assert f"This purchase has 20000 items; only the first {cap} are shown" in owner_page.text
    anonymous = site.client()
    for path in (f"/u/shopper/p/{public_id}", "/u/shopper", f"/api/v1/users/shopper/purchases/{public_id}",
                 "/u/shopper/feed.atom"):
        page = anonymous.get(path, headers={"accept": "text/html"})
        assert page.status_code == 200 and len(page.content) < 512 * 1024, (path, len(page.content))
        if path != "/u/shopper":  # the profile's card names a few items and links to the purchase page
            assert f"Pencil number {cap - 1}" in page.text, path
        assert f"Pencil number {cap}\"" not in page.text and f"Pencil number {cap}<" not in page.text, path
    # The owner cannot add a 20 001st; the manual entry form takes at most MAX_ITEMS lines.
    added = post_form(client, f"/purchases/{purchase_id}/add-item", {"name": "One more", "quantity": "1"},
                      page=f"/purchases/{purchase_id}")
    assert added.status_code == 400 and f"a purchase holds at most {cap} items" in added.text
    lines = "\n".join(f"Pencil {n}" for n in range(cap + 1))
    manual = post_form(client, "/purchases/new", {"merchant_name": "Pencils", "items": lines, "currency": "GBP"},
                       page="/purchases/new")
    assert manual.status_code == 400 and f"at most {cap} lines" in manual.text


# --- a large email's memory after its parse ----------------------------------------------------------

_PARSE_AND_MEASURE = """
import re, sys
from purchaseshare import memory, pipeline

def resident_mb():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) // 1024

words = ["thank", "you", "for", "shopping", "with", "us", "lorem", "ipsum", "$12.50"]
line = " ".join(words[n % len(words)] for n in range(39 * 2**20 // 10 // 6))
raw = ("From: shop@example.net\\r\\nTo: a@example.org\\r\\nSubject: Your order\\r\\nMessage-ID: <x@y>\\r\\n"
       "Content-Type: text/plain; charset=utf-8\\r\\n\\r\\n" + line + "\\r\\n").encode()
before = resident_mb()
result = pipeline.run(raw)
parsed = resident_mb()
memory.give_back(len(raw))
print(before, parsed, resident_mb(), result.status)
"""


def test_a_large_email_parse_gives_its_memory_back():
    """What a worker (the web process's own, without Redis) keeps after reading a 3.9 MB email of
    one text line (under parsers.bounded.TRIM_ABOVE: decoded whole, then its first and last
    characters read; its layout splits them into words, about the most a bounded parse holds):
    the parse's garbage goes back to the system instead of staying resident."""
    run = subprocess.run([sys.executable, "-c", _PARSE_AND_MEASURE], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    before, parsed, after, status = run.stdout.split()
    assert status in ("unparsed", "not_purchase")
    assert int(parsed) - int(before) > 8, run.stdout  # the parse did hold memory
    assert int(after) - int(before) < 5, run.stdout  # and gave it back


def test_migration_0006_reads_the_link_of_confirmations_already_stored(settings):
    """Existing rows are migrated: a confirmation received before 0006 shows its link after it."""
    from alembic import command
    from sqlalchemy import text

    from purchaseshare.db import alembic_config, get_engine

    engine = get_engine(settings)
    command.downgrade(alembic_config(engine), "0005")
    small = GMAIL.format(token="tok", code="555666777").encode()
    with engine.begin() as conn:
        for sha, raw in (("a" * 64, small), ("b" * 64, small + b"x" * (2 * MB))):  # the big one is no confirmation
            conn.execute(text("INSERT INTO raw_email (sha256, dedup_scope, raw, size, source, from_addr, status, "
                              "attempts, received_at) VALUES (:sha, 'inbox', :raw, :size, '', 'forwarding-noreply@google.com', "
                              "'not_purchase', 0, :now)"), {"sha": sha, "raw": raw, "size": len(raw), "now": utcnow()})
    command.upgrade(alembic_config(engine), "head")
    with session_scope(settings) as session:
        urls = dict(session.exec(sql_select(RawEmail.sha256, RawEmail.confirm_url)).all())
    assert urls == {"a" * 64: "https://mail-settings.google.com/mail/vf-%5B555666777%5D", "b" * 64: None}
