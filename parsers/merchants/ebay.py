"""eBay - "Your order is confirmed" emails from every storefront (ebay.co.uk, .com, .de, ...).

The merchant is eBay, not the seller. Each bought item sits in a block with its picture
and "Item number: ..."; the 2018 template names the price "Item price", the 2021 single
item template "Total". The "Order total" box at the end holds postage, VAT, adjustments.
"""

import re
from datetime import date
from decimal import Decimal

from parsers.base import FieldNotFound, Item, Kind, Match, MerchantParser
from parsers.message import visible_text

_CURRENCIES = {"US $": "USD", "C $": "CAD", "AU $": "AUD", "£": "GBP", "€": "EUR", "EUR": "EUR", "GBP": "GBP"}
_STOREFRONT_CURRENCY = {"ebay.co.uk": "GBP", "ebay.com": "USD", "ebay.de": "EUR", "ebay.fr": "EUR",
                        "ebay.it": "EUR", "ebay.es": "EUR", "ebay.ca": "CAD", "ebay.com.au": "AUD"}
_MONEY = r"-?(?:US |C |AU )?(?:[£$€]|EUR|GBP) ?\d[\d.,]*|-?\d[\d.,]* ?(?:€|EUR)"  # "£3.96", "US $24.99", "12,99 €"
_ITEM_NUMBER = r"(?:Item number|Artikelnummer|N° de l'objet)\s*:\s*(\d{9,})"


class EbayParser(MerchantParser):
    slug = "ebay"
    display_name = "eBay"
    domains = ("ebay.com", "ebay.co.uk", "ebay.de", "ebay.fr", "ebay.it", "ebay.es", "ebay.ca", "ebay.com.au")
    # footer "©1995-2021 eBay Inc." (the 2021 template puts &zwnj; after 1995)
    match = (Match("from", r"ebay\."), Match("body", r"1995(?:&zwnj;|\u200c)?\s*-\s*20\d\d,?\s+eBay Inc\."))

    def kind(self) -> Kind | None:
        # "Your order is confirmed" / "Ihre Bestellung ist bestätigt" / "Votre commande est confirmée"
        if re.search(r"order is\s+confirmed|Bestellung ist\s+bestätigt|commande est\s+confirmée", self.text):
            return Kind.ORDER
        return None

    def merchant_domain(self) -> str | None:
        if self.mail.sender_domain in self.domains:
            return self.mail.sender_domain
        # a bare body: the storefront its links go to ("https%3A%2F%2Fwww.ebay.co.uk%2Fulk...")
        link = re.search(r"https?(?::|%3A)(?://|%2F%2F)(?:www\.|pages\.)?(ebay\.(?:co\.uk|com\.au|com|de|fr|it|es|ca))\b",
                         self.mail.html or "", re.I)
        return link.group(1).lower() if link else None

    def order_number(self) -> str:
        return self.search_text(r"(?:Order number|Bestellnummer|N° de commande)\s*:\s*([\d-]{8,})")

    def order_date(self) -> date:
        return self.date(self.search_text(r"^(?:Order date|Bestelldatum|Date de la commande)\s*:?\s*(.+)$",
                                          flags=re.I | re.M))

    def items(self) -> list[Item]:
        self.total()  # no "Total charged to" box: a watch-list, outbid or dispatch email, not a purchase
        found: dict[str, Item] = {}  # by item number: the mobile and desktop copies are one item
        for label in self.xpath("//text()[contains(., 'Item number') or contains(., 'Artikelnummer')]"):
            # the item's block: the nearest table around the label that also holds the product picture
            block = next((t for t in label.getparent().iterancestors("table")
                          if t.xpath(".//img[contains(@src, 'ebayimg.com')]")), None)
            text = visible_text(block) if block is not None else ""
            number = re.search(_ITEM_NUMBER, text)
            if number and number.group(1) not in found:
                found[number.group(1)] = self._item(block, text, number.group(1))
        if not found:
            raise FieldNotFound("items")
        return list(found.values())

    def _item(self, block, text: str, number: str) -> Item:
        image = block.xpath(".//img[contains(@src, 'ebayimg.com')]")[0]
        quantity = re.search(r"(?:Quantity|Menge|Anzahl|Quantité)\s*:\s*(\d+)", text)
        # "Item price: £4.95" is per unit; the single-item template prints "Total: £8.89"
        unit = re.search(rf"(?:Item price|Artikelpreis|Prix de l'objet)\s*:\s*({_MONEY})", text)
        line = re.search(rf"(?:Total|Gesamt|Summe)\s*:\s*({_MONEY})", text)
        return Item(name=image.get("alt") or text.split("\n")[0],
                    quantity=int(quantity.group(1)) if quantity else 1,
                    unit_price=self.money(unit.group(1)) if unit else None,
                    line_total=self.money(line.group(1)) if line else None,
                    # the email links only to the buyer's order page; the listing is /itm/<item number>
                    url=f"https://www.{self.merchant_domain() or 'ebay.com'}/itm/{number}",
                    image=image.get("src"), sku=number)

    def _summary(self, label: str) -> Decimal:
        """An amount of the "Order total" box: "Postage | Free", "Total charged to x -1629 | £8.89"."""
        lines = self.text.split("\n")
        for i, line in enumerate(lines):
            head = re.match(rf"(?:{label})\s*(?:\||:?$)", line, re.I)
            if not head:
                continue
            # the amount follows on the same line or the next two (the card digits carry no symbol)
            rest = "\n".join([line[head.end():], *lines[i + 1:i + 3]])
            found = re.search(rf"^\s*(Free|Kostenlos|Gratuit)\b|({_MONEY})", rest, re.I)
            if found:
                return Decimal(0) if found.group(1) else abs(self.money(found.group(2)))
        raise FieldNotFound(label)

    def total(self) -> Decimal:
        return self._summary(r"Total charged to[^|]*|Gesamtbetrag|Abgebucht von[^|]*|Montant total")

    def shipping(self) -> Decimal:
        return self._summary(r"Postage|Shipping|Verpackung und Versand|Versand|Livraison")

    def tax(self) -> Decimal:
        return self._summary(r"VAT|Sales tax|Tax|MwSt\.?|TVA")

    def discount(self) -> Decimal:
        return self._summary(r"Other adjustments|Discount|Rabatt|Réduction")

    def currency(self) -> str:
        shown = re.search(rf"(?:Total charged to|Gesamtbetrag|Abgebucht von|Montant total).*?({_MONEY})", self.text, re.S)
        for symbol, code in _CURRENCIES.items():
            if shown and symbol in shown.group(1):
                return code
        return _STOREFRONT_CURRENCY.get(self.merchant_domain() or "", "USD")
