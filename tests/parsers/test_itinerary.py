"""A travel receipt's fare item says where it goes (parsers/itinerary.py): read from codes beside
times and coded place names, whatever the airline. Emails built here, with made-up places."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from parsers.itinerary import is_transport_name, journey
from purchaseshare.pipeline import run
from tests.parsers.test_whole_order import raw_email

PLACES = [("Avalon", "AVL"), ("Brightwater", "BRW"), ("Corvale", "CVQ"), ("Dunmere", "DNM"), ("Eastholm", "EHM")]


def lines_time_code_city(legs: list[tuple[str, str, str, str, str]]) -> list[str]:
    """Per leg: date, departure time, code, city, date, arrival time, code, city."""
    out = []
    for day, dep_time, arr_time, dep, arr in legs:
        out += [day, dep_time, dep, dict(map(reversed, PLACES))[dep], day, arr_time, arr, dict(map(reversed, PLACES))[arr]]
    return out


def test_a_round_trip_from_times_and_codes():
    lines = ["Flight 101", *lines_time_code_city([("Thu, Dec 04", "06:10 PM", "09:50 PM", "AVL", "BRW")]),
             "Flight 102", *lines_time_code_city([("Mon, Dec 08", "10:15 AM", "06:46 PM", "BRW", "AVL")])]
    assert journey(lines) == "Avalon (AVL) → Brightwater (BRW) → Avalon (AVL)"


def test_a_change_of_planes_the_same_day_is_not_a_destination():
    """CODE / city / time, as some airlines print it; a 2-hour stop is a connection."""
    lines = ["Saturday, February 10, 2024", "AVL", "Avalon", "7:40 AM", "XX 2904", "CVQ", "Corvale", "1:10 PM",
             "Seat:", "27C", "CVQ", "Corvale", "3:21 PM", "XX 4021", "DNM", "Dunmere", "4:23 PM"]
    assert journey(lines) == "Avalon (AVL) → Dunmere (DNM)"


def test_a_stop_with_a_later_date_between_is_a_destination():
    lines = ["AVL", "Avalon", "7:40 AM", "CVQ", "Corvale", "9:10 AM", "Return 14 March", "CVQ", "Corvale",
             "10:21 AM", "AVL", "Avalon", "1:23 PM"]
    assert journey(lines) == "Avalon (AVL) → Corvale (CVQ) → Avalon (AVL)"


def test_coded_places_side_by_side_and_names_up_to_their_comma():
    lines = ["03:55 PM | 07:04 PM", "Avalon, NJ/Other, NY, US (AVL) | Eastholm, CA, US (EHM)",
             "02:55 PM | 11:37 PM", "Eastholm, CA, US (EHM) | Avalon, NJ/Other, NY, US (AVL)"]
    assert journey(lines) == "Avalon (AVL) → Eastholm (EHM) → Avalon (AVL)"


def test_a_code_named_on_the_line_above_it():
    lines = ["Outbound", "Avalon City", "AVL", "9:44 a.m.", "Corvale", "CVQ", "11:30 a.m."]
    assert journey(lines) == "Avalon City (AVL) → Corvale (CVQ)"


def test_an_itinerary_printed_twice_counts_once():
    legs = lines_time_code_city([("Thu, Dec 04", "06:10", "09:50", "AVL", "BRW")])
    assert journey(["Summary", *legs, "Details", *legs]) == "Avalon (AVL) → Brightwater (BRW)"


def test_no_itinerary_without_codes_beside_times():
    assert journey(["Order 1234", "Blue shirt (XXL)", "$20.00", "Pick up at 5:30 PM", "Total $20.00"]) is None


@pytest.mark.parametrize("name", ["Flight", "New ticket (0012107179603)", "Air", "Vol", "Flug", "Billete", "Bilet"])
def test_names_that_say_only_how_one_travels(name):
    assert is_transport_name(name)


@pytest.mark.parametrize("name", ["Flight jacket", "Ticket to Ride board game", "Train set, wooden"])
def test_products_named_after_transport_are_not_tickets(name):
    assert not is_transport_name(name)


def _receipt(item_rows: str, breakdown: str, legs_html: str) -> bytes:
    html = (f"<html><body><p>Thank you for booking with us.</p>{legs_html}<table>{item_rows}{breakdown}</table>"
            "</body></html>")
    return raw_email("Skyline Air <receipts@skyline-air.test>", html)


def _legs_html(seed: int) -> tuple[str, str]:
    rng = random.Random(seed)
    (a_name, a), (b_name, b) = rng.sample(PLACES, 2)
    legs = (f"<p>Thu, Dec 04</p><p>06:10 PM</p><p>{a}</p><p>{a_name}</p><p>Thu, Dec 04</p><p>09:50 PM</p>"
            f"<p>{b}</p><p>{b_name}</p><p>Mon, Dec 08</p><p>10:15 AM</p><p>{b}</p><p>{b_name}</p>"
            f"<p>Mon, Dec 08</p><p>06:46 PM</p><p>{a}</p><p>{a_name}</p>")
    return legs, f"{a_name} ({a}) → {b_name} ({b}) → {a_name} ({a})"


@pytest.mark.parametrize("seed", range(3))
def test_the_flight_item_is_named_by_its_journey(seed):
    legs, route = _legs_html(seed)
    raw = _receipt("<tr><td>Flight</td><td>$310.60</td></tr>", "<tr><td>Trip total</td><td>$310.60</td></tr>", legs)
    result = run(raw)
    assert [(i.name, i.line_total) for i in result.items] == [(route, Decimal("310.60"))]


def test_the_fare_in_the_breakdown_becomes_the_journeys_item_beside_an_extra():
    legs, route = _legs_html(7)
    raw = _receipt("<tr><td>Seat assignment</td><td>$35.99</td></tr>",
                   "<tr><td>Airfare:</td><td>$266.39</td></tr><tr><td>Taxes:</td><td>$50.62</td></tr>"
                   "<tr><td>Total:</td><td>$353.00</td></tr>", legs)
    result = run(raw)
    assert result.total == Decimal("353.00")
    assert sorted((i.name, i.quantity, i.line_total) for i in result.items) == sorted(
        [(route, 1, Decimal("266.39")), ("Seat assignment", 1, Decimal("35.99"))])


def test_each_travellers_fare_added_up_makes_a_quantity():
    legs, route = _legs_html(11)
    breakdown = ("<tr><td>Sam Doe</td></tr><tr><td>Base fare:</td><td>$140.47</td></tr>"
                 "<tr><td>Taxes and fees:</td><td>$41.33</td></tr>"
                 "<tr><td>Alex Roe</td></tr><tr><td>Base fare:</td><td>$140.47</td></tr>"
                 "<tr><td>Taxes and fees:</td><td>$41.33</td></tr><tr><td>Total</td><td>$363.60</td></tr>")
    result = run(_receipt("", breakdown, legs))
    assert result.total == Decimal("363.60")
    assert [(i.name, i.quantity, i.unit_price, i.line_total) for i in result.items] == [
        (route, 2, Decimal("140.47"), Decimal("280.94"))]


def test_two_tickets_are_not_renamed():
    legs, _ = _legs_html(3)
    rows = "<tr><td>Ticket</td><td>$100.00</td></tr><tr><td>Ticket</td><td>$120.00</td></tr>"
    result = run(_receipt(rows, "<tr><td>Total</td><td>$220.00</td></tr>", legs))
    assert [i.name for i in result.items] == ["Ticket", "Ticket"]


def test_a_shop_receipt_keeps_its_items():
    rows = "<tr><td>Blue shirt (XXL)</td><td>$20.00</td></tr><tr><td>Red hat (OSF)</td><td>$15.00</td></tr>"
    result = run(raw_email("Kalomi <hello@kalomi.com>",
                           f"<html><body><p>Pick up at 5:30 PM</p><table>{rows}"
                           "<tr><td>Total</td><td>$35.00</td></tr></table></body></html>"))
    assert [i.name for i in result.items] == ["Blue shirt (XXL)", "Red hat (OSF)"]


def test_every_language_has_every_travel_word():
    import tomllib

    from parsers.itinerary import LANGUAGES, VOCAB_FILE

    tables = tomllib.loads(VOCAB_FILE.read_text(encoding="utf-8"))
    for name, table in tables.items():
        assert set(table) == set(LANGUAGES) and all(table[lang] for lang in LANGUAGES), name


def test_prose_naming_airports_does_not_name_the_stops():
    prose = ("EXCEPTION: When departing from Anchorage, Atlanta, Austin, Miami, Avalon (AVL), Newark, "
             "Orange County (SNA), Orlando, the check in requirement time is 45 minutes.")
    legs = lines_time_code_city([("Thu, Dec 04", "06:10 PM", "09:50 PM", "AVL", "BRW")])
    assert journey([prose, *legs]) == "Avalon (AVL) → Brightwater (BRW)"
