"""OnePlus - Magento order confirmations from oneplus.com, oneplus.net.

"Your Order #1500335244 (placed on March 31, 2015 ...)", then the Item | Sku | Qty |
Subtotal table (one <tbody> per line, totals in tr.subtotal / tr.shipping / tr.grand_total).
"""

import re
from datetime import date
from decimal import Decimal

from parsers.base import FieldNotFound, Item, Match, MerchantParser, element_text


class OnePlusParser(MerchantParser):
    slug = "oneplus"
    display_name = "OnePlus"
    domains = ("oneplus.com", "oneplus.net")
    # "Thank you again for ordering from OnePlus." / the store logo on content.oneplus.net
    match = (Match("body", r"ordering from OnePlus|content\.oneplus\.(?:net|com)/media/email"),)

    def order_number(self) -> str:
        return self.search_text(r"Your Order #\s*(\w+)")

    def order_date(self) -> date:
        # "(placed on March 31, 2015 9:35:17 AM BST)"
        return self.date(self.search_text(r"\(placed on (.+?\d{4})"))

    def items(self) -> list[Item]:
        items = []
        for row in self.xpath("//table[thead//th[normalize-space()='Sku']]/tbody/tr[not(@class)]"):
            cells = row.xpath("./td")
            if len(cells) < 4:
                continue
            name = element_text(cells[0].xpath(".//strong")[0]) if cells[0].xpath(".//strong") else element_text(cells[0])
            quantity = int(re.sub(r"\D", "", element_text(cells[2])) or 1)
            items.append(Item(name=name, sku=element_text(cells[1]) or None, quantity=quantity,
                              line_total=self.money(element_text(cells[3]))))
        if not items:
            raise FieldNotFound("items")
        return items

    def _row(self, css_class: str) -> Decimal:
        return self.money(self.css_text(f"tr.{css_class} span.price"))

    def subtotal(self) -> Decimal:
        return self._row("subtotal")

    def shipping(self) -> Decimal:
        return self._row("shipping")

    def tax(self) -> Decimal:
        return self._row("tax")

    def discount(self) -> Decimal:
        return self._row("discount")

    def total(self) -> Decimal:
        return self._row("grand_total")

    def merchant_domain(self) -> str | None:
        # a bare body: the store it links ("https://oneplus.net/nl/customer/account")
        found = re.search(r"\boneplus\.(net|com)/", self.text)
        return f"oneplus.{found.group(1)}" if found else super().merchant_domain()
