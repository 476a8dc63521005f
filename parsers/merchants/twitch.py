"""Twitch - Bits and subscription invoices (Recurly) from purchase-noreply@twitch.tv.

The invoice lives in the text/plain part; the HTML part (when there is one) only repeats
the description, so everything is read from the plain text.
"""

import re
from datetime import date
from decimal import Decimal

from parsers.base import FieldNotFound, Item, Kind, Match, MerchantParser

MONEY = r"[^\d\s]{0,3}\d[\d.,]*"


class TwitchParser(MerchantParser):
    slug = "twitch"
    display_name = "Twitch"
    domains = ("twitch.tv",)
    # only the purchase mailbox sends invoices ("Invoice Receipt", "Thanks for Subscribing, ...")
    match = (Match("from", r"purchase-noreply@twitch\.tv"), Match("subject", r"Invoice Receipt|Thanks for Subscribing"))

    @property
    def invoice(self) -> str:
        return self.mail.plain_text or self.text

    def kind(self) -> Kind | None:
        # "Invoice 696026438" marks a paid invoice, even under "Thanks for Subscribing"
        return Kind.RECEIPT if re.search(r"^Invoice \d+$", self.invoice, re.M) else None

    def order_number(self) -> str:
        return self.search_text(r"^Invoice (\d+)$", flags=re.M, text=self.invoice)

    def order_date(self) -> date:
        # "Invoice 696026438\nFeb 20, 2026"
        return self.date(self.search_text(r"^Invoice \d+\n(.+)$", flags=re.M, text=self.invoice))

    def items(self) -> list[Item]:
        # "$7.00 --  500 Bits" (a period line such as "Mar 6 - Apr 6, 2026" may follow)
        found = re.findall(rf"^({MONEY}) --\s+(.+)$", self.invoice, re.M)
        if not found:
            raise FieldNotFound("items")
        return [Item(name=name, line_total=self.money(price)) for price, name in found]

    def subtotal(self) -> Decimal:
        return self.money(self.search_text(rf"^Subtotal:\s+({MONEY})$", flags=re.M, text=self.invoice))

    def total(self) -> Decimal:
        # "Paid: $7.39" is the charge; "Total Due: $0.00" is only what is still owed
        return self.money(self.search_text(rf"^Paid:\s+({MONEY})$", flags=re.M, text=self.invoice))

    def tax(self) -> Decimal:
        # Recurly does not itemise the sales tax: it is what was paid beyond the subtotal
        difference = self.total() - self.subtotal()
        if difference <= 0:
            raise FieldNotFound("tax")
        return difference

    def currency(self) -> str:
        symbol = super().currency()
        # "$" billed to "... United States" or for a "Tier 1 - 1 Month Subscription - US"
        if symbol == "$" and re.search(r"United States$| - US$", self.invoice, re.M):
            return "USD"
        return symbol
