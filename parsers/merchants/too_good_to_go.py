"""Too Good To Go - emails from toogoodtogo.com (German and English templates, 2020-2025).

What is bought is a surprise bag ("Überraschungstüte") from one store listing; the email names
the listing ("Nordsee - Spandauer Straße (Snacks)"), the count and the price of all bags. The
date it prints is the pickup date, not the order date, so order_date stays the email's date.
The invoice email carries its amount and items only in the attached PDF (parsers.pdf: one line
per row, cells COLUMN_GAP apart).
"""

import re
from datetime import date
from decimal import Decimal
from functools import cached_property

from parsers.base import FieldNotFound, Item, Kind, MerchantParser
from parsers.pdf import COLUMN_GAP, attachment_text

AMOUNT = r"(?:[$£€]\s?)?\d[\d.,]*(?:\s?(?:€|£|kr|zł|CHF|Kč|Ft))?(?: \([A-Z]{3}\))?"
# "Bestell-ID: too38e9h7io" (also "Bestell-ID:\n<id>" in 2025, "Bestell-ID rio3sec8wgb" in the PDF)
ORDER_ID = r"(?:Bestell-ID|Order ID|Order-ID)\s*:?\s*([A-Za-z0-9]{6,})\b"
# "Gesamtpreis: 4,00 €" / "Gesamtpreis:\n11,40 €" / "Total price: £3.50"
PRICE = rf"(?:Gesamtpreis|Total price|Total)\s*:\s*({AMOUNT})"
# PDF table cells: on one line COLUMN_GAP apart ("Gesamt    7,00 € (EUR)"), or one per line
# where the PDF draws each cell on a line of its own ("Gesamt\n7,00 € (EUR)").
CELL = rf"(?:{COLUMN_GAP}|\n)"
# the table header also says "Gesamt", followed by a column name, not an amount
PDF_TOTAL = re.compile(rf"^(?:Gesamt|Total){CELL}({AMOUNT})$", re.M)
# "Du hast deine Bestellung storniert (id)" / "You have cancelled your order (id)"
CANCELLED = re.compile(r"storniert|cancell?ed|annulée?", re.I)
# "Deine Rechnung von Too Good To Go" / "Die Rechnung für deine Bestellung <id> ist an diese E-Mail angehängt"
INVOICE = re.compile(r"Rechnung|invoice|receipt", re.I)


class TooGoodToGoParser(MerchantParser):
    slug = "too_good_to_go"
    display_name = "Too Good To Go"
    domains = ("toogoodtogo.com",)

    def kind(self) -> Kind | None:
        subject = self.mail.original.subject or ""
        if CANCELLED.search(subject):
            return Kind.CANCELLATION
        if INVOICE.search(subject):
            # without its PDF an invoice email holds no amount: nothing to record
            return Kind.RECEIPT if PDF_TOTAL.search(self._pdf) else Kind.OTHER
        if re.search(ORDER_ID, self.text) and re.search(PRICE, self.text):
            return Kind.ORDER
        # "Änderung der Abholzeit für Reservierung ..." / "Abholzeit geändert – <store>": a notice
        if re.search(r"Abholzeit|pick-?up time|collection time", subject + "\n" + self.text, re.I):
            return Kind.OTHER
        return None

    @cached_property
    def _pdf(self) -> str:
        return attachment_text(self.mail).text

    def order_number(self) -> str:
        for text in (self.text, self._pdf):
            if found := re.search(ORDER_ID, text):
                return found.group(1)
        # subject "... storniert (gd3sypjntuz)"; body "Die Rechnung für deine Bestellung too38e9h7io ist ..."
        found = re.search(r"\(([a-z0-9]{8,})\)\s*$", self.mail.original.subject or "")
        return found.group(1) if found else self.search_text(r"(?:Bestellung|order) ([a-z0-9]{8,}) (?:ist|is)\b")

    def order_date(self) -> date:
        # PDF invoice: "Datum 24.07.23"; the order email only states the pickup date
        return self.date(self.search_text(r"^(?:Datum|Date)\s+(\d{1,2}[./]\d{1,2}[./]\d{2,4})$",
                                          flags=re.M, text=self._pdf))

    def items(self) -> list[Item]:
        if self._pdf:  # PDF rows: description, quantity, unit price, line total
            rows = re.findall(rf"^(.+?){CELL}(\d+){CELL}({AMOUNT}){CELL}({AMOUNT})$", self._pdf, re.M)
            if rows:
                return [Item(name, int(qty), self.money(unit), self.money(line)) for name, qty, unit, line in rows]
        # "Wir bestätigen hiermit deine Bestellung bei <listing>." / "... your order at <listing>!"
        store = self.search_text(r"(?:deine Bestellung bei|your order (?:at|from|with))\s+(.+?)[.!]?$", flags=re.M | re.I)
        quantity = int(self.search_text(r"(?:Anzahl|Quantity)\s*:\s*(\d+)"))
        return [Item(store, quantity, line_total=self.total())]

    def total(self) -> Decimal:
        found = PDF_TOTAL.search(self._pdf)
        return self.money(found.group(1) if found else self.search_text(PRICE))

    def tax(self) -> Decimal:
        # PDF: "USt., 7%    0,46 € (EUR)" - one line per VAT rate
        taxes = re.findall(rf"^(?:USt\.|MwSt\.|VAT|TVA)[^\n]*?%{CELL}({AMOUNT})$", self._pdf, re.M)
        if not taxes:
            raise FieldNotFound("tax")
        return sum((self.money(t) for t in taxes), Decimal(0))

    def currency(self) -> str:
        # the PDF names the ISO code: "7,00 € (EUR)"
        found = re.search(r"\d \S+ \(([A-Z]{3})\)", self._pdf)
        return found.group(1) if found else super().currency()

