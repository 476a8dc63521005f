"""Walmart - emails from walmart.com.

Order confirmations ("Thanks for your order, Dana!") are MJML mail like Walmart's delivery
notices: "Order date:" / "Order number:" lines, then one block per product (image and name
linked to walmart.com/ip/... through the w-mt.co click tracker, "Qty 2", the line price and
maybe "$1.88/ea"), then "Subtotal", "Savings", "Shipping"/"Delivery fee", "Tax", "Total".
Delivery notices ("Delivered: ...", "Your package should arrive by ...") carry no prices and
are left to the classifier (shipping).
"""

import re
from datetime import date
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

from parsers.base import FieldNotFound, Item, Kind, MerchantParser, element_text

MONEY = r"-?\$\s?\d[\d,]*\.\d{2}"


class WalmartParser(MerchantParser):
    slug = "walmart"
    display_name = "Walmart"
    domains = ("walmart.com",)

    def kind(self) -> Kind | None:
        # an order total means an order confirmation; notices without one (and refunds,
        # cancellations, returns, which may print a total too) go to the classifier
        if re.search(r"refund|cancel|return", self.mail.original.subject or "", re.I):
            return None
        return Kind.ORDER if self._amount("Total") is not None else None

    def order_number(self) -> str:
        # "Order number: 2000137-67895124" (also "Order #2000137-67895124" in delivery notices)
        return self.search_text(r"Order (?:number:?|#)\s*(\d{7}-\d{8}|\d{6,})")

    def order_date(self) -> date:
        # "Order date: Sun, Oct 19, 2025"
        return self.date(self.search_text(r"Order date:\s*(.+)"))

    def items(self) -> list[Item]:
        items: dict[str, Item] = {}
        for link in self.css("a[href]"):
            url = _unwrap(link.get("href"))
            name = element_text(link)
            if "walmart.com/ip/" not in url or not name or url in items:
                continue
            block = link.getparent()  # the product's block: the nearest ancestor with "Qty" and a price
            while block is not None and not re.search(rf"\bQty:? \d+.*{MONEY}", element_text(block)):
                block = block.getparent()
            if block is None:
                continue
            text = element_text(block)
            prices = re.findall(rf"({MONEY})(/ea)?", text)
            line = next((self.money(p) for p, each in prices if not each), None)
            unit = next((self.money(p) for p, each in prices if each), None)
            image = next((i.get("src") for i in block.cssselect("img[src*='walmartimages']")), None)
            qty = int(re.search(r"\bQty:? (\d+)", text).group(1))
            items[url] = Item(name, qty, unit_price=unit, line_total=line, url=url, image=image)
        if not items:
            raise FieldNotFound("items")
        return list(items.values())

    def _amount(self, label: str) -> Decimal | None:
        # "Subtotal\n$38.57" (cells on their own lines) or "Subtotal | $38.57"; "Free" is 0
        found = re.search(rf"^{label}(?: \(\d+ items?\))?(?:\n| \| )({MONEY}|Free)$", self.text, re.M | re.I)
        if not found:
            return None
        return Decimal(0) if found.group(1).lower() == "free" else self.money(found.group(1))

    def _field(self, *labels: str) -> Decimal:
        for label in labels:
            if (amount := self._amount(label)) is not None:
                return amount
        raise FieldNotFound(labels[0])

    def total(self) -> Decimal:
        return self._field("Total", "Order total")

    def subtotal(self) -> Decimal:
        return self._field("Subtotal")

    def shipping(self) -> Decimal:
        return self._field("Shipping", "Delivery fee", "Delivery")

    def tax(self) -> Decimal:
        return self._field("Tax", "Taxes", "Estimated tax")

    def discount(self) -> Decimal:
        # "Savings\n-$3.00": money() drops the sign, a discount is the positive amount taken off
        return self._field("Savings", "Discount")

    def currency(self) -> str:
        return "USD"  # walmart.com sells in US dollars only ("$")


def _unwrap(href: str) -> str:
    """w-mt.co/...clickTracker?redirectTo=<walmart.com URL> -> the walmart.com URL."""
    query = parse_qs(urlsplit(href).query)
    return query.get("redirectTo", [href])[0]
