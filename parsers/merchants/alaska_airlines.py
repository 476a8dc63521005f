"""Alaska Airlines - emails from alaskaair.com ("Your confirmation receipt: ABCDEF ...")."""

from datetime import date
from decimal import Decimal

from parsers.base import FieldNotFound, Item, MerchantParser, fare_items, route_name

# A flight's two ends: "Thu, Dec 04 / 06:10 PM / EWR / Newark-Liberty Intl." then the same for arrival.
_END = r"(\w{3}, \w{3} \d{1,2})\n\d{1,2}:\d{2} [AP]M\n([A-Z]{3})\n(.+)"


class AlaskaAirlinesParser(MerchantParser):
    slug = "alaska_airlines"
    display_name = "Alaska Airlines"
    domains = ("alaskaair.com",)

    def order_number(self) -> str:
        # "Confirmation code:" then the record locator on its own line
        return self.search_text(r"Confirmation code:\s*([A-Z0-9]{6})\b")

    def order_date(self) -> date:
        # "Nonrefundable fare of $386.60 to be charged to the Visa card ... on Oct 29, 2025."
        return self.date(self.search_text(r"to be charged to .+? on (\w{3} \d{1,2}, \d{4})"))

    def items(self) -> list[Item]:
        segments = [(f"{m[3]} ({m[2]})", f"{m[6]} ({m[5]})", m[1], m[4])
                    for m in self.search_all(rf"^{_END}\n{_END}$")]
        # one "Base fare and surcharges" per ticket (per traveler) in "Summary of airfare charges"
        fares = [self.money(m[1]) for m in self.search_all(r"^Base fare and surcharges(?:\n| \| )(.+)$")]
        if not segments or not fares:
            raise FieldNotFound("flights or fares")
        return fare_items(route_name(segments), fares)

    def tax(self) -> Decimal:
        taxes = [self.money(m[1]) for m in self.search_all(r"^Taxes and other fees(?:\n| \| )(.+)$")]
        if not taxes:
            raise FieldNotFound("taxes")
        return sum(taxes, Decimal(0))

    def total(self) -> Decimal:
        return self.money(self.search_text(r"Total charges for air travel(?:\n| \| )(.+)"))

    def currency(self) -> str:
        # alaskaair.com prices in US dollars and prints a bare "$"
        return "USD" if self._currency_hint in (None, "$") else self._currency_hint
