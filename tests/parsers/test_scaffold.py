"""`purchaseshare new-merchant`: parser file, sorted registry lines, scrubbed fixture, draft golden.

Runs on a temporary copy of the code (parsers/ and purchaseshare/) so the real registry
is never touched; the new parser is checked in a fresh interpreter inside that copy.
"""

from __future__ import annotations

import email
import email.policy
import json
import quopri
import re
import shutil
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest
from typer.testing import CliRunner

from parsers.message import read_bare_body
from parsers.scaffold import ScaffoldError, add_to_registry, camel_case, scaffold, scrub_email
from purchaseshare.cli import app
from purchaseshare.pipeline import run
from tests.helpers import ROOT

# What the customer's email reveals: none of it may reach the fixture.
PLANTED = {
    "name": ["Philippa", "Quennell", "Philippa Quennell", "PHILIPPA QUENNELL"],
    "address": ["4417 Larkspur Avenue", "Apt 12B", "Brookhaven, OR 97035"],
    "phone": ["(503) 555-0148", "5035550148"],
    "card": ["6618"],
    "order number": ["LL-88213457"],
    "email": ["philippa.quennell@fastmail.com", "pq.forwarder@gmail.com", "philippa.quennell%40fastmail.com"],
}
MERCHANT_SENDER = "orders@lumen-lamp-works.com"

HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Order LL-88213457</title></head>
<body>
<p>---------- Forwarded message ---------<br>
From: Lumen Lamp Works &lt;orders@lumen-lamp-works.com&gt;<br>
Date: Tue, 4 Mar 2025 at 09:12<br>
Subject: Your Lumen Lamp Works order LL-88213457<br>
To: Philippa Quennell &lt;philippa.quennell@fastmail.com&gt;</p>
<h1>Thank you for your order!</h1>
<p>Hello Philippa,</p>
<p>We have received your order <b>LL-88213457</b>. Track it at
<a href="https://lumen-lamp-works.com/account/orders/LL-88213457?email=philippa.quennell%40fastmail.com">your account</a>.</p>
<table class="items">
<tr><th>Item</th><th>Qty</th><th>Price</th></tr>
<tr><td>Brass desk lamp</td><td>1</td><td>$89.00</td></tr>
<tr><td>Linen shade, ivory</td><td>2</td><td>$50.00</td></tr>
</table>
<table class="totals">
<tr><td>Subtotal</td><td>$139.00</td></tr>
<tr><td>Shipping</td><td>$9.50</td></tr>
<tr><td>Order Total</td><td>$148.50</td></tr>
</table>
<p>Paid with Visa ending in <span>6618</span></p>
<h3>Shipping address</h3>
<p>PHILIPPA QUENNELL<br>4417 Larkspur Avenue<br>Apt 12B<br>Brookhaven, OR 97035<br>United States</p>
<p>Phone: (503) 555-0148 <a href="tel:5035550148">call</a></p>
<p>Questions? Write to help@lumen-lamp-works.com.</p>
</body></html>
"""

TEXT = """---------- Forwarded message ---------
From: Lumen Lamp Works <orders@lumen-lamp-works.com>
Date: Tue, 4 Mar 2025 at 09:12
Subject: Your Lumen Lamp Works order LL-88213457
To: Philippa Quennell <philippa.quennell@fastmail.com>

Thank you for your order!

Hello Philippa,

Order number: LL-88213457

Brass desk lamp        1   $89.00
Linen shade, ivory     2   $50.00

Subtotal $139.00
Shipping $9.50
Order Total $148.50

Paid with Visa **** 6618

Shipping address:
Philippa Quennell
4417 Larkspur Avenue
Apt 12B
Brookhaven, OR 97035
United States
Phone: (503) 555-0148
"""


def planted_email() -> bytes:
    message = EmailMessage()
    message["From"] = "Philippa Q <pq.forwarder@gmail.com>"
    message["To"] = "receipts@purchaseshare.example"
    message["Subject"] = "Fwd: Your Lumen Lamp Works order LL-88213457"
    message["Date"] = "Tue, 04 Mar 2025 10:01:00 -0800"
    message["Message-ID"] = "<CAF7-pq.forwarder@mail.gmail.com>"
    message["Received"] = "from mail.gmail.com (philippa-laptop [10.1.2.3])"
    message.set_content(TEXT)
    message.add_alternative(HTML, subtype="html")
    message.add_attachment(b"%PDF-1.4 invoice for Philippa Quennell", maintype="application", subtype="pdf",
                           filename="invoice-LL-88213457.pdf")
    return message.as_bytes()


def all_text(raw: bytes) -> str:
    """Headers plus every decoded part: what a reader of the fixture could see."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    chunks = [f"{k}: {v}" for k, v in message.items()]
    for part in message.walk():
        chunks += [f"{k}: {v}" for k, v in part.items()]
        if not part.is_multipart():
            data = part.get_payload(decode=True) or b""
            chunks.append(data.decode(part.get_content_charset() or "utf-8", "replace"))
    return "\n".join(chunks) + "\n" + raw.decode("utf-8", "replace")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the code to scaffold into."""
    for name in ("parsers", "purchaseshare"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "fixtures" / "emails").mkdir(parents=True)
    source = tmp_path / "sample.eml"
    source.write_bytes(planted_email())
    return tmp_path


def in_tree(tree: Path, code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def registry_slugs(text: str) -> tuple[list[str], list[str]]:
    imports = re.findall(r"^from parsers\.merchants\.(\w+) import", text, re.MULTILINE)
    block = text[text.index("MERCHANTS"):]
    block = block[: block.index("\n)")]
    classes = re.findall(r"^    (\w+),$", block, re.MULTILINE)
    by_class = dict(re.findall(r"^from parsers\.merchants\.(\w+) import (\w+)$", text, re.MULTILINE))
    by_class = {cls: slug for slug, cls in by_class.items()}
    return imports, [by_class[c] for c in classes]


def test_new_merchant_end_to_end(tree: Path):
    result = scaffold("lumen_lamp_works", tree / "sample.eml", root=tree)
    assert result.domains == ("lumen-lamp-works.com",)  # the original sender, not the forwarder's gmail.com

    parser_file = tree / "parsers" / "merchants" / "lumen_lamp_works.py"
    source = parser_file.read_text()
    assert "class LumenLampWorksParser(MerchantParser):" in source
    assert 'slug = "lumen_lamp_works"' in source and 'domains = ("lumen-lamp-works.com",)' in source

    registry = (tree / "parsers" / "registry.py").read_text()
    imports, merchants = registry_slugs(registry)
    assert "lumen_lamp_works" in imports and imports == sorted(imports)
    assert merchants == imports

    # the registry imports in the copy, and the new parser is the one chosen for the email
    fixture = tree / "fixtures" / "emails" / "lumen_lamp_works" / "lumen_lamp_works_1.eml"
    out = in_tree(tree, "import json; from parsers.registry import MERCHANTS, candidates; "
                        "from parsers.unwrap import unwrap; "
                        f"m = unwrap(open({str(fixture)!r}, 'rb').read()); "
                        "print(json.dumps([[p.slug for p in MERCHANTS], [p.slug for p in candidates(m)]]))")
    slugs, chosen = json.loads(out)
    assert slugs == sorted(slugs) and "lumen_lamp_works" in slugs
    assert chosen == ["lumen_lamp_works"]

    scrubbed = fixture.read_bytes()
    text = all_text(scrubbed)
    for what, values in PLANTED.items():
        for value in values:
            assert value not in text, f"{what} {value!r} left in the fixture"
    assert MERCHANT_SENDER in text and "help@lumen-lamp-works.com" in text
    assert "application/pdf" not in text and "invoice-LL" not in text
    assert "10.1.2.3" not in text  # Received headers are dropped

    message = email.message_from_bytes(scrubbed, policy=email.policy.default)
    assert not message.defects
    assert [p.get_content_type() for p in message.walk()] == ["multipart/mixed", "multipart/alternative",
                                                               "text/plain", "text/html"]

    golden = json.loads(fixture.with_suffix(".json").read_text())
    original = run(planted_email()).to_json()
    assert golden["merchant"]["domain"] == original["merchant"]["domain"] == "lumen-lamp-works.com"
    assert golden["merchant"]["name"] == "Lumen Lamp Works"
    assert golden["total"] == original["total"] == "148.50"
    assert len(golden["items"]) == len(original["items"]) == 2
    assert golden["original"]["from"] == MERCHANT_SENDER
    assert golden["forwarded"] is True and golden["forwarded_by"].endswith("@example.com")
    subject = golden["original"]["subject"]
    assert re.fullmatch(r"Your Lumen Lamp Works order [A-Z]{2}-\d{8}", subject)  # same shape, invented


def test_scrub_is_consistent_and_keeps_mime_valid():
    raw = planted_email()
    first, counts = scrub_email(raw, merchant_domain="lumen-lamp-works.com", seed="x")
    again, _ = scrub_email(raw, merchant_domain="lumen-lamp-works.com", seed="x")
    assert first == again  # reproducible
    for what in ("names", "postal addresses", "email addresses", "phone numbers", "card digits", "order numbers"):
        assert counts.get(what), what
    message = email.message_from_bytes(first, policy=email.policy.default)
    plain = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    number = re.search(r"Order number: (\S+)", plain).group(1)
    assert number in html and number in str(message["Subject"])  # one invented number everywhere
    card = re.search(r"\*\*\*\* (\d{4})", plain).group(1)
    assert f"ending in <span>{card}</span>" in html
    assert "Hello Robin," in plain and "Hello Robin," in html


def test_scrub_reads_a_quoted_printable_bare_body_as_the_pipeline_does():
    # a saved .html still quoted-printable: soft line breaks split the values to scrub
    raw = quopri.encodestring(HTML.encode("utf-8"))
    for planted in PLANTED["email"][:1] + PLANTED["address"][:1]:
        raw = raw.replace(planted.encode(), planted[:7].encode() + b"=\n" + planted[7:].encode())
    scrubbed, counts = scrub_email(raw, merchant_domain="lumen-lamp-works.com", seed="x")
    assert counts.get("email addresses") and counts.get("postal addresses")
    text = read_bare_body(scrubbed).html or ""  # the fixture as the pipeline will read it
    assert "Brass desk lamp" in text
    for piece in ("quennell", "Quennell", "Larkspur", "97035", "6618"):  # nor any piece of them
        assert piece not in text, piece


def test_dry_run_writes_nothing(tree: Path):
    before = (tree / "parsers" / "registry.py").read_text()
    result = scaffold("lumen_lamp_works", tree / "sample.eml", root=tree, dry_run=True)
    assert (tree / "parsers" / "registry.py").read_text() == before
    assert not (tree / "parsers" / "merchants" / "lumen_lamp_works.py").exists()
    assert not (tree / "fixtures" / "emails" / "lumen_lamp_works").exists()
    assert "would write parsers/merchants/lumen_lamp_works.py" in result.summary(tree)


@pytest.mark.parametrize("slug, message", [
    ("amazon", "already exists"),
    ("Lumen", "bad slug"),
    ("lumen-lamp", "bad slug"),
    ("_generic", "bad slug"),
    ("class", "keyword"),
    ("9lives", "bad slug"),
])
def test_refuses_bad_or_existing_slugs(tree: Path, slug: str, message: str):
    with pytest.raises(ScaffoldError, match=message):
        scaffold(slug, tree / "sample.eml", root=tree)


def test_refuses_a_claimed_domain(tree: Path):
    scaffold("lumen_lamp_works", tree / "sample.eml", root=tree)
    with pytest.raises(ScaffoldError, match=r"already claimed by parsers/merchants/lumen_lamp_works\.py"):
        scaffold("lumen_lamps", tree / "sample.eml", root=tree)


def test_registry_insertion_keeps_order():
    text = (ROOT / "parsers" / "registry.py").read_text()
    for slug in ("aaa_first", "mmm_middle", "zzz_last"):
        updated = add_to_registry(text, slug, f"{camel_case(slug)}Parser")
        imports, merchants = registry_slugs(updated)
        assert slug in imports and imports == sorted(imports) and merchants == imports


def test_cli_dry_run_leaves_the_repository_alone(tree: Path):
    registry = (ROOT / "parsers" / "registry.py").read_text()
    outcome = CliRunner().invoke(app, ["new-merchant", "lumen_lamp_works", "--from", str(tree / "sample.eml"),
                                       "--display-name", "Lumen Lamp Works", "--dry-run"])
    assert outcome.exit_code == 0, outcome.output
    assert "would write" in outcome.output
    assert (ROOT / "parsers" / "registry.py").read_text() == registry
    assert not (ROOT / "parsers" / "merchants" / "lumen_lamp_works.py").exists()


def test_cli_refuses_an_existing_slug(tree: Path):
    outcome = CliRunner().invoke(app, ["new-merchant", "amazon", "--from", str(tree / "sample.eml")])
    assert outcome.exit_code != 0
    assert "already exists" in outcome.output
