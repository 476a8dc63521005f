"""Fast paths give exactly what the slow code they short-cut gives.

Dates (parsers.normalize.quick_datetime) against dateparser: the fast path must either give
dateparser's answer or step aside (None). Huge headers against mail-parser's decoder, the
XSLT visible text against the tree walk, merchant body filters against re.IGNORECASE, the
plain-address test against mail-parser's address diagnostics. Seeded, so a failure reproduces.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import dateparser
import pytest
from mailparser.utils import decode_header_part, get_addresses

from parsers.base import _body_searches
from parsers.message import _decode_long_header, _html_tree, _plain_addresses, _visible_text_walk, visible_text
from parsers.normalize import _MONTH_NAMES, _WEEKDAY_NAMES, parse_date_text, quick_datetime
from parsers.registry import MERCHANTS
from parsers.unwrap import _DATE_LANGUAGES, parse_loose_datetime

_RNG = random.Random(20260)


def _word(table: dict[str, tuple[str, ...]], lang: str, index: int) -> str:
    rows = table[lang]
    word = _RNG.choice(rows).split()[index]
    return _RNG.choice([word, word.capitalize(), word.upper()])


def _samples(count: int) -> list[tuple[str, str]]:
    """(text, language) in the shapes the fast path reads, with valid and broken values."""
    out = []
    for _ in range(count):
        lang = _RNG.choice(list(_MONTH_NAMES))
        day = date(2000, 1, 1) + timedelta(days=_RNG.randrange(0, 365 * 30))
        month = _word(_MONTH_NAMES, lang, day.month - 1)
        weekday_lang = lang if _RNG.random() < 0.8 else _RNG.choice(list(_WEEKDAY_NAMES))
        weekday_index = day.weekday() if _RNG.random() < 0.85 else (day.weekday() + 1) % 7
        weekday = _word(_WEEKDAY_NAMES, weekday_lang, weekday_index)
        prefix = _RNG.choice(["", f"{weekday} ", f"{weekday}, "])
        d = _RNG.choice([str(day.day), f"{day.day:02d}", str(day.day + _RNG.choice([0, 0, 0, 20]))])
        hour = _RNG.choice([0, 7, 11, 12, 13, 23, 25])
        time = _RNG.choice(["", f" {hour}:05", f" {hour}:05:09", f", {hour}:41",
                            f" {hour}:05 {_RNG.choice(['AM', 'pm'])}",
                            f" {hour}:05:09 {_RNG.choice(['UTC', 'GMT+1', 'UTC-5', 'UTC+14', '+03:00', '+0200', '-0530', 'EST'])}"])
        shape = _RNG.randrange(7)
        if shape == 0:
            text = f"{prefix}{month} {d}, {day.year}{time}"
        elif shape == 1:
            text = f"{prefix}{d} {month} {day.year}{time}"
        elif shape == 2:
            text = f"{prefix}{d}. {month} {day.year}{time}"
        elif shape == 3:
            text = f"{prefix}{d} de {month} de {day.year}{time}"
        elif shape == 4:
            text = f"{weekday[:3]} {month[:3]} {d} {hour:02d}:05:09 {day.year}"
        elif shape == 5:
            text = f"{day.year}-{day.month:02d}-{d:0>2}{time}"
        else:
            sep = _RNG.choice("./")
            year = _RNG.choice([str(day.year), f"{day.year % 100:02d}", f"{_RNG.randrange(100):02d}"])
            text = f"{day.month:02d}{sep}{d}{sep}{year}" if _RNG.random() < 0.5 else f"{d}{sep}{day.month}{sep}{year}"
        out.append((text, _RNG.choice([lang, lang, "en", "en-US", "en-GB", None])))
    return out


SAMPLES = _samples(400)


@pytest.mark.parametrize("text,language", SAMPLES[:300])
def test_merchant_dates_match_dateparser(text: str, language: str | None) -> None:
    lang = (language or "").split("-")[0].lower() or None
    territory = language.split("-")[1] if language and "-" in language else None
    order = "MDY" if territory in ("US", None) and lang in ("en", None) else "DMY"
    languages = [lang, "en"] if lang and lang != "en" else ["en"]
    quick = quick_datetime(" ".join(text.split()), languages, date_order=order)
    settings = {"PARSERS": ["custom-formats", "absolute-time"], "DATE_ORDER": order,
                "PREFER_DAY_OF_MONTH": "first", "REQUIRE_PARTS": ["day", "month", "year"]}
    expected = dateparser.parse(text, languages=languages, settings=settings)
    if quick is not None:
        assert expected is not None and quick.date() == expected.date(), (text, language, quick, expected)
    if not re.search(r"\d{4}-\d{2}-\d{2}", text):  # parse_date_text reads ISO dates itself, first
        assert parse_date_text(text, language=language) == (expected.date() if expected else None)


@pytest.mark.parametrize("text", [text for text, _ in SAMPLES[300:]])
def test_forwarded_header_dates_match_dateparser(text: str) -> None:
    quick = quick_datetime(" ".join(text.split()), _DATE_LANGUAGES)
    expected = dateparser.parse(text, languages=_DATE_LANGUAGES, settings={"PREFER_DAY_OF_MONTH": "first"})
    if quick is not None:
        assert expected is not None and quick.isoformat() == expected.isoformat(), (text, quick, expected)
    got = parse_loose_datetime(text)
    assert (got.isoformat() if got else None) == (expected.isoformat() if expected else None)


_HEADER_PIECES = ["=?utf-8?q?caf=C3=A9_x?=", "=?UTF-8?B?w6l0w6k=?=", "=?iso-8859-1?q?=E9t=E9?=", " ", "  ", "plain",
                  "=?utf-8?b?w6l0w6?=", "=?utf-8?q?bad=ZZ?=", "\n ", "=?koi8-r?q?=F0?=", "=?bogus?q?x?=", "é",
                  "=?utf-8?q?=C3?=", "=?utf-8?q?=A9?=", "=?utf-8?q?a=?=", "=?utf-8?q?=4?=", "=?utf-8?q?1_?=", "=??q?x?="]


def test_long_header_decoding_matches_mail_parser() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        header = "".join(rng.choice(_HEADER_PIECES) for _ in range(rng.randrange(1, 9)))
        assert _decode_long_header(header) == decode_header_part(header), header
    long_subject = " ".join(["=?utf-8?q?Die_hei=C3=9Fe_Zypernsonne?="] * 400 + ["=?utf-8?b?w6l0w6k=?="] * 50)
    assert _decode_long_header(long_subject) == decode_header_part(long_subject)


_FIXTURES = sorted(Path(__file__).resolve().parents[2].joinpath("fixtures", "emails").rglob("*.eml"))


def _fixture_html(path: Path) -> str:
    from parsers.unwrap import unwrap

    return unwrap(path.read_bytes()).html or ""


_HTML_FIXTURES = [p for p in _FIXTURES if b"text/html" in p.read_bytes().lower()]


@pytest.mark.parametrize("path", _HTML_FIXTURES[::3], ids=lambda p: p.name)
def test_visible_text_matches_the_tree_walk(path: Path) -> None:
    tree = _html_tree(_fixture_html(path))
    assert tree is not None, "fixture declares text/html but no HTML was read"
    assert visible_text(tree) == _visible_text_walk(tree)
    for element in list(tree.iter("table", "tr", "td", "div", "p", "span", "style"))[:60]:
        assert visible_text(element) == _visible_text_walk(element)


@pytest.mark.parametrize("path", _FIXTURES[::2], ids=lambda p: p.name)
def test_body_filters_match_ignorecase_search(path: Path) -> None:
    window = _fixture_html(path).lower()
    for parser in MERCHANTS:
        for match in parser.match:
            if match.field == "body":
                expected = re.search(match.pattern, window, re.IGNORECASE) is not None
                assert any(found(window) for found in _body_searches(match.pattern)) == expected, match.pattern


def test_plain_addresses_have_nothing_for_mail_parser_to_flag() -> None:
    rng = random.Random(11)
    seeds = ['"Amazon.com" <auto-confirm@amazon.com>', "Steam Store <noreply@steampowered.com>",
             "a@b.example.org, Other Name <c.d@e-f.co.uk>", "<x@y.com>", "x_y+z@mail.example.com"]
    checked = 0
    for _ in range(4000):
        value = rng.choice(seeds)
        at = rng.randrange(len(value) + 1)
        value = value[:at] + rng.choice('"<>@., ;:()\\[]\t\'=?_-xé') + value[at + rng.randrange(2):]
        if _plain_addresses(value):
            checked += 1
            found: list[dict] = []
            get_addresses(value, defects=found, decode_names=True)
            assert not found, value
    assert checked > 500


def _random_regexes(seed: int, atoms: list[str], longest: int, alphabet: str,
                    longest_text: int) -> Iterator[tuple[str, re.Pattern[str], list[str]]]:
    """Seeded: (pattern, compiled, five texts) for patterns glued from `atoms` that compile."""
    rng = random.Random(seed)
    for _ in range(3000):
        pattern = "".join(rng.choice(atoms) for _ in range(rng.randrange(1, longest)))
        try:
            compiled = re.compile(pattern)
        except re.error:
            continue
        texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, longest_text))) for _ in range(5)]
        yield pattern, compiled, texts


def test_required_literal_is_in_every_match() -> None:
    from parsers.base import _required_literal

    atoms = ["a", "b", "c", ".", "\\.", "[ab]", "[^a]", "[]a]", "(a|b)", "(?:ab)?", "x", "\\d", "1", "{2}", "?", "*", "+"]
    for pattern, compiled, texts in _random_regexes(4, atoms, 7, "abcx1.]", 10):
        literal = _required_literal(pattern)
        for text in texts:
            if compiled.search(text):
                assert literal in text, (pattern, literal, text)


def test_top_level_alternatives_split_only_where_the_regex_alternates() -> None:
    from parsers.base import _top_level_alternatives

    atoms = ["a", "b", "|", "\\|", "[|]", "[]|]", "[^]|]", "(a|b)", "(?:a|)", "x", "{1,2}", "?", "*"]
    for pattern, compiled, texts in _random_regexes(5, atoms, 8, "abx|", 8):
        parts = _top_level_alternatives(pattern)
        assert "|".join(parts) == pattern
        alternatives = [re.compile(part) for part in parts]
        for text in texts:
            found = compiled.search(text) is not None
            assert found == any(alt.search(text) for alt in alternatives), (pattern, parts, text)
