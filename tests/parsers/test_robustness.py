"""Bad input never escapes as an exception: every email yields a status and a reason.

The pipeline's promise (purchaseshare.pipeline.run): whatever the bytes, a ParseResult
whose status is purchase / not_purchase / unparsed / error, with `error` set for an
error and `reason` (or `error`) set for anything that is not a purchase. Checked on
arbitrary bytes, on mutated real emails (bit flips, truncation, spliced headers of the
fixtures and, when present, of ../shared/corpus), on empty / binary / huge / deeply
nested input, broken charsets and transfer encodings, missing MIME boundaries and
pathological HTML - with bounded time and memory.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import textwrap
import time
import zipfile
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from purchaseshare.pipeline import ParseResult, parse_file, run
from tests.helpers import CORPUS, FIXTURES, ROOT

STATUSES = ("purchase", "not_purchase", "unparsed", "error")
MAX_SEED_BYTES = 200_000  # mutating bigger seeds only slows the run down
SLOW = 15.0  # seconds: far above any real email, far below a hang (the machine may be loaded)

HYPOTHESIS = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def assert_sound(result: ParseResult) -> None:
    """A status and a reason; the CONTRACT object serialises."""
    assert isinstance(result, ParseResult)
    assert result.status in STATUSES, result.status
    if result.status == "error":
        assert result.error, "an error needs an error message"
    elif result.status == "purchase":
        assert result.items or result.total is not None
    else:
        assert result.reason or result.error, f"{result.status} without a reason"
    data = result.to_json()
    assert data["status"] == result.status
    json.dumps(data, ensure_ascii=False)


def timed_run(raw: bytes) -> tuple[ParseResult, float]:
    start = time.monotonic()
    result = run(raw, source="test")
    return result, time.monotonic() - start


# --- seeds for mutation ------------------------------------------------------------------------
def _email_files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and p.suffix in (".eml", ".html", ".txt", ".htm", "")
                  and p.name not in ("MANIFEST.tsv", "README.md") and 0 < p.stat().st_size <= MAX_SEED_BYTES)


@cache
def seeds(source: str) -> tuple[bytes, ...]:
    root = FIXTURES if source == "fixtures" else CORPUS
    return tuple(p.read_bytes() for p in _email_files(root))


@pytest.fixture(scope="module", params=["fixtures", "corpus"])
def seed_pool(request) -> tuple[bytes, ...]:
    pool = seeds(request.param)
    if not pool:
        pytest.skip(f"no {request.param} emails found ({FIXTURES if request.param == 'fixtures' else CORPUS})")
    return pool


def header_block(raw: bytes) -> list[bytes]:
    head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    return head.split(b"\n")[:60]


# --- arbitrary bytes -------------------------------------------------------------------------
MIME_TOKENS = [
    b"From: ", b"To: ", b"Subject: ", b"Date: ", b"Message-ID: <", b">", b"MIME-Version: 1.0",
    b"Content-Type: multipart/mixed; boundary=\"b\"", b"Content-Type: text/html; charset=utf-8",
    b"Content-Type: text/plain; charset=\"x-bogus\"", b"Content-Type: message/rfc822",
    b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: quoted-printable",
    b"--b", b"--b--", b"\r\n", b"\n", b"\n\n", b" ", b"=?utf-8?B?", b"=?iso-8859-1?Q?", b"?=", b"=3D", b"=\n",
    b"<html>", b"<div>", b"</div>", b"<table><tr><td>", b"<script>", b"</script>", b"schema.org",
    b"---------- Forwarded message ---------", b"Begin forwarded message:", b"> ", b"Order Total: $12.34",
    b"Qty 2", b"\xc3\xa9", b"\xe9", b"\xff\xfe", b"\x00", b"orders@amazon.com", b"@", b"|",
]
mime_soup = st.lists(st.one_of(st.sampled_from(MIME_TOKENS), st.binary(max_size=12)), max_size=80).map(b"".join)


@settings(HYPOTHESIS, max_examples=200)
@given(st.one_of(st.binary(max_size=4096), mime_soup, st.text(max_size=2000).map(lambda s: s.encode("utf-8"))))
def test_arbitrary_bytes_yield_a_status(raw):
    assert_sound(run(raw))


# --- mutated real emails ---------------------------------------------------------------------
@settings(HYPOTHESIS, max_examples=60)
@given(data=st.data())
def test_bit_flips(seed_pool, data):
    raw = bytearray(data.draw(st.sampled_from(seed_pool), label="seed"))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 7)), min_size=1, max_size=24))
    for index, bit in flips:
        raw[index] ^= 1 << bit
    assert_sound(run(bytes(raw)))


@settings(HYPOTHESIS, max_examples=60)
@given(data=st.data())
def test_truncation(seed_pool, data):
    raw = data.draw(st.sampled_from(seed_pool), label="seed")
    end = data.draw(st.integers(0, len(raw)), label="end")
    if data.draw(st.booleans(), label="cut a hole"):
        start = data.draw(st.integers(0, end), label="start")
        mutated = raw[:start] + raw[end:]  # a lost chunk in the middle (a broken transfer)
    else:
        mutated = raw[:end]
    assert_sound(run(mutated))


@settings(HYPOTHESIS, max_examples=60)
@given(data=st.data())
def test_spliced_headers(seed_pool, data):
    donor = header_block(data.draw(st.sampled_from(seed_pool), label="donor"))
    host = data.draw(st.sampled_from(seed_pool), label="host")
    lines = host.split(b"\n")
    taken = data.draw(st.lists(st.sampled_from(donor), min_size=1, max_size=12), label="header lines")
    if data.draw(st.booleans(), label="replace the head"):
        body = host.replace(b"\r\n", b"\n").split(b"\n\n", 1)[-1]
        mutated = b"\n".join(taken) + b"\n\n" + body
    else:
        at = data.draw(st.integers(0, len(lines)), label="at line")
        mutated = b"\n".join(lines[:at] + taken + lines[at:])
    assert_sound(run(mutated))


# --- empty, blank and binary input -----------------------------------------------------------
def _png() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    pixels = zlib.compress(b"".join(b"\x00" + bytes(range(48)) for _ in range(16)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("order.eml", "From: a@b.example\nSubject: Your order\n\nOrder Total: $1.00\n" * 50)
        archive.writestr("blob.bin", os.urandom(4096))
    return buffer.getvalue()


@pytest.mark.parametrize("raw", [b"", b" ", b"\r\n\r\n", b" \t\n\x0b\x0c\r\n" * 100], ids=["empty", "space", "crlf", "blank"])
def test_empty_and_blank_input_is_an_error(raw):
    result = run(raw)
    assert_sound(result)
    assert result.status == "error"
    assert "empty" in result.error


@pytest.mark.parametrize("make", [_png, _zip, lambda: os.urandom(50_000), lambda: b"\x00" * 10_000],
                         ids=["png", "zip", "random", "nul"])
def test_binary_garbage_is_refused(make):
    result = run(make())
    assert_sound(result)
    assert result.status == "error"
    assert "binary" in result.error


def test_high_bytes_without_control_characters_are_read_as_a_body():
    raw = bytes(range(0x80, 0x100)) * 200  # no control bytes: not refused, read as a cp1252 body
    result = run(raw)
    assert_sound(result)
    assert result.status != "purchase"


def test_empty_file_and_unreadable_paths(tmp_path):
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    for path in (empty, tmp_path / "missing.eml", tmp_path):
        result = parse_file(str(path))
        assert_sound(result)
        assert result.status == "error"
        assert result.source == str(path)


# --- a 25 MB email: bounded time and memory ----------------------------------------------------
HTML_ORDER = """<html><body><h1>Thank you for your order</h1>
<table><tr><td>Widget deluxe</td><td>$10.00</td></tr><tr><td>Order Total</td><td>$10.00</td></tr></table>
</body></html>"""

_PEAK_SCRIPT = textwrap.dedent("""
    import json, resource, sys, time
    from purchaseshare.pipeline import run
    raw = open(sys.argv[1], "rb").read()
    run(b"From: a@b.example\\nSubject: warm up\\n\\nhello")  # lazy imports and caches first
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    result = run(raw)
    print(json.dumps({"status": result.status, "error": result.error, "seconds": time.monotonic() - start,
                      "before_kb": before, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
""")


def big_email(size: int) -> bytes:
    """An order with several big base64 attachments (scans, PDFs), about `size` bytes."""
    block = os.urandom(1 << 20)
    attachments = []
    per_file = size * 3 // 4 // 4
    for index in range(4):
        data = (block * (per_file // len(block) + 1))[:per_file]
        attachments.append(
            f"--mix\r\nContent-Type: application/pdf; name=\"scan{index}.pdf\"\r\n"
            f"Content-Disposition: attachment; filename=\"scan{index}.pdf\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n".encode()
            + base64.encodebytes(data).replace(b"\n", b"\r\n"))
    head = ("From: Shop <orders@shop.example>\r\nTo: me@example.org\r\nSubject: Your order confirmation\r\n"
            "Date: Tue, 07 May 2019 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n"
            "--mix\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + HTML_ORDER + "\r\n").encode()
    return head + b"".join(attachments) + b"--mix--\r\n"


def test_25mb_email_with_attachments_has_bounded_memory_and_time(tmp_path):
    raw = big_email(25 * 1024 * 1024)
    path = tmp_path / "big.eml"
    path.write_bytes(raw)
    # A fresh process: ru_maxrss is a high-water mark, so other tests must not have raised it.
    done = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(path)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, check=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["status"] in ("purchase", "unparsed"), figures
    assert figures["seconds"] < 30, figures
    grown = (figures["peak_kb"] - figures["before_kb"]) * 1024
    assert grown < 8 * len(raw), f"pipeline peak {grown / len(raw):.1f}x the input size"


# --- deep forwards -----------------------------------------------------------------------------
def nested_forward(depth: int) -> bytes:
    message = (b"From: Shop <orders@shop.example>\r\nSubject: Your order confirmation\r\n"
               b"Date: Tue, 07 May 2019 10:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
               b"Thank you for your order.\r\nWidget | $10.00\r\nOrder Total: $10.00\r\n")
    for level in range(depth):
        boundary = f"level{level}".encode()
        message = (f"From: friend{level}@example.org\r\nSubject: Fwd: Your order confirmation\r\n"
                   f"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"level{level}\"\r\n\r\n".encode()
                   + b"--" + boundary + b"\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
                   + b"--" + boundary + b"\r\nContent-Type: message/rfc822\r\n\r\n" + message + b"\r\n"
                   + b"--" + boundary + b"--\r\n")
    return message


def test_forward_nested_50_deep_gives_a_status_and_a_warning():
    result, seconds = timed_run(nested_forward(50))
    assert_sound(result)
    assert seconds < SLOW
    assert result.status != "error", result.error
    assert result.forwarded
    assert result.forwarded_by == "friend49@example.org"
    assert any("nested" in warning for warning in result.warnings), result.warnings


def test_inline_forwards_nested_deep_terminate():
    text = "Thank you for your order.\nOrder Total: $10.00\n"
    for level in range(60):
        text = (f"---------- Forwarded message ---------\nFrom: Friend {level} <friend{level}@example.org>\n"
                f"Date: Tue, 7 May 2019 at 10:{level % 60:02d}\nSubject: Fwd: Your order confirmation\n"
                f"To: me@example.org\n\n" + "\n".join("> " + line for line in text.split("\n")))
    raw = ("From: me@example.org\nSubject: Fwd: Your order confirmation\nContent-Type: text/plain\n\n" + text).encode()
    result, seconds = timed_run(raw)
    assert_sound(result)
    assert seconds < SLOW
    assert result.forwarded


# --- broken charsets, transfer encodings, MIME structure ----------------------------------------
HEAD = "From: Shop <orders@shop.example>\r\nTo: me@example.org\r\nSubject: Your order confirmation\r\n" \
       "Date: Tue, 07 May 2019 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
BODY = "Thank you for your order.\r\nWidget \u00e9l\u00e9gant | $10.00\r\nOrder Total: $10.00\r\n"
B64_HTML = base64.encodebytes(HTML_ORDER.encode()).decode()

BROKEN = {
    "unknown charset": f"{HEAD}Content-Type: text/plain; charset=\"x-no-such-charset\"\r\n\r\n{BODY}".encode(),
    "empty charset": f"{HEAD}Content-Type: text/plain; charset=\r\n\r\n{BODY}".encode(),
    "utf-8 declared, latin-1 sent": f"{HEAD}Content-Type: text/plain; charset=utf-8\r\n\r\n".encode()
        + BODY.encode("latin-1"),
    "utf-16 declared, ascii sent": f"{HEAD}Content-Type: text/plain; charset=utf-16\r\n\r\n{BODY}".encode(),
    "ascii declared, utf-8 sent": f"{HEAD}Content-Type: text/plain; charset=us-ascii\r\n\r\n{BODY}".encode(),
    "html meta charset contradicts": f"{HEAD}Content-Type: text/html; charset=utf-8\r\n\r\n"
        "<html><head><meta charset=\"shift_jis\"></head><body>Order Total: \u20ac10.00 \u00e9t\u00e9</body></html>"
        .encode(),
    "unknown charset in encoded word": HEAD.replace("Subject: Your order confirmation",
        "Subject: =?x-unknown-9?Q?Your_order_confirmation?=").encode()
        + f"Content-Type: text/plain\r\n\r\n{BODY}".encode(),
    "broken encoded word": HEAD.replace("Subject: Your order confirmation",
        "Subject: =?utf-8?B?!!notbase64=?= order").encode() + f"Content-Type: text/plain\r\n\r\n{BODY}".encode(),
    "broken base64": f"{HEAD}Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        f"{B64_HTML[:40]}!!!*** not base64 ***{B64_HTML[40:-5]}".encode(),
    "base64 bad padding": f"{HEAD}Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        f"{B64_HTML.strip().rstrip('=')}=\r\n".encode(),
    "base64 of binary in a text part": f"{HEAD}Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n".encode() + base64.encodebytes(os.urandom(3000)),
    "broken quoted-printable": f"{HEAD}Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: quoted-printable\r\n\r\nOrder =ZZ Total=3: $10.00 =\r\n=E9=\r\n".encode(),
    "unknown transfer encoding": f"{HEAD}Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode-9\r\n\r\n{BODY}"
        .encode(),
    "multipart without boundary": f"{HEAD}Content-Type: multipart/alternative\r\n\r\n--x\r\n"
        f"Content-Type: text/plain\r\n\r\n{BODY}\r\n--x--\r\n".encode(),
    "boundary never used": f"{HEAD}Content-Type: multipart/mixed; boundary=\"absent\"\r\n\r\n{BODY}".encode(),
    "no closing boundary": f"{HEAD}Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"
        f"Content-Type: text/html\r\n\r\n{HTML_ORDER}\r\n--b\r\nContent-Type: text/plain\r\n\r\n{BODY}".encode(),
    "mismatched nested boundaries": f"{HEAD}Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n--outer\r\n"
        "Content-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n--inner\r\nContent-Type: text/plain\r\n\r\n"
        f"{BODY}\r\n--outer--\r\n--inner--\r\n".encode(),
    "garbage content type": f"{HEAD}Content-Type: tex t/ht;;ml; charset==\"\r\n\r\n{BODY}".encode(),
    "message/rfc822 holding garbage": f"{HEAD}Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"
        "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!\r\n--b--\r\n".encode(),
    "no header/body separator": (HEAD + "Content-Type: text/plain\r\n" + BODY).encode(),
    "nul bytes in the body": f"{HEAD}Content-Type: text/plain\r\n\r\n".encode() + b"x" * 2000
        + b"Order\x00 Total: $10.00\x00\r\n",
}


@pytest.mark.parametrize("raw", BROKEN.values(), ids=BROKEN.keys())
def test_broken_charsets_encodings_and_structure(raw):
    result, seconds = timed_run(raw)
    assert_sound(result)
    assert seconds < SLOW
    assert result.status != "error", result.error  # readable enough: the headers are intact


# --- pathological HTML -----------------------------------------------------------------------
def html_email(html: str) -> bytes:
    return f"{HEAD}Content-Type: text/html; charset=utf-8\r\n\r\n{html}".encode()


PATHOLOGICAL_HTML = {
    "100k nested divs": "<html><body>" + "<div>x" * 100_000 + "</div>" * 100_000 + HTML_ORDER + "</body></html>",
    "100k unclosed cells": "<html><body><p>Order Total: $10.00</p>" + "<table><tr><td>cell" * 100_000,
    "deep microdata": "<html><body>" + '<div itemscope itemtype="https://schema.org/Order">' * 20_000
        + "</div>" * 20_000 + "</body></html>",
    "deep JSON-LD": '<html><head><script type="application/ld+json">' + '{"@context":"https://schema.org","a":' * 5000
        + "1" + "}" * 5000 + "</script></head><body>Order Total: $10.00</body></html>",
    "deep JSON-LD arrays": '<html><head><script type="application/ld+json">' + "[" * 100_000 + "]" * 100_000
        + "</script></head><body>schema.org Order Total: $10.00</body></html>",
    "900 deep JSON-LD": '<html><head><script type="application/ld+json">' + '{"@type":"Order","a":' * 900 + "1"
        + "}" * 900 + "</script></head><body>schema.org Order Total: $10.00</body></html>",
    "scripts everywhere": "<html><body>" + "<script>var s = '</div><td>Order Total: $99.00</td>';</script><p>x</p>" * 20_000
        + HTML_ORDER + "</body></html>",
    "megabytes of one line": "<html><body><p>" + "Order Total $10.00 " * 150_000 + "</p></body></html>",
}


@pytest.mark.parametrize("html", PATHOLOGICAL_HTML.values(), ids=PATHOLOGICAL_HTML.keys())
def test_pathological_html_has_bounded_time(html):
    for raw in (html_email(html), html.encode()):  # in an email, and as a bare .html body
        result, seconds = timed_run(raw)
        assert_sound(result)
        assert seconds < SLOW, f"{seconds:.1f}s"
        assert result.status != "error", result.error  # deep markup is skipped, not fatal


def test_unreadable_json_ld_is_skipped_with_a_warning():
    html = PATHOLOGICAL_HTML["deep JSON-LD"]
    result = run(html_email(html))
    assert_sound(result)
    assert result.status == "purchase" and result.total is not None
    assert any("JSON-LD" in warning for warning in result.warnings), result.warnings
