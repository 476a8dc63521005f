"""Apple - App Store / iCloud / AppleCare receipts from apple.com, itunes.com.

Two templates: the older table one (a desktop and a mobile copy of everything; we read
`div.aapl-desktop-div` only) and the 2025 one (`subscription-lockup` rows, then a
"Billing and Payment" block). The 2025 one also arrives as plain text in a <pre>, so
it is read from the visible text, line by line.
"""

import re
from datetime import date
from decimal import Decimal

from parsers.base import FieldNotFound, Item, Match, MerchantParser, element_text

MONEY = r"(?:[A-Z]{0,3}[$£€¥]|[A-Z]{3} )\s?\d[\d.,]*|\d[\d.,]*\s?(?:€|kr|zł|[A-Z]{3})"
PERIOD = re.compile(r"(?i)(?:monthly|yearly|annual|weekly|mensuel|annuel|hebdomadaire)")
DOLLARS = {"USA": "USD", "CAN": "CAD", "AUS": "AUD", "NZL": "NZD", "MEX": "MXN", "SGP": "SGD",
           "US": "USD", "CA": "CAD", "AU": "AUD", "NZ": "NZD", "MX": "MXN", "SG": "SGD"}


class AppleParser(MerchantParser):
    slug = "apple"
    display_name = "Apple"
    domains = ("apple.com", "itunes.com")
    # every Apple receipt loads its artwork from the mzstatic CDN ("s.mzstatic.com/email/...")
    match = (Match("body", r"mzstatic\.com/email/"),)

    def order_number(self) -> str:
        # "ORDER ID" (old) / "Order ID:" (2025) / "N° DE COMMANDE" (fr), value on the next line
        return self.search_text(r"^(?:order id|n° de commande):?\n([A-Z0-9]{8,12})$", flags=re.I | re.M)

    def order_date(self) -> date:
        try:  # old: "DATE\nFeb 9, 2025" / "DATE\n14 Mar 2023"
            return self.date(self.search_text(r"^DATE\n(.+)$", flags=re.M))
        except FieldNotFound:  # 2025: "August 22, 2025" on the line above "Order ID:"
            return self.date(self.search_text(r"^(.+)\n(?:order id|n° de commande):?\n", flags=re.M | re.I))

    def items(self) -> list[Item]:
        items = self._table_items() or self._lockup_items()
        if not items:
            raise FieldNotFound("items")
        if len(items) == 1 and items[0].line_total is None:
            items[0].line_total = self.subtotal()  # the <pre> rendering drops the item's own price
        return items

    def _table_items(self) -> list[Item]:
        items = []
        for cell in self.css("div.aapl-desktop-div td.item-cell"):
            row = cell.getparent()
            first = [element_text(e) for e in cell.cssselect("span.title")]
            # in-app purchases name the product in span.artist, subscriptions in span.duration
            extra = [element_text(e) for e in cell.cssselect("span.duration, span.artist")]
            if cell.cssselect("span.type") and "in-app" not in element_text(cell.cssselect("span.type")[0]).lower():
                extra = []  # a paid app: span.artist is its developer
            price = row.cssselect("td.price-cell")
            image = row.cssselect("td.artwork-cell img")
            items.append(Item(name=_name(first[0] if first else "", extra),
                              line_total=self.money(element_text(price[0])) if price else None,
                              image=image[0].get("src") if image else None))
        return items

    def _lockup_items(self) -> list[Item]:
        # Between "Apple Account:\n<address>" and "Billing and Payment": [artwork url],
        # title, plan / "Renews ..." / codes, then the price (absent from the <pre> copy).
        found = re.search(r"^Apple (?:Account|ID):?\n[^\n]*\n(.*?)^Billing and Payment$", self.text, re.M | re.S | re.I)
        if not found:
            return []
        images = {e.get("alt"): e.get("src") for e in self.css("tr[class*=lockup] img")}
        items, lines, image = [], [], None
        for line in found.group(1).splitlines():
            if re.fullmatch(r"\[(https?://\S+)\]", line):
                image = line[1:-1]
            elif re.fullmatch(MONEY, line) and lines:
                items.append(self._lockup_item(lines, self.money(line), images.get(lines[0], image)))
                lines, image = [], None
            elif line.strip():
                lines.append(line.strip())
        if lines:
            items.append(self._lockup_item(lines, None, images.get(lines[0], image)))
        return items

    def _lockup_item(self, lines: list[str], price: Decimal | None, image: str | None) -> Item:
        extra = [line for line in lines[1:2] if not re.match(r"(?i)renews|coverage", line)]
        return Item(name=_name(lines[0], extra), line_total=price, image=image)

    def subtotal(self) -> Decimal:
        return self.money(self.search_text(rf"^Subtotal\n({MONEY})$", flags=re.M | re.I))

    def tax(self) -> Decimal:
        return self.money(self.search_text(rf"^(?:Tax|TVA|VAT)\n({MONEY})$", flags=re.M | re.I))

    def total(self) -> Decimal:
        try:  # old template: "TOTAL\n$9.99"
            return self.money(self.search_text(rf"^TOTAL\n\s*({MONEY})$", flags=re.M))
        except FieldNotFound:  # 2025: each payment method ("Visa •••• 1234") with the amount charged to it
            paid = re.findall(rf"^.*(?:••••|\.\.\.\.).*\n({MONEY})$", self.text, re.M)
            if not paid:
                raise
            return sum((self.money(amount) for amount in paid), Decimal(0))

    def currency(self) -> str:
        symbol = super().currency()
        if symbol != "$":
            return symbol
        # "$" is shared: the storefront ("storefront=USA", "cc=us") or the billing country decides
        country = re.search(r"storefront=([A-Z]{3})|[?&]cc=([a-z]{2})\b", self.mail.html or "")
        code = (country.group(1) or country.group(2)).upper() if country else None
        if code is None and re.search(r"^(?:USA|United States)$", self.text, re.M):
            code = "US"
        if code is None and re.search(rf"^Tax\n{MONEY}$", self.text, re.M):
            code = "US"  # sales tax added on top as plain "Tax": only the US storefront bills that way
        return DOLLARS.get(code or "", symbol)


def _name(title: str, extra: list[str]) -> str:
    """'Timeleft - Meet New People' + 'Timeleft X (Monthly)'; a bare 'Monthly' adds nothing."""
    extra = [e for e in extra if e and not PERIOD.fullmatch(e) and e not in title]
    return " – ".join([title.strip(), *extra[:1]])
