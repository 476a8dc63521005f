"""Uber - ride receipts from uber.com ("Your Saturday evening trip with Uber").

The receipt marks its parts with data-testid attributes. A "charge summary" sent before the
payment is processed says "This is not a payment receipt": kind OTHER, not a purchase.
"""

import re
from datetime import date
from decimal import Decimal

import babel.numbers

from parsers.base import FieldNotFound, Item, Kind, MerchantParser, element_text


class UberParser(MerchantParser):
    slug = "uber"
    display_name = "Uber"
    domains = ("uber.com",)

    def _charge_summary(self) -> bool:
        return re.search(r"This is not a payment receipt", self.text, re.I) is not None

    def kind(self) -> Kind | None:
        if self._charge_summary():
            return Kind.OTHER
        # "Thanks for riding" with a "Payments" section: the ride was charged
        return Kind.RECEIPT if self.css('[data-testid^="payments_"]') else None

    def _fare_lines(self) -> list[tuple[str, Decimal]]:
        """("Trip fare", 37.03), ("Sales Tax", 2.76), ("Promotion", -8.32) ..."""
        labels = self.css('[data-testid^="fare_line_item_label_"]')
        amounts = self.css('[data-testid^="fare_line_item_amount_"]')
        return [(element_text(label), self.money(element_text(amount)) * (-1 if "-" in element_text(amount) else 1))
                for label, amount in zip(labels, amounts, strict=False)]

    def order_date(self) -> date:
        # the receipt opens with the trip's date: "Jan 17, 2026"
        return self.date(self.search_text(r"^(\w{3} \d{1,2}, \d{4})$", flags=re.M))

    def items(self) -> list[Item]:
        if self._charge_summary():  # no purchase yet: the receipt follows once the card is charged
            raise FieldNotFound("charge summary")
        product = self.css_text('[data-testid="vehicle_type"]')  # "Black", "UberX", "Comfort"
        name = product if product.lower().startswith("uber") else f"Uber {product}"
        items = [Item(name if label == "Trip fare" else label, unit_price=amount)
                 for label, amount in self._fare_lines() if label in ("Trip fare", "Tip")]
        if not items:
            raise FieldNotFound("trip fare")
        return items

    def tax(self) -> Decimal:
        # surcharges, fees and taxes: every positive line that is not the fare or a tip
        return sum((a for label, a in self._fare_lines() if a > 0 and label not in ("Trip fare", "Tip")), Decimal(0))

    def discount(self) -> Decimal:
        cuts = [-a for _, a in self._fare_lines() if a < 0]  # "Promotion / -$8.32"
        if not cuts:
            raise FieldNotFound("discount")
        return sum(cuts, Decimal(0))

    def total(self) -> Decimal:
        if self._charge_summary():
            raise FieldNotFound("charge summary")
        return self.money(self.css_text('[data-testid="total_fare_amount"]'))

    def currency(self) -> str:
        # "$" is read with the pickup's country: "..., New York, NY 10009-6925, US"
        pickup = self.css('[data-testid="address_point_0_address"]')
        country = re.search(r", ([A-Z]{2})$", element_text(pickup[0])) if pickup else None
        if self._currency_hint == "$" and country:
            return babel.numbers.get_territory_currencies(country[1])[0]
        if self._currency_hint:
            return self._currency_hint
        raise FieldNotFound("currency")
