"""A&O Hostels - booking confirmations from aohostels.com (often seen as a bare text body)."""

import re
from decimal import Decimal

from parsers.base import Item, Match, MerchantParser

# "Your booked house    a&o Wien Hauptbahnhof" / "Ihr gebuchtes Haus ..."
_HOUSE = r"(?:Your booked house|Ihr gebuchtes Haus)\s+(.+)"
# "Room selection    1 Single room (for 1 adult )" / "Zimmerauswahl 1 Einzelzimmer (für 1 ..."
_ROOM = r"(?:Room selection|Zimmerauswahl)\s+(\d+) (.+?) \((?:for|für)\b"
# "Details    8 nights" / "Details 8 Nächte"
_NIGHTS = r"Details\s+(\d+ (?:nights?|Nächte|Nacht))"


class AoHostelsParser(MerchantParser):
    slug = "aohostels"
    display_name = "A&O Hostels"
    domains = ("aohostels.com",)
    match = (Match("body", r"booking through aohostels\.com|Buchung über aohostels\.com"),
             Match("body", r"Your A&O Team|Ihr A&O Team"))

    def order_number(self) -> str:
        # "Booking no.    AOI-XX-1234567" / "Buchungsnr."
        return self.search_text(r"(?:Booking no\.|Buchungsnr\.)\s+([A-Z]+-[A-Z0-9-]+)")

    def items(self) -> list[Item]:
        house, nights = self.search_text(_HOUSE), self.search_text(_NIGHTS)
        room = re.search(_ROOM, self.text, re.I | re.S)
        kind = re.sub(r"\s+", " ", f"{room[1]} × {room[2]}" if room and room[1] != "1" else room[2]) if room else ""
        return [Item(f"{house} – {kind}, {nights}" if kind else f"{house}, {nights}", unit_price=self.total())]

    def total(self) -> Decimal:
        # "Total Sum / 999,99 €  including VAT and statutory city tax"
        return self.money(self.search_text(r"(?:Total Sum|Gesamtsumme)\s+([\d.,]+\s*€|€\s*[\d.,]+)"))

    def currency(self) -> str:
        return "EUR"
