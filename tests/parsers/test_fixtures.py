"""One test per fixture pair: fixtures/emails/<slug>/<name>.eml + <name>.json (recipe-scrapers style).

The golden is the whole CONTRACT object (minus `source`). A missing golden is written and
the test FAILS until someone has read it and committed it; PURCHASESHARE_UPDATE_GOLDENS=1
rewrites them all (then read the diff).
"""

from __future__ import annotations

import json

import pytest

from purchaseshare.pipeline import run
from tests.helpers import FIXTURES, UPDATE_GOLDENS, fixture_emails, golden_path, mismatches, write_json

EMAILS = fixture_emails()


def actual_for(path) -> dict:
    data = run(path.read_bytes()).to_json()
    data.pop("source")
    return data


@pytest.mark.parametrize("path", EMAILS, ids=[str(p.relative_to(FIXTURES)) for p in EMAILS])
def test_fixture_matches_golden(path):
    golden = golden_path(path)
    actual = actual_for(path)
    if UPDATE_GOLDENS or not golden.exists():
        existed = golden.exists()
        write_json(golden, actual)
        if not existed:
            pytest.fail(f"wrote new golden {golden.name}: review it, then commit")
        return
    expected = json.loads(golden.read_text(encoding="utf-8"))
    assert mismatches(expected, actual) == []
    assert set(actual) == set(expected), "golden is missing fields: regenerate and review it"


def test_there_are_fixtures():
    assert len(EMAILS) >= 10
