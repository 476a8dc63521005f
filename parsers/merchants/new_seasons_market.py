"""New Seasons Market - in-store e-receipts (sent through index.com for newseasonsmarket.com).

Basket rows: td.basket-item-qty | td.basket-item-desc | td.basket-item-amt; a weighed
item is "1" with the charged amount, and a following `.modifier` row "1.47 @ $2.99/lb".
Totals are td.basket-total-desc / td.basket-total-amt pairs - the tender line among them
("VISA-4842") carries the card's last digits, so only the labelled rows are read.
"""

import re
from datetime import date
from decimal import Decimal

from parsers.base import FieldNotFound, Item, Kind, Match, MerchantParser, element_text


class NewSeasonsMarketParser(MerchantParser):
    slug = "new_seasons_market"
    display_name = "New Seasons Market"
    domains = ("newseasonsmarket.com",)
    # "© 2017 New Seasons Market. All Rights Reserved." under a basket table
    match = (Match("body", r"New Seasons Market\. All Rights Reserved|basket-item-desc[\s\S]*newseasonsmarket\.com"),)

    def kind(self) -> Kind:
        # a till receipt, paid in the store; "Type\nReturn" would be money back
        return Kind.REFUND if re.search(r"^Type\nReturn", self.text, re.M) else Kind.RECEIPT

    def order_number(self) -> str:
        # "Ticket ID\n362" - the till's receipt number
        return self.search_text(r"^Ticket ID\n(\d+)$", flags=re.M)

    def order_date(self) -> date:
        return self.date(self.search_text(r"^Transaction Date\n(.+)$", flags=re.M))

    def items(self) -> list[Item]:
        items = []
        for row in self.xpath("//tr[td[contains(@class, 'basket-item-desc') and not(contains(@class, 'modifier'))]]"):
            quantity = element_text(row.cssselect("td.basket-item-qty")[0]) if row.cssselect("td.basket-item-qty") else ""
            amount = row.cssselect("td.basket-item-amt")
            name = element_text(row.cssselect("td.basket-item-desc")[0])
            if not name or not amount:
                continue
            items.append(Item(name=name, quantity=int(quantity) if quantity.isdigit() else 1,
                              line_total=self.money(element_text(amount[0]))))
        if not items:
            raise FieldNotFound("items")
        return items

    def _total_row(self, label: str) -> Decimal:
        for row in self.xpath("//tr[td[contains(@class, 'basket-total-desc')]]"):
            if element_text(row.cssselect("td.basket-total-desc")[0]).upper() == label:
                return self.money(element_text(row.cssselect("td.basket-total-amt")[0]))
        raise FieldNotFound(label)

    def subtotal(self) -> Decimal:
        return self._total_row("SUB TOTAL")

    def tax(self) -> Decimal:
        return self._total_row("TAX")

    def total(self) -> Decimal:
        return self._total_row("TOTAL")

    def currency(self) -> str:
        return "USD"  # "$102.65": the stores are in Oregon, Washington and California only
