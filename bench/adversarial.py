"""Crafted emails that try to make one parse cost minutes or gigabytes (issue 17).

`python -m bench.parse --adversarial` builds each shape below, writes it to a file and parses
it in a FRESH subprocess, so the peak RSS (VmHWM) is that one email's: the child first parses
a small order (imports, lazy caches: the baseline), then the shape; growth = peak - baseline.
Targets: every shape under 2 s and growth at most 3x the email's size. A first line shows a
normal 20-item order for reference: any parse grows the process by ~0.1-0.2 MB however small the
email (fresh pages for its objects, the C stack a deep tree's walk touches), so for a shape of
tens of kB the ratio measures that floor; the JSON adds "worst_rss_ratio_from_4mb" (shapes of
4 MB and more) and "max_rss_growth_mb".
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

MB = 1024 * 1024
TARGET_S = 2.0
TARGET_RATIO = 3.0

_WORDS = ("linen", "shirt", "blue", "cotton", "lamp", "walnut", "desk", "mug", "ceramic", "socks",
          "wool", "green", "kettle", "steel", "pillow", "frame", "oak", "candle", "rug", "jute")


def _headers(subject: str = "Your order #A12345 is confirmed") -> str:
    return ("From: Shop <orders@shop.example>\r\nTo: sam@example.org\r\n"
            f"Subject: {subject}\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
            "Message-ID: <adv-1@shop.example>\r\nMIME-Version: 1.0\r\n")


def html_email(html: str, subject: str = "Your order #A12345 is confirmed") -> bytes:
    """One text/html part, 8bit (no transfer encoding: the body is the size it says)."""
    return (_headers(subject) + "Content-Type: text/html; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + html.encode()


def _name(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(3)).capitalize()


def _totals(total: str) -> str:
    return (f"<table><tr><td>Subtotal</td><td>${total}</td></tr><tr><td>Shipping</td><td>$0.00</td></tr>"
            f"<tr><td><b>Total</b></td><td><b>${total}</b></td></tr></table>")


def item_table(rows: int, seed: int = 1) -> bytes:
    """An order whose item table has `rows` rows (name link, quantity, price)."""
    rng = random.Random(seed)
    out = ["<html><body><h1>Thank you for your order</h1><p>Order number: A12345</p><table>",
           "<tr><th>Item</th><th>Qty</th><th>Price</th></tr>"]
    cents = 0
    for _ in range(rows):  # ~57 bytes a row: 20 000 rows are 1.1 MB, 300 000 rows 17 MB
        price = rng.randint(100, 9999)
        cents += price
        out.append(f"<tr><td>{_name(rng)}</td><td>1</td><td>${price // 100}.{price % 100:02d}</td></tr>")
    out.append("</table>" + _totals(f"{cents // 100}.{cents % 100:02d}") + "</body></html>")
    return html_email("\n".join(out))


def small_order() -> bytes:
    """A normal order: the baseline every shape is compared with."""
    return item_table(3)


def big_attachment(size: int = 18 * MB) -> bytes:
    """A small order with a large binary attachment (base64: the email is ~4/3 of it bigger)."""
    message = EmailMessage()
    message["From"], message["To"] = "Shop <orders@shop.example>", "sam@example.org"
    message["Subject"], message["Date"] = "Your order #A12345", "Tue, 01 Dec 2026 10:00:00 +0000"
    message.set_content(item_table(3).split(b"\r\n\r\n", 1)[1].decode(), subtype="html")
    message.add_attachment(random.Random(2).randbytes(size), maintype="application", subtype="zip",
                           filename="photos.zip")
    return message.as_bytes()


def huge_html(size: int = 46 * MB) -> bytes:
    """Paragraphs of words and prices in nested divs until the body is `size` bytes."""
    rng = random.Random(3)
    chunk = "\n".join(f"<div class=\"c\"><p>{_name(rng)} and {_name(rng).lower()} for ${rng.randint(1, 99)}.{rng.randint(10, 99)}"
                      f"</p><span>{' '.join(rng.choice(_WORDS) for _ in range(12))}</span></div>" for _ in range(200))
    body = chunk * (size // len(chunk) + 1)
    return html_email("<html><body>" + body[:size] + _totals("12.00") + "</body></html>")


def nested_tables(depth: int = 1000, nests: int = 1) -> bytes:
    """`nests` item tables one after another, each inside `depth` nested tables."""
    inner = "<tr><td>Walnut desk lamp</td><td>$25.00</td></tr>"
    html = ("<table><tr><td>" * depth + f"<table>{inner}</table>" + "</td></tr></table>" * depth) * nests
    return html_email(f"<html><body>{html}{_totals('25.00')}</body></html>")


def many_links(links: int = 100_000) -> bytes:
    rng = random.Random(4)
    body = "\n".join(f'<a href="https://shop.example/l/{n}?u={rng.randint(0, 10**9)}">{_name(rng)}</a><br>'
                     for n in range(links))
    return html_email(f"<html><body>{body}{_totals('12.00')}</body></html>")


def one_line_text(size: int = 10 * MB) -> bytes:
    rng = random.Random(5)
    words = []
    length = 0
    while length < size:
        word = rng.choice(_WORDS) if rng.random() < 0.9 else f"${rng.randint(1, 999)}.{rng.randint(10, 99)}"
        words.append(word)
        length += len(word) + 1
    body = " ".join(words)[:size]
    return (_headers() + "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            ).encode() + body.encode() + b"\r\nTotal: $12.00\r\n"


def many_parts(parts: int = 5000) -> bytes:
    boundary = "b0undary"
    out = [_headers() + f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n']
    rng = random.Random(6)
    for number in range(parts):
        kind = number % 3
        if kind == 0:
            part = f"Content-Type: text/plain; charset=utf-8\r\n\r\n{_name(rng)} $1{number % 10}.00\r\n"
        elif kind == 1:
            part = f"Content-Type: text/html; charset=utf-8\r\n\r\n<p>{_name(rng)} <b>$2{number % 10}.00</b></p>\r\n"
        else:
            data = base64.encodebytes(rng.randbytes(300)).decode().replace("\n", "\r\n")
            part = (f'Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="f{number}.bin"'
                    f"\r\nContent-Transfer-Encoding: base64\r\n\r\n{data}")
        out.append(f"--{boundary}\r\n{part}")
    out.append(f"--{boundary}--\r\n")
    return "\r\n".join(out).encode()


def tiny_parts(size: int = 46 * MB) -> bytes:
    """A multipart email of empty parts, one delimiter line after another (~2 million parts)."""
    head = (_headers() + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
            "Content-Type: text/html\r\n\r\n<p>Walnut desk lamp $25.00</p><p>Total $25.00</p>\r\n").encode()
    return head + b"--b\r\n" * ((size - len(head)) // 5) + b"--b--\r\n"


def data_uri_image(size: int = 20 * MB) -> bytes:
    data = base64.b64encode(random.Random(7).randbytes(size * 3 // 4)).decode()
    html = (f'<html><body><h1>Your order</h1><img src="data:image/png;base64,{data}" alt="Walnut desk lamp">'
            f"<table><tr><td>Walnut desk lamp</td><td>$25.00</td></tr></table>{_totals('25.00')}</body></html>")
    return html_email(html)


SHAPES: dict[str, Callable[[], bytes]] = {
    "rows_20k": lambda: item_table(20_000),
    "rows_300k": lambda: item_table(300_000),
    "attachment_18mb": big_attachment,
    "html_46mb": huge_html,
    # 1 000 deep, repeated to ~1.3 MB like the other shapes: one such nest alone is 33 kB, where
    # the ratio measures a parse's fixed cost (it is printed as a reference line above the table).
    "nested_tables_1000": lambda: nested_tables(1000, nests=40),
    "links_100k": many_links,
    "text_line_10mb": one_line_text,
    "mime_parts_5000": many_parts,
    "empty_parts_46mb": tiny_parts,
    "data_uri_20mb": data_uri_image,
}


def _peak_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def child(path: str) -> None:
    """In the fresh subprocess: baseline on a small order, then the shape; one JSON line."""
    from purchaseshare.pipeline import run

    run(small_order(), source="baseline")
    run(small_order(), source="baseline")
    base = _peak_kb()
    raw = Path(path).read_bytes()
    start = time.perf_counter()
    result = run(raw, source=path)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "growth_kb": _peak_kb() - base, "status": result.status,
                      "items": len(result.items), "warnings": result.warnings, "error": result.error}))


def measure(name: str, raw: bytes, timeout: float) -> dict:
    with tempfile.NamedTemporaryFile(prefix=f"adv-{name}-", suffix=".eml", delete=False) as handle:
        handle.write(raw)
    try:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "bench.adversarial", handle.name], capture_output=True,
                              text=True, timeout=timeout, cwd=Path(__file__).resolve().parent.parent)
        if done.returncode != 0:
            return {"seconds": time.perf_counter() - started, "growth_kb": 0, "status": f"crashed ({done.returncode})",
                    "warnings": [done.stderr.strip()[-300:]]}
        return json.loads(done.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        return {"seconds": timeout, "growth_kb": 0, "status": f"killed after {timeout:.0f} s", "warnings": []}
    finally:
        os.unlink(handle.name)


LARGE = 4 * MB  # below this a parse's fixed cost (~3-30 MB: a tree, a layout) dwarfs the email's size


def _line(name: str, size: int, found: dict) -> str:
    caps = "; ".join(w for w in found.get("warnings") or [] if "MIME defect" not in w)[:140]
    return (f"{name:<20} {size / MB:>6.1f} {found['seconds']:>8.2f} {found['growth_kb'] / 1024:>8.1f} "
            f"{found['growth_kb'] * 1024 / size:>9.2f}  {found['status']} ({found.get('items', '-')}; {caps})")


def run_all(names: list[str] | None = None, timeout: float = 120.0) -> int:
    rows = []
    print(f"{'shape':<20} {'MB':>6} {'seconds':>8} {'RSS+ MB':>8} {'RSS+/size':>9}  status (items; warnings)")
    print("-" * 96)
    # What any email's fixed cost looks like: a normal 20-item order, and one 1 000-deep nest (33 kB).
    for label, reference in (("(normal 20 items)", item_table(20)), ("(one deep nest)", nested_tables(1000))):
        print(_line(label, len(reference), measure("reference", reference, timeout)), flush=True)
    for name in names or list(SHAPES):
        raw = SHAPES[name]()
        found = measure(name, raw, timeout)
        rows.append((name, found["seconds"], found["growth_kb"] * 1024 / len(raw), len(raw), found["growth_kb"]))
        print(_line(name, len(raw), found), flush=True)
    worst_s = max(rows, key=lambda r: r[1])
    worst_ratio = max(rows, key=lambda r: r[2])
    large = [r for r in rows if r[3] >= LARGE]
    print(json.dumps({"shapes": len(rows), "worst_s": round(worst_s[1], 3), "worst_s_shape": worst_s[0],
                      "worst_rss_ratio": round(worst_ratio[2], 3), "worst_rss_shape": worst_ratio[0],
                      "worst_rss_ratio_from_4mb": round(max((r[2] for r in large), default=0.0), 3),
                      "max_rss_growth_mb": round(max(r[4] for r in rows) / 1024, 1),
                      "meets_targets": worst_s[1] < TARGET_S and worst_ratio[2] <= TARGET_RATIO}))
    return 0


if __name__ == "__main__":
    child(sys.argv[1])
