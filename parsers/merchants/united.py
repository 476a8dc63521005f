"""United Airlines - "eTicket Itinerary and Receipt for Confirmation ABC123" from united.com."""

import re
from datetime import date
from decimal import Decimal

from parsers.base import FieldNotFound, Item, MerchantParser, route_name

# "Flight 1 of 2 UA2328 | Class: ..." / "Fri, Jul 11, 2025 | Fri, Jul 11, 2025" / "03:55 PM | 07:04 PM" /
# "Newark, NJ/New York, NY, US (EWR) | San Francisco, CA, US (SFO)"
_FLIGHT = r"^Flight \d+ of \d+ .*\n(.+?) \| (.+)\n.*\n([^,(|]+).*?\(([A-Z]{3})\) \| ([^,(|]+).*?\(([A-Z]{3})\)$"
# "Airfare: | 266.39", "U.S. Transportation Tax: | 19.98", ... in each "... Purchase Summary"
_AMOUNT = r"^(.+?): \| ([\d,]+\.\d{2})(?: ([A-Z]{3}))?$"


class UnitedParser(MerchantParser):
    slug = "united"
    display_name = "United Airlines"
    domains = ("united.com",)

    def order_number(self) -> str:
        return self.search_text(r"Confirmation Number:\s*([A-Z0-9]{6})\b")

    def order_date(self) -> date:
        return self.date(self.search_text(r"Date of purchase: \| (.+)"))

    def _summaries(self) -> list[list[tuple[str, Decimal]]]:
        """Each "Purchase Summary" / "Additional Purchase Summary" as (label, amount) lines."""
        blocks = re.split(r"^(?:Additional )?Purchase Summary$", self.text, flags=re.M)[1:]
        return [[(m[1], Decimal(m[2].replace(",", ""))) for m in re.finditer(_AMOUNT, block, re.M)]
                for block in blocks]

    def _passengers(self, lines: list[tuple[str, Decimal]]) -> int:
        amounts = dict(lines)
        per = amounts.get("Total Per Passenger")
        return int(amounts["Total"] / per) if per else 1

    def items(self) -> list[Item]:
        segments = [(f"{m[3].strip()} ({m[4]})", f"{m[5].strip()} ({m[6]})", m[1], m[2])
                    for m in self.search_all(_FLIGHT)]
        items = []
        for lines in self._summaries():
            for label, amount in lines:
                if label == "Airfare":
                    items.append(Item(route_name(segments), self._passengers(lines), unit_price=amount))
                elif not re.search(r"tax|fee|charge|total", label, re.I):  # "Basic Economy Seat Assignment"
                    items.append(Item(re.sub(r"\s*\(Reference Number.*", "", label), unit_price=amount))
        if not segments or not items:
            raise FieldNotFound("flights")
        return items

    def tax(self) -> Decimal:
        taxes = Decimal(0)
        for lines in self._summaries():
            count = self._passengers(lines)
            for label, amount in lines:
                if re.search(r"tax|fee|charge", label, re.I) and not re.search(r"total", label, re.I):
                    taxes += amount * count
        return taxes

    def total(self) -> Decimal:
        # the ticket and each additional purchase have their own "Total: | 316.97 USD"
        totals = [dict(lines)["Total"] for lines in self._summaries() if "Total" in dict(lines)]
        if not totals:
            raise FieldNotFound("Total")
        return sum(totals, Decimal(0))

    def currency(self) -> str:
        return self.search_text(r"^Total: \| [\d,.]+ ([A-Z]{3})$", flags=re.M)
