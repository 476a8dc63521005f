"""The journey a travel receipt is for, read from its itinerary's structure, so that a fare's
item says where it goes ("Newark (EWR) → San Francisco (SFO) → Newark (EWR)") instead of
"Flight" - the way KItinerary reads any airline from codes and times, without knowing it.

Segments are found two ways, in reading order:
- an airport or station code alone on its line within two lines of a time ("06:10 PM" /
  "EWR" / "Newark-Liberty Intl."): each such code is a departure or an arrival, in turn;
- a line holding two coded places side by side ("Newark, NJ (EWR) | San Francisco, CA (SFO)").
A place's name is the one printed with its code ("New York (JFK)"; up to its first comma),
or the line under a lone code. A segment seen twice (a summary above the details) counts once;
consecutive segments that meet are joined. Vocabulary in parsers/vocab/travel.toml.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

VOCAB_FILE = Path(__file__).with_name("vocab") / "travel.toml"
LANGUAGES = ("en", "fr", "de", "es", "it", "nl", "pt", "sv", "pl")
_VOCAB = tomllib.loads(VOCAB_FILE.read_text(encoding="utf-8"))
_MAX_LINES = 1500  # an itinerary sits near the top; legal text below it is long
_MAX_SEGMENTS = 12
_PLACE_LINE_MAX = 120


def _whole(table: str) -> re.Pattern[str]:
    words = "|".join(dict.fromkeys(entry for lang in LANGUAGES for entry in _VOCAB[table][lang]))
    return re.compile(rf"^(?:{words})$", re.IGNORECASE)


_TRANSPORT = _whole("transport")
_FARE = _whole("fare")
_CODE_LINE = re.compile(r"^[A-Z]{3}$")
_TIME_LINE = re.compile(r"^(?P<h>\d{1,2})[:.h](?P<m>\d{2})(?:\s*(?P<ampm>[ap])\.?\s?m\.?)?$", re.IGNORECASE)
# A date between two stops: a year, a day/month in figures, or a month's name or abbreviation
# beside a day ("Dec 08", "8 déc.", "17. Mai") in any of the languages read.
_MONTH = ("jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|janv|févr|fév|mars|avr|mai|juin|juil|août|déc|jän|märz|"
          "okt|dez|ene|abr|ago|dic|gen|mag|giu|lug|ott|mrt|mei|fev|out|set|sty|lut|kwi|maj|cze|lip|sie|wrz|paź|lis|gru")
_DATE = re.compile(rf"\b(?:19|20)\d\d\b|\b\d{{1,2}}[./]\d{{1,2}}\b|\b(?:{_MONTH})[^\W\d_]*\.?\s+\d{{1,2}}\b|"
                   rf"\b\d{{1,2}}\.?\s+(?:{_MONTH})", re.IGNORECASE)
_CONNECTION_MINUTES = 6 * 60
_PLACE = re.compile(r"(?P<name>[^\W\d_][^()|\n]{0,60}?)\s*\((?P<code>[A-Z]{3})\)")
_NUMBER_IN_BRACKETS = re.compile(r"\s*[(#]\s*[\d\s-]{6,}\)?\s*$")  # "New ticket (0012107179603)"
_PLACE_NAME = re.compile(r"^[^\W\d_][^\d|:]{1,40}$")  # "San Francisco", "Newark-Liberty Intl."


def is_transport_name(name: str) -> bool:
    """The item is named only by its means of transport ("Flight", "New ticket (0012…)")."""
    return bool(_TRANSPORT.match(_NUMBER_IN_BRACKETS.sub("", name).strip(" :")))


def is_fare_label(label: str) -> bool:
    return bool(_FARE.match(label.strip(" :")))


def journey(lines: list[str]) -> str | None:
    """"Place (ABC) → Place (DEF) → …" for the itinerary in the lines, or None without one."""
    lines = [line.strip() for line in lines[:_MAX_LINES]]
    names: dict[str, str] = {}
    for line in lines:
        if len(line) > _PLACE_LINE_MAX:
            continue  # prose that names airports ("when departing from Miami, New York (LGA), ...")
        for found in _PLACE.finditer(line):
            names.setdefault(found.group("code"), found.group("name").split(",")[0].strip())
    segments = _segments(lines, names)
    if not segments:
        return None
    stops: list[Stop] = []
    for departure, arrival in segments:
        if stops and stops[-1].code == departure.code and _connection(lines, stops[-1], departure):
            stops.pop()  # a change of planes on the way, not a destination
        elif stops and stops[-1].code == departure.code:
            pass
        else:
            stops.append(departure)
        stops.append(arrival)
    return " → ".join(f"{names[stop.code]} ({stop.code})" if names.get(stop.code) else stop.code for stop in stops)


@dataclass(frozen=True)
class Stop:
    code: str
    line: int  # where it was read (-1: a line of two places, no time beside it)
    minutes: int | None  # the time beside it, minutes after midnight


def _segments(lines: list[str], names: dict[str, str]) -> list[tuple[Stop, Stop]]:
    endpoints: list[Stop] = []
    pairs: list[tuple[Stop, Stop]] = []
    for index, line in enumerate(lines):
        if _CODE_LINE.match(line) and (minutes := _time_near(lines, index)) is not None:
            endpoints.append(Stop(line, index, minutes))
            if line not in names:
                names.setdefault(line, _name_beside(lines, index) or "")
        elif line.count("(") >= 2 and "|" in line:
            places = [found.group("code") for found in _PLACE.finditer(line)]
            if len(places) == 2 and places[0] != places[1]:
                pairs.append((Stop(places[0], -1, None), Stop(places[1], -1, None)))
    if len(endpoints) >= 2:
        pairs = list(zip(endpoints[::2], endpoints[1::2], strict=False)) + pairs
    unique: list[tuple[Stop, Stop]] = []
    seen: set[tuple[str, str]] = set()
    for departure, arrival in pairs:
        key = (departure.code, arrival.code)
        if departure.code != arrival.code and key not in seen:
            seen.add(key)
            unique.append((departure, arrival))
    return unique[:_MAX_SEGMENTS]


def _time_near(lines: list[str], index: int) -> int | None:
    """Minutes after midnight of a time within two lines of a code, with no other code between
    (two lines away: on the side of its place name first, "SFO / San Francisco / 7:40 AM")."""
    named_below = index + 1 < len(lines) and _PLACE_NAME.match(lines[index + 1]) is not None
    for step in (-1, 1, 2, -2) if named_below else (-1, 1, -2, 2):
        near = index + step
        if not 0 <= near < len(lines):
            continue
        if abs(step) == 2 and _CODE_LINE.match(lines[index + step // 2]):
            continue
        found = _TIME_LINE.match(lines[near])
        if found:
            hours, minutes = int(found.group("h")), int(found.group("m"))
            meridiem = (found.group("ampm") or "").lower()
            if meridiem.startswith("p") and hours < 12:
                hours += 12
            elif meridiem.startswith("a") and hours == 12:
                hours = 0
            return hours * 60 + minutes
    return None


def _name_beside(lines: list[str], index: int) -> str | None:
    """A lone code's place name: the line under it, else the line above it."""
    for near in (index + 1, index - 1):
        if 0 <= near < len(lines) and _PLACE_NAME.match(lines[near]) and not _TIME_LINE.match(lines[near]):
            return lines[near]
    return None


def _connection(lines: list[str], arrival: Stop, departure: Stop) -> bool:
    """Landing at a place and leaving it again the same day within a few hours: a connection.
    A date printed between the two (a later day) makes it a stay."""
    if arrival.minutes is None or departure.minutes is None or arrival.line < 0 or departure.line < 0:
        return False
    if any(_DATE.search(line) for line in lines[arrival.line + 1:departure.line]):
        return False
    return 0 < departure.minutes - arrival.minutes <= _CONNECTION_MINUTES
