"""The helpers `parsers.base` gives merchant files: trips read from flights under day headings."""

from __future__ import annotations

from decimal import Decimal

from parsers.base import Item, MerchantParser, fare_items, route_name
from parsers.message import Email, Headers

ITINERARY = """Your itinerary
Saturday, February 10, 2024
SFO San Francisco
DFW Dallas
DFW Dallas
SHV Shreveport
Monday, February 12, 2024
SHV Shreveport
SFO San Francisco
"""
FLIGHT = r"^([A-Z]{3}) (.+)\n([A-Z]{3}) (.+)$"
DAY = r"^(\w+day, \w+ \d{1,2}, \d{4})$"


class _Parser(MerchantParser):
    slug = "test_helpers"
    display_name = "Test"


def _parser(text: str) -> _Parser:
    return _Parser(Email(original=Headers(), text=text))


def test_under_headings_pairs_each_match_with_the_heading_above_it():
    found = _parser(ITINERARY).under_headings(FLIGHT, DAY)
    assert [(m[1], m[3], day) for m, day in found] == [
        ("SFO", "DFW", "Saturday, February 10, 2024"),
        ("DFW", "SHV", "Saturday, February 10, 2024"),
        ("SHV", "SFO", "Monday, February 12, 2024"),
    ]


def test_under_headings_gives_none_above_the_first_heading():
    found = _parser("SEA Seattle\nSFO San Francisco\n" + ITINERARY).under_headings(FLIGHT, DAY)
    assert found[0][1] is None and found[1][1] == "Saturday, February 10, 2024"
    assert _parser("SEA Seattle\nSFO San Francisco").under_headings(FLIGHT, DAY)[0][1] is None


def test_route_name_drops_same_day_connections():
    segments = [(f"{m[2]} ({m[1]})", f"{m[4]} ({m[3]})", day, day)
                for m, day in _parser(ITINERARY).under_headings(FLIGHT, DAY)]
    assert route_name(segments) == "San Francisco (SFO) → Shreveport (SHV) → San Francisco (SFO)"


def test_fare_items_groups_equal_fares_into_one_item():
    assert fare_items("A → B", [Decimal("99.50")] * 3) == [Item("A → B", quantity=3, unit_price=Decimal("99.50"))]
    assert fare_items("A → B", [Decimal("99.50"), Decimal("80")]) == [
        Item("A → B", unit_price=Decimal("99.50")), Item("A → B", unit_price=Decimal("80"))]
    assert fare_items("A → B", []) == []
