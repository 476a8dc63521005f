"""Chase Travel - "Travel Reservation Center Trip ID # ..." from chasetravel.com.

Trips are paid with Ultimate Rewards points and/or the card: the total is the cash billed to
the card, and points worth dollars count as a discount off the trip price.
"""

import re
from decimal import Decimal

from parsers.base import FieldNotFound, Item, Kind, MerchantParser

# A booked flight: "Flight / $538.14 / <dates> / 1 traveler / Airline confirmation: X / New York (JFK) /
# Mexico City (MEX)"; the price may read "53,934 points + $98.29" on a points booking.
_FLIGHT = (r"^Flight\n(.+)\n.+\n\d+ travelers?\n(?:Airline confirmation: .+\n)?"
           r"(.+ \([A-Z]{3}\))\n(.+ \([A-Z]{3}\))\n")


class ChaseTravelParser(MerchantParser):
    slug = "chase_travel"
    display_name = "Chase Travel"
    domains = ("chasetravel.com",)

    def kind(self) -> Kind | None:
        # a "Payment summary" (points redeemed, billed to card) means the trip is paid for
        return Kind.RECEIPT if "\nPayment summary\n" in self.text else None

    def order_number(self) -> str:
        return self.search_text(r"Trip ID:?\s*#?\s*([A-Z0-9]{6,})\b")

    def items(self) -> list[Item]:
        items = []
        for m in self.search_all(_FLIGHT):
            # "Return :" below a flight makes it a round trip back to where it started
            back = f" → {m[2]}" if re.search(r"^Return\s*:", self.text[m.end():], re.M) else ""
            price = None if "point" in m[1] else self.money(m[1])
            items.append(Item(f"{m[2]} → {m[3]}{back}", unit_price=price))
        return items

    def _amount(self, label: str) -> Decimal:
        # "Trip total / $538.14", "Billed to card / $338.50" in "Payment summary"
        return self.money(self.search_text(rf"^{label}(?:\n| \| )(\$[\d,.]+)$", flags=re.M))

    def total(self) -> Decimal:
        try:
            return self._amount("Billed to card")
        except FieldNotFound:
            if not re.search(r"^Points redeemed$", self.text, re.M):
                return self._amount("Trip total")
        # all points: "Trip total / 53,934 points + $98.29" is cash for taxes, a bare "$550.73" none
        cash = re.search(r"^Trip total(?:\n| \| )[\d,]+ points \+ (\$[\d,.]+)$", self.text, re.M)
        return self.money(cash[1]) if cash else Decimal(0)

    def discount(self) -> Decimal:
        # the dollars paid with points: the flights' prices less the cash billed to the card
        if not re.search(r"^Points redeemed$", self.text, re.M):
            raise FieldNotFound("no points")
        return sum((i.unit_price or 0 for i in self.items()), Decimal(0)) - self.total()

    def currency(self) -> str:
        return "USD"  # Chase Travel (US cardmembers) prices in US dollars
