"""Every reviewed fixture, forwarded by tests/wrapping.py, must give the same purchase.

For each fixtures/emails/*/*.eml with a golden JSON, a rotating sample of wrap styles x
languages (every style and language is covered across the fixtures; the full cross
product would be ~40x the fixtures) is run through the pipeline: the purchase fields must
equal the golden's, forwarded must be true and forwarded_by the wrapper's address.
"""

from __future__ import annotations

import json
from functools import cache

import pytest

from purchaseshare.pipeline import run
from tests.helpers import FIXTURES, golden_path
from tests.wrapping import INLINE_STYLES, LANGUAGES, wrap

FORWARDER = "forwarding.person@example.org"
PER_FIXTURE = 5
FIELDS = ("status", "kind", "merchant", "order_number", "order_date", "currency", "total", "items")

COMBOS: list[tuple[str, str]] = [(style, lang) for lang in LANGUAGES for style in INLINE_STYLES]
COMBOS += [("attachment", "en"), ("attachment_in_attachment", "en")]
COMBOS += [("gmail_of_apple", lang) for lang in LANGUAGES]

EMAILS = sorted(p for p in FIXTURES.glob("*/*.eml") if golden_path(p).exists())
CASES = [
    (path, *COMBOS[(index * PER_FIXTURE + offset) % len(COMBOS)])
    for index, path in enumerate(EMAILS)
    for offset in range(PER_FIXTURE)
]


@cache
def golden(path) -> dict:
    return json.loads(golden_path(path).read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("path", "style", "lang"), CASES, ids=[f"{p.relative_to(FIXTURES)}-{s}-{lang}" for p, s, lang in CASES]
)
def test_forwarded_fixture_gives_the_same_purchase(path, style, lang):
    expected = golden(path)
    actual = run(wrap(path.read_bytes(), style, FORWARDER, lang)).to_json()
    assert actual["error"] is None
    assert actual["forwarded"] is True
    assert actual["forwarded_by"] == FORWARDER
    assert {k: actual[k] for k in FIELDS} == {k: expected[k] for k in FIELDS}
    assert actual["original"]["from"] == expected["original"]["from"]
    assert actual["original"]["subject"] == expected["original"]["subject"]


def test_every_style_and_language_is_sampled():
    if len(EMAILS) * PER_FIXTURE < len(COMBOS):
        pytest.skip("too few fixtures to cover every style yet")
    assert {(style, lang) for _, style, lang in CASES} == set(COMBOS)
