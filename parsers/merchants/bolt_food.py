"""Bolt Food - delivery receipts from bolt.eu ("Bon Appetit, <name>! This is your receipt.").

One table lists "1 ×" + dish (options in a span under it) + price, then "Delivery fee",
any "Campaign: <code>" (negative) and "Total charged:". No order number is printed.
"""

import re
from datetime import date
from decimal import Decimal

from parsers.base import FieldNotFound, Item, Kind, Match, MerchantParser, element_text

MONEY = r"-?\d[\d.,]*\s?€|-?€\s?\d[\d.,]*"


class BoltFoodParser(MerchantParser):
    slug = "bolt_food"
    display_name = "Bolt Food"
    domains = ("bolt.eu",)
    # the food receipt's own artwork ("email_resource/delivery/BoltFood.png"); rides receipts differ
    match = (Match("body", r"email_resource/delivery/BoltFood\.png"),)

    def kind(self) -> Kind:
        return Kind.RECEIPT  # "This is your receipt." - the order is delivered and charged

    def order_date(self) -> date:
        # "07-11-2021" in the header is day-month-year whatever the language
        day, month, year = self.search_text(r"\b(\d{2})-(\d{2})-(\d{4})\b", group=0).split("-")
        return date(int(year), int(month), int(day))

    def items(self) -> list[Item]:
        items = []
        for row in self.xpath("//tr[td[1]/table//span[contains(., '×')]][td[2]]"):
            count, *parts = [element_text(e) for e in row.xpath("./td[1]//span")]
            name = re.sub(r"\s*🎁.*$", "", parts[0]) if parts else ""  # drop the "🎁 30% OFF!" badge
            options = ", ".join(p for p in parts[1:] if p)
            quantity = int(re.sub(r"\D", "", count) or 1)
            items.append(Item(name=f"{name} ({options})" if options else name, quantity=quantity,
                              line_total=self.money(element_text(row.xpath("./td[2]")[0]))))
        if not items:
            raise FieldNotFound("items")
        return items

    def shipping(self) -> Decimal:
        return self.money(self.search_text(rf"^Delivery fee\n({MONEY})$", flags=re.M))

    def discount(self) -> Decimal:
        # "Campaign: NKHLTN1JP8JJTW7\n-1.50€" (one line per promotion)
        found = self.search_all(rf"^(?:Campaign|Promo).*\n-({MONEY})$")
        if not found:
            raise FieldNotFound("discount")
        return sum((self.money(m.group(1)) for m in found), Decimal(0))

    def total(self) -> Decimal:
        return self.money(self.search_text(rf"^Total charged:\n({MONEY})$", flags=re.M))

    def currency(self) -> str:
        return "EUR" if "€" in self.search_text(rf"^Total charged:\n({MONEY})$", flags=re.M) else super().currency()

    def merchant_domain(self) -> str | None:
        # a bare body still links its cost document on "delivery-invoicing.bolt.eu"
        return "bolt.eu" if self.mail.sender_domain == "bolt.eu" or "bolt.eu/" in (self.mail.html or "") else None
