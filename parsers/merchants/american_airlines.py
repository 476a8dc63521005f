"""American Airlines - emails from aa.com ("Your trip confirmation (SFO - SHV)")."""

import re
from datetime import date
from decimal import Decimal

from parsers.base import FieldNotFound, Item, Kind, MerchantParser, fare_items, route_name

# A flight: "SFO / San Francisco / 7:40 AM / AA 2904 / [Operated by ...] / DFW / Dallas/Fort Worth / 1:10 PM"
_FLIGHT = r"^([A-Z]{3})\n(.+)\n\d{1,2}:\d{2} [AP]M\n[A-Z0-9]{2} \d+\n(?:.+\n){0,3}?([A-Z]{3})\n(.+)\n\d{1,2}:\d{2} [AP]M$"
# A line of "Your purchase": "New ticket (0012107179603) / $118.60 / [$87.44 + Taxes & carrier-imposed fees $31.16]"
_LINE = (r"^(.+?)(?: \(\d+\))?(?:\n| \| )\$[\d,.]+\n(?:Document #: \(\d+\)\n)?"
         r"\[(\$[\d,.]+)\s*\+ Taxes & carrier-imposed fees (\$[\d,.]+)\]")


class AmericanAirlinesParser(MerchantParser):
    slug = "american_airlines"
    display_name = "American Airlines"
    domains = ("aa.com",)

    def kind(self) -> Kind | None:
        # the ticketing email is headed "Your trip confirmation and receipt"
        return Kind.RECEIPT if re.search(r"confirmation and receipt", self.text, re.I) else None

    def order_number(self) -> str:
        return self.search_text(r"Record Locator:\s*([A-Z0-9]{6})\b")

    def order_date(self) -> date:
        return self.date(self.search_text(r"^Issued:\n(.+)$", flags=re.M))

    def _route(self) -> str:
        # flights are grouped under day headings such as "Saturday, February 10, 2024"
        segments = [(f"{m[2]} ({m[1]})", f"{m[4]} ({m[3]})", day, day)
                    for m, day in self.under_headings(_FLIGHT, r"^(\w+day, \w+ \d{1,2}, \d{4})$")]
        if not segments:
            raise FieldNotFound("flights")
        return route_name(segments)

    def items(self) -> list[Item]:
        lines = self.search_all(_LINE)
        tickets = [self.money(m[2]) for m in lines if m[1] == "New ticket"]
        items = fare_items(self._route(), tickets) if tickets else []
        return items + [Item(m[1], unit_price=self.money(m[2])) for m in lines if m[1] != "New ticket"]

    def tax(self) -> Decimal:
        return sum((self.money(m[3]) for m in self.search_all(_LINE)), Decimal(0))

    def total(self) -> Decimal:
        return self.money(self.search_text(r"^Total cost\n(.+)$", flags=re.M))

    def currency(self) -> str:
        # "We charged $128.81 to your card": aa.com prints a bare "$" for US dollars
        return "USD" if self._currency_hint in (None, "$") else self._currency_hint
