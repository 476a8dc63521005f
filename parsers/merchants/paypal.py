"""PayPal - payment receipts; the merchant is the PAYEE, never PayPal itself.

Templates: the 2015-2019 "xclick" receipt (Merchant/Seller block, CartTable), the 2015
and 2020 "Here's your receipt" (PPC), the 2020+ "RT" receipt, donation receipts. Amounts
carry their ISO code ("£13.98 GBP", "6.00 PLN", "25,00 € EUR").
"""

import copy
import re
from datetime import date
from decimal import Decimal
from functools import cached_property

from parsers.base import FieldNotFound, Item, Kind, Match, MerchantParser, element_text, registrable_domain

_AMOUNT = r"[^\s\d]{0,3} ?\d[\d.,]*\s?(?:€|\$|£)?\s?[A-Z]{3}\b"  # "£9.23 GBP", "zł6.00 PLN", "25,00 € EUR"
# "You sent a payment of £13.98 GBP to ...", "You sent a total of £9.23 GBP", "amounting to 32.00 GBP",
# "you have donated £50.00 GBP", "Sie haben eine Zahlung über 25,00 € EUR", "un paiement de 25,00 € EUR"
_HEADLINE = rf"(?:payment of|a total of|amounting to|donated|Zahlung über|Zahlung von|paiement de)\s+({_AMOUNT})"
# The payee block: label, name, then its email or web address on the next line
_PAYEE_BLOCK = (r"^(?:Merchant|Seller|Payment to:|Donations coordinator:|Händler|Verkäufer|Zahlung an:|Vendeur|"
                r"Marchand|Paiement à :?)\n(.+)\n(?:Contact email:\n)?(\S+@\S+|https?://\S+)$")
_WEBMAIL = re.compile(r"^(gmail|googlemail|hotmail|outlook|live|msn|yahoo|ymail|aol|icloud|me|mac|gmx|web|"
                      r"btinternet|sky|virginmedia|talktalk|ntlworld|orange|free|wanadoo|laposte|libero|"
                      r"t-online|proton|protonmail|yandex|mail|qq|163)\.")
_PAYPAL_TRACKING = {"ppid", "cnac", "rsta", "cust", "unptid", "t", "cal", "calc", "calf", "unp_tpcid",
                    "page", "pgrp", "e", "mchn", "s", "mail", "xt"}
# "Item Number 254143897831", "Item No X0G0 FEOWSI ...", "Item# NWG-1", "Artikelnummer ML-4471"
_SKU = r"(?:Item (?:Number|No\.?)|Item ?#|Artikelnummer|N° d'objet):?\s*(.+)"
_SHIPPING = r"Postage and packaging|Shipping|Versand|Livraison"
_TAX = r"Tax amount|Tax|VAT|MwSt\.?|TVA"


class PaypalParser(MerchantParser):
    slug = "paypal"
    display_name = "PayPal"
    domains = ("paypal.com", "paypal.co.uk", "paypal.de", "paypal.fr", "paypal.it", "paypal.es")
    match = (Match("from", r"paypal\."),
             Match("body", r"1999\s*(?:-|–|&ndash;)\s*20\d\d,?\s+PayPal\b"))  # "Copyright © 1999-2018 PayPal."

    def kind(self) -> Kind | None:
        # "You received a refund of £5.00 GBP from ..." / "Rückzahlung" / "remboursement de"
        if re.search(r"received a refund|refund of|issued you a refund|Rückzahlung|remboursement de", self.text):
            return Kind.REFUND
        if self._received:
            return Kind.OTHER  # the seller's copy: money came in, nothing was bought
        # "You submitted an order amounting to 32.00 GBP to Boots.com ... this is not a charge"
        if re.search(r"submitted an order|Bestellung .* übermittelt|soumis une commande", self.text):
            return Kind.ORDER
        return Kind.RECEIPT if re.search(_HEADLINE, self.text) or self._rows("Total|Gesamt") else None

    @property
    def _received(self) -> bool:
        # "You received a payment of £3.41 GBP from victoriamair"
        return bool(re.search(r"You received a payment|Zahlung .*erhalten|avez reçu un paiement", self.text))

    @cached_property
    def _table(self) -> list[tuple[list, list[str]]]:
        """Every table row once: its cells and their text."""
        return [(cells, [element_text(c) for c in cells]) for tr in self.css("tr") if (cells := tr.xpath("./td|./th"))]

    def _rows(self, label: str) -> list[str]:
        """Amounts of the summary rows "<label> | <amount>" (the label cell next to the amount)."""
        return [texts[-1] for _, texts in self._table if len(texts) >= 2 and re.search(r"\d", texts[-1])
                and re.fullmatch(rf"(?:{label}):?", texts[-2], re.I)]

    @property
    def _payee(self) -> tuple[str, str | None]:
        block = re.search(_PAYEE_BLOCK, self.text, re.M)
        if block:
            return block.group(1).strip(), block.group(2)
        # 2015 "Here's your receipt": "Seller | Note to seller" above "<name> | You haven't included a note."
        rows = [texts for _, texts in self._table]
        after = [rows[i + 1][0] for i, texts in enumerate(rows[:-1]) if texts == ["Seller", "Note to seller"]]
        if after:
            sent_to = re.search(r"Payment sent to:? (\S+@\S+)", self.text)  # "Payment sent to: x@shop.com"
            return after[0], sent_to.group(1) if sent_to else None
        # "... GBP to emTransit BV(support@ridedott.com)" / "... an Musterladen GmbH (info@...) gesendet"
        line = self.search_text(rf"{_HEADLINE}\s+(?:to|an|à)\s+(.+?)\s*(?:\(|$)", 2, flags=re.I | re.M)
        contact = re.search(rf"{re.escape(line)}\s*\((\S+@[^)\s]+)", self.text)
        return line, contact.group(1) if contact else None

    def _on_ebay(self) -> bool:
        return bool(re.search(r"^eBay\s+seller\s+ID$", self.text, re.M))  # one receipt for several eBay sellers

    def merchant_name(self) -> str:
        if self._received:
            return self.display_name  # the user is the payee: only PayPal's notice is left to name
        return "eBay" if self._on_ebay() else self._payee[0]

    def merchant_domain(self) -> str | None:
        if self._on_ebay():
            link = re.search(r"https?://[\w.]*?(ebay\.[\w.]+)/", self.mail.html or "")
            return registrable_domain(link.group(1)) if link else ""
        name, contact = self._payee
        domain = registrable_domain(contact)
        if domain and not _WEBMAIL.match(domain):
            return domain
        # a shop named after its site ("121ecig.co.uk") shows its domain; "" = none shown, not PayPal's
        return registrable_domain(name) if re.fullmatch(r"[\w-]+(\.[\w-]+)+", name) else ""

    def order_number(self) -> str:
        # "Transaction ID: 3PV58699R8695403W" (also "O-5WH41178KD779064T" for orders)
        return self.search_text(r"(?:Transaction ID|Transaktionscode|Numéro de transaction):?\s*([A-Z0-9-]{12,})")

    def order_date(self) -> date:
        for pattern in (r"^(?:Transaction date|Transaktionsdatum|Date de la transaction)\n(.+)$",
                        r"^(?:Date|Datum) ?: (.+)$",  # "Date: 28 July 2020"
                        r"^(\d{1,2}\.? \S+ \d{4})(?: at| um| à)? \d\d?:\d\d:\d\d"):  # "5 Dec 2018 13:36:53 GMT"
            try:
                return self.date(re.sub(r" \d\d?:\d\d:\d\d.*$", "", self.search_text(pattern, flags=re.M)))
            except FieldNotFound:
                continue
        raise FieldNotFound("order_date")

    def _total_text(self) -> str:
        if self._received:
            raise FieldNotFound("total")
        headline = re.search(_HEADLINE, self.text)
        if headline:
            return headline.group(1)
        totals = self._rows("Total|Gesamt|Gesamtbetrag")
        if not totals:
            raise FieldNotFound("total")
        return totals[-1]

    def total(self) -> Decimal:
        return self.money(self._total_text())

    def currency(self) -> str:
        return self.search_text(r"([A-Z]{3})\s*$", text=self._total_text())

    def subtotal(self) -> Decimal:
        return self._sum(r"Subtotal|Zwischensumme|Sous-total")

    def shipping(self) -> Decimal:
        if "charges are estimated rates" in self.text:
            raise FieldNotFound("estimated postage is not charged")  # "Postage ... are estimated rates."
        return self._sum(_SHIPPING)

    def tax(self) -> Decimal:
        return self._sum(_TAX)

    def _sum(self, label: str) -> Decimal:
        amounts = [self.money(a) for a in self._rows(label)]
        if not amounts:
            raise FieldNotFound(label)
        return sum(amounts, Decimal(0))

    def items(self) -> list[Item]:
        if self._received:
            raise FieldNotFound("items")
        items = [item for cells, texts in self._table if (item := self._cart_row(cells, texts))]
        if items:
            return items
        # Donation receipt: "Purpose: | Anxiety UK Donation" / "Donation amount: | £50.00 GBP"
        purpose = re.search(r"^Purpose: \| (.+)$", self.text, re.M)
        name = purpose.group(1) if purpose else None
        if not name:
            donated = re.search(r"\b(?:donated|donation|gespendet|Spende|avez fait un don)\b", self.text, re.I)
            name = f"{'Donation' if donated else 'Payment'} to {self.merchant_name()}"
        total = self.total()
        return [Item(name=name, quantity=1, unit_price=total, line_total=total)]

    def _cart_row(self, cells: list, texts: list[str]) -> Item | None:
        """A "Description | Unit price | Qty | Amount" row: name, then "Item Number ..." lines."""
        if len(cells) < 4 or not texts[-2].isdigit() or not re.search(r"\d", texts[-1] + texts[-3]):
            return None
        cell = copy.deepcopy(cells[0])  # never touch the shared tree
        for br in cell.iter("br", "p", "div"):
            br.tail = "\ue000" + (br.tail or "")
        lines = [" ".join(line.split()) for line in cell.text_content().split("\ue000")]
        lines = [line for line in lines if line]
        sku = next((m.group(1) for line in lines if (m := re.match(_SKU, line))), None)
        name = lines[0] if lines and not re.match(rf"{_SKU}|Selected:", lines[0]) else ""  # "Selected:" = no option
        link = cell.find(".//a[@href]")
        return Item(name=name or f"Payment to {self.merchant_name()}", quantity=int(texts[-2]),
                    unit_price=self.money(texts[-3]), line_total=self.money(texts[-1]),
                    url=_untracked(link.get("href")) if link is not None else None, sku=sku)


def _untracked(url: str) -> str:
    """Drop the parameters PayPal appends to the seller's link (ppid, cust, unptid, ...)."""
    base, _, query = url.partition("?")
    kept = [p for p in query.split("&") if p and p.split("=")[0] not in _PAYPAL_TRACKING]
    return base + ("?" + "&".join(kept) if kept else "")
