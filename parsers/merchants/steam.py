"""Steam - purchase receipts from steampowered.com.

Two templates: the current one (one dark `td.p-15` box per game: capsule image, name,
price; then Invoice / Date issued / Subtotal / Tax / Total) and the 2014-15 one (a plain
table of "<b>name</b> | 9.99 EUR" rows, then Total / Confirmation Number / Date confirmed),
which survives mostly as bare bodies whose UTF-8 was decoded as cp1252 ("youâ€™re").
"""

import re
from datetime import date
from decimal import Decimal

from parsers.base import FieldNotFound, Item, Kind, Match, MerchantParser, element_text

# Steam prints every other dollar with its own prefix ("CDN$ 5.99", "A$ 5.99", "Mex$ 99"),
# so a bare "$" is the US storefront's.
PREFIXES = {"CDN$": "CAD", "A$": "AUD", "NZ$": "NZD", "Mex$": "MXN", "S$": "SGD", "HK$": "HKD",
            "NT$": "TWD", "R$": "BRL", "COL$": "COP", "CLP$": "CLP", "$": "USD"}
MONEY = r"(?:[A-Za-z]{0,3}\$|[£€¥₩₹])\s?\d[\d.,]*|\d[\d.,]*\s?(?:€|[A-Z]{3}|pуб\.|zł|TL)"


class SteamParser(MerchantParser):
    slug = "steam"
    display_name = "Steam"
    domains = ("steampowered.com",)
    # "Thank you for your recent transaction on Steam." (current) / "... purchase on Steam." (old)
    match = (Match("body", r"Thank you for your recent (?:purchase|transaction) on Steam"),)

    def kind(self) -> Kind | None:
        # "This email message will serve as your receipt." - bare bodies have no subject to say so
        return Kind.RECEIPT if re.search(r"will serve as your receipt", self.text) else None

    def order_number(self) -> str:
        # "Invoice:" (current) / "Confirmation Number:" (old), value on the next line
        return self.search_text(r"^(?:Invoice|Confirmation Number):\n(\d+)$", flags=re.M)

    def order_date(self) -> date:
        # "Date issued:\nNov 2, 2025 @ 6:24pm PST" / "Date confirmed:\nSat Jan 10 12:44:36 2015"
        found = self.search_text(r"^Date (?:issued|confirmed):\n(.+)$", flags=re.M)
        return self.date(found.split("@")[0])

    def items(self) -> list[Item]:
        items = self._boxes() or self._rows()
        if not items:
            raise FieldNotFound("items")
        return items

    def _boxes(self) -> list[Item]:
        items = []
        for box in self.css('td.p-15[bgcolor="#393e47"]'):
            name = box.cssselect("td.text-17 strong")
            prices = box.cssselect("td.text-14 strong")  # a sale shows the struck-out price first
            image = box.cssselect("td.fluid-img img")
            if name and prices:
                items.append(Item(name=_unmangle(element_text(name[0])),
                                  line_total=self.money(element_text(prices[-1])),
                                  image=image[0].get("src") if image else None))
        return items

    def _rows(self) -> list[Item]:
        items: list[Item] = []
        # the innermost table holding "Total:" comes last in document order
        tables = self.xpath("//table[.//b[normalize-space()='Total:']]")
        for row in tables[-1].xpath("./tr | ./tbody/tr") if tables else []:
            cells = [element_text(td) for td in row.xpath("./td")]
            if cells and cells[0] == "Total:":
                break  # payment lines ("PayPal | 2.24 EUR") follow the total
            if len(cells) == 2 and cells[0] and re.fullmatch(MONEY, cells[1]):
                items.append(Item(name=_unmangle(cells[0]), line_total=self.money(cells[1])))
        return items

    def total(self) -> Decimal:
        return self.money(self.search_text(rf"^Total:\n({MONEY})$", flags=re.M))

    def subtotal(self) -> Decimal:
        return self.money(self.search_text(rf"^Subtotal:\n({MONEY})$", flags=re.M))

    def tax(self) -> Decimal:
        return self.money(self.search_text(rf"^(?:Tax|VAT):\n({MONEY})$", flags=re.M))

    def currency(self) -> str:
        # the code or prefix printed next to the total: "2.24 EUR", "CDN$ 5.99", "$5.43"
        total = self.search_text(rf"^Total:\n({MONEY})$", flags=re.M)
        prefix = re.match(r"[A-Za-z]*\$", total)
        if prefix:
            return PREFIXES.get(prefix.group(0), "$")
        code = re.search(r"\b[A-Z]{3}\b", total)
        return code.group(0) if code else super().currency()


def _unmangle(name: str) -> str:
    """'Valve S.Ã  r.l.' -> 'Valve S.à r.l.': undo UTF-8 read as cp1252 where that is what happened."""
    try:
        return name.encode("cp1252").decode("utf-8")
    except UnicodeError:
        return name
