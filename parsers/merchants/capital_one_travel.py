"""Capital One Travel - flight bookings from capitalonebooking.com.

The receipt carries schema.org FlightReservation microdata (one per passenger and flight) but
no prices there; the fares come from "Fare Details". A card's travel credit counts as a discount:
the total is what the card was charged.
"""

import re
from decimal import Decimal

from parsers.base import FieldNotFound, Item, Kind, MerchantParser, fare_items, route_name

# "New York City / LGA / 9:44 a.m. / 2h 46m / Chicago / ORD / 11:30 a.m."
_FLIGHT = r"^(.+)\n([A-Z]{3})\n\d{1,2}:\d{2} [ap]\.m\.\n(?:\d+h \d+m\n)?(.+)\n([A-Z]{3})\n\d{1,2}:\d{2} [ap]\.m\.$"
# per passenger in "Fare Details": "Base Fare: / $140.47 / Taxes and Fees: / $41.33"
_FARE = r"^Base Fare:(?:\n| \| )(.+)\nTaxes and Fees:(?:\n| \| )(.+)$"


class CapitalOneTravelParser(MerchantParser):
    slug = "capital_one_travel"
    display_name = "Capital One Travel"
    domains = ("capitalonebooking.com",)

    def kind(self) -> Kind | None:
        # "Check out your full receipt with flight and passenger details below."
        return Kind.RECEIPT if re.search(r"your full receipt", self.text, re.I) else None

    def order_number(self) -> str:
        # "Your confirmation codes": each airline's, then "Capital One Travel / H-H-G4K8NY7KW4"
        return self.search_text(r"^Capital One Travel\n([A-Z0-9][A-Z0-9-]{5,})$", flags=re.M)

    def items(self) -> list[Item]:
        # flights are listed under their day: "July 15, 2026"
        segments = [(f"{m[1]} ({m[2]})", f"{m[3]} ({m[4]})", day, day)
                    for m, day in self.under_headings(_FLIGHT, r"^(\w+ \d{1,2}, \d{4})$")]
        fares = [self.money(m[1]) for m in self.search_all(_FARE)]
        if not segments or not fares:
            raise FieldNotFound("flights or fares")
        items = fare_items(route_name(segments), fares)
        # "Seat Selection / $105.44" right after the fares (the seat list below repeats it per seat)
        seats = re.search(r"^Seat Selection(?:\n| \| )(\$[\d,.]+)\nTotal", self.text, re.M)
        return items + ([Item("Seat Selection", unit_price=self.money(seats[1]))] if seats else [])

    def tax(self) -> Decimal:
        return sum((self.money(m[2]) for m in self.search_all(_FARE)), Decimal(0))

    def total(self) -> Decimal:
        # "Card Payment from Capital One Venture X Visa *1684 / $169.04", else "Total / US$469.04"
        paid = re.search(r"^Card Payment from .+?(?:\n| \| )(\$[\d,.]+)$", self.text, re.M)
        return self.money(paid[1] if paid else self.search_text(r"^Total(?:\n| \| )(.+)$", flags=re.M))

    def discount(self) -> Decimal:
        # "Venture X...1684 Annual Travel Credit Applied / -$300.00"
        credits = self.search_all(r"^.*Credit Applied(?:\n| \| )-(\$[\d,.]+)$")
        if not credits:
            raise FieldNotFound("credit")
        return sum((self.money(m[1]) for m in credits), Decimal(0))

    def currency(self) -> str:
        # "This booking will be charged in USD."
        return self.search_text(r"will be charged in ([A-Z]{3})\b")
