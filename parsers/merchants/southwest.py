"""Southwest Airlines - trip emails from southwest.com.

The itinerary ("Anton's 09/30 Las Vegas trip (4474MV): itinerary.") and the pre-trip
"Your 11/01 trip to ... is all set." carry the flights and passengers but no prices:
they give one item (the trip, one ticket per passenger) and no total.
"""

import re
from datetime import date

from parsers.base import FieldNotFound, Item, MerchantParser, route_name

# "Flight 1: / Friday, 09/30/2022" heads each flight of "Your itinerary"
_DAY = r"^Flight \d+:\n\w+, (\d{2}/\d{2}/\d{4})$"
# "DEPARTS / OAK 03:00PM / Oakland / ARRIVES / LAS 04:30PM / Las Vegas"
_FLIGHT = r"^DEPARTS\n([A-Z]{3}) \d{1,2}:\d{2}[AP]M\n(.+)\nARRIVES\n([A-Z]{3}) \d{1,2}:\d{2}[AP]M\n(.+)$"
# the trip summary: "SJC / SNA / San Jose, CA to Orange County, CA"
_SUMMARY = r"^([A-Z]{3})\n([A-Z]{3})\n(.+) to (.+)$"


class SouthwestParser(MerchantParser):
    slug = "southwest"
    display_name = "Southwest Airlines"
    domains = ("southwest.com",)
    states_total = False  # trip emails carry no prices

    def order_number(self) -> str:
        return self.search_text(r"Confirmation #\s*([A-Z0-9]{6})\b")

    def order_date(self) -> date:
        return self.date(self.search_text(r"Confirmation date:\s*(\d{2}/\d{2}/\d{4})"))

    def _route(self) -> str:
        segments = [(f"{m[2]} ({m[1]})", f"{m[4]} ({m[3]})", day, day)
                    for m, day in self.under_headings(_FLIGHT, _DAY)]
        if segments:
            return route_name(segments)
        summary = re.search(_SUMMARY, self.text, re.M)
        if not summary:
            raise FieldNotFound("flights")
        return f"{summary[3]} ({summary[1]}) → {summary[4]} ({summary[2]})"

    def items(self) -> list[Item]:
        passengers = len(self.search_all(r"^PASSENGER$"))
        return [Item(self._route(), quantity=max(passengers, 1))]
