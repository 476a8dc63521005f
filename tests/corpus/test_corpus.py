"""The real emails in ../shared/corpus against expected JSON we wrote after reading each one.

tests/corpus/expected/<local_path>.json holds the fields that matter for that email (a
subset of the CONTRACT object); every field in it must match, field by field. Order and
receipt emails must state the whole purchase; forwards their original sender.
Skips when the corpus is absent (a clone elsewhere); fails under CI=true.
"""

from __future__ import annotations

import json
from functools import cache

import pytest

from purchaseshare.pipeline import parse_file
from tests.helpers import CORPUS, CORPUS_EXPECTED, IN_CI, manifest, mismatches

PRESENT = (CORPUS / "MANIFEST.tsv").exists()
ROWS = manifest() if PRESENT else []
PURCHASE_KINDS = ("order", "receipt")
REQUIRED = {
    "order": ("status", "kind", "merchant", "order_number", "order_date", "currency", "total", "items"),
    "receipt": ("status", "kind", "merchant", "order_number", "order_date", "currency", "total", "items"),
    "forward": ("status", "forwarded", "original"),
}


@cache
def parsed(local_path: str) -> dict:
    return parse_file(str(CORPUS / local_path)).to_json()


def expected_for(local_path: str) -> dict:
    path = CORPUS_EXPECTED / f"{local_path}.json"
    if not path.exists():
        pytest.fail(f"no expected JSON for corpus email {local_path}: write {path.relative_to(CORPUS_EXPECTED.parent.parent.parent)}")
    return json.loads(path.read_text(encoding="utf-8"))


def test_corpus_present():
    if not PRESENT:
        if IN_CI:
            pytest.fail(f"CI=true but the corpus is missing at {CORPUS}")
        pytest.skip(f"corpus not found at {CORPUS}")
    assert len(ROWS) > 100


@pytest.mark.parametrize("row", ROWS, ids=[r["local_path"] for r in ROWS])
def test_corpus_email(row):
    expected = expected_for(row["local_path"])
    for key in REQUIRED.get(row["kind"], ("status", "kind")):
        assert key in expected, f"expected JSON must state {key!r} for a {row['kind']} email"
    actual = parsed(row["local_path"])
    assert actual["status"] != "error", actual["error"]
    assert mismatches(expected, actual) == []


def test_corpus_coverage():
    """>= 90 % of order/receipt emails come out as purchases with items and a total."""
    if not PRESENT:
        pytest.skip("corpus absent")
    purchases = [r for r in ROWS if r["kind"] in PURCHASE_KINDS]
    read = [r for r in purchases if (a := parsed(r["local_path"]))["status"] == "purchase"
            and a["items"] and a["total"] is not None]
    share = len(read) / len(purchases)
    missing = sorted(r["local_path"] for r in purchases if r not in read)
    assert share >= 0.9, f"{share:.0%} of {len(purchases)} read; not read: {missing}"


def test_no_corpus_email_is_an_error():
    if not PRESENT:
        pytest.skip("corpus absent")
    errors = {r["local_path"]: parsed(r["local_path"])["error"] for r in ROWS
              if parsed(r["local_path"])["status"] == "error"}
    assert errors == {}


def test_every_forward_is_unwrapped():
    if not PRESENT:
        pytest.skip("corpus absent")
    forwards = [r for r in ROWS if r["kind"] == "forward"]
    not_unwrapped = [r["local_path"] for r in forwards if not parsed(r["local_path"])["forwarded"]]
    assert not_unwrapped == []
