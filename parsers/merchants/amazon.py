"""Amazon - emails from amazon.com, amazon.co.uk, amazon.de, amazon.fr, amazon.it, amazon.es, amazon.ca.

Two order templates, the same on every storefront in its own language:
- the classic "TE" one (2014-2021): `table#itemDetails` rows (td.photo / td.name / td.price),
  then a cost breakdown of "Label:" / amount rows, repeated per order when Amazon split the
  purchase ("Your purchase has been divided into 2 orders") - we add those up;
- the 2025 "rio" one: `img.productImage` per item, "Quantity: N" and the price in a
  `span[role=region]` whose aria-label reads "{amount=24.29, currencyCode={... code=USD}}".
The storefront (sender domain, else the domain of the email's own links) fixes currency and
decimal separator. EU/UK item prices include VAT, so only US/CA "Estimated tax" goes to tax().
"""

import re
from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property

from lxml import etree

from parsers.base import FieldNotFound, Item, Kind, Match, MerchantParser, element_text

CURRENCY = {"amazon.com": "USD", "amazon.co.uk": "GBP", "amazon.de": "EUR", "amazon.fr": "EUR",
            "amazon.it": "EUR", "amazon.es": "EUR", "amazon.ca": "CAD"}
AMOUNT = r"-?\s?(?:[A-Z]{3}|CDN\$|C\$|[$£€])\s?-?\d[\d.,\s]*|-?\d[\d.,\s]*(?:€|EUR)"
ROW = re.compile(rf"(.*?[^\s|:])\s*(?::\s*\|?|\|)\s*({AMOUNT})")
# cost-breakdown labels, lowercased without the colon ("Order Total:", "Totale IVA inclusa (ove applicabile):")
TOTAL = re.compile(r"order total|grand total|total|totale|totale (?:ordine|iva inclusa.*)|gesamtsumme|gesamtbetrag.*"
                   r"|summe|montant total.*|total de la commande.*|total ttc|total del pedido|importe total.*")
SHIPPING = re.compile(r"postage & packing|shipping(?: & handling)?|delivery|costi di spedizione|verpackung (?:&|und) versand"
                      r"|versand(?:kosten)?|livraison|frais d'envoi|envío|gastos de envío|gift ?wrap|confezione regalo"
                      r"|geschenkverpackung|emballage cadeau|envoltorio regalo")
TAX = re.compile(r"(?:estimated )?(?:sales )?tax|(?:estimated )?(?:gst/hst|pst/rst/qst)")  # US/CA only, see above
SUBTOTAL = re.compile(r"item(?:\(s\))? subtotal|items")
GIFT_CARD = re.compile(r"gift card|gutschein|buono regalo|carte cadeau|chèque-cadeau|cheque regalo|tarjeta regalo")
DISCOUNT = re.compile(r"promotion|coupon|discount|rabatt|sconto|promozione|remise|réduction|descuento|promoción")
# "Quantity: 2" / "Menge: 2" / "Quantité : 2" / "Quantità: 2" / "Cantidad: 2", or "2 x" / "2 of:" before the name
QUANTITY = re.compile(r"(?:quantity|qty|menge|anzahl|quantité|quantità|cantidad)\s?:\s*(\d+)", re.I)
# "Shipped:" / "Your package was shipped!" / "... has been dispatched" / "è stato spedito" / "wurde versandt"
SHIPPED = re.compile(r"\b(?:shipped|delivered|arriving|out for delivery|dispatched)\b|spedit|consegn"
                     r"|versandt|zugestellt|expédié|livré|enviado|entregado", re.I)


class AmazonParser(MerchantParser):
    slug = "amazon"
    display_name = "Amazon"
    domains = ("amazon.com", "amazon.co.uk", "amazon.de", "amazon.fr", "amazon.it", "amazon.es", "amazon.ca")
    # every Amazon email routes its links through the storefront's click tracker "www.amazon.xx/gp/r.html?"
    match = (Match("from", r"@(?:[\w-]+\.)*amazon\.(?:com|co\.uk|de|fr|it|es|ca)>"),
             Match("body", r"https?://www\.amazon\.(?:com|co\.uk|de|fr|it|es|ca)/gp/r\.html\?"))

    def kind(self) -> Kind | None:
        sender = (self.mail.original.from_addr or "").split("@")[0]
        subject = self.mail.original.subject or ""
        if re.search(r"cancel|annul|storn|refund|rimbors|rembours|erstatt|reembols", subject, re.I):
            return None
        # shipment-tracking@, order-update@, conferma-spedizione@, versandbestaetigung@, thehub@ ...
        if re.search(r"ship|track|update|spedizion|versand|envio|envoi|expedi|hub|deliver|livraison", sender) \
                or SHIPPED.search(re.sub(r'"[^"]*"', "", subject)):  # not in a quoted item name
            return Kind.SHIPPING
        # auto-confirm@, bestellbestaetigung@, confirmation-commande@, conferma-ordine@, confirmacion-pedido@:
        # an order, even when the quoted item name in the subject says "Colis" or "Paket"
        if re.search(r"confirm|bestaetigung|conferma", sender):
            return Kind.ORDER
        return None

    def merchant_domain(self) -> str:
        if self.mail.sender_domain in self.domains:
            return self.mail.sender_domain
        links = re.findall(r"https?://www\.(amazon\.(?:com|co\.uk|de|fr|it|es|ca))/", self.mail.html or self.mail.text)
        if not links:
            raise FieldNotFound("storefront")
        return Counter(links).most_common(1)[0][0]

    def currency(self) -> str:
        try:
            return CURRENCY[self.merchant_domain()]
        except (FieldNotFound, KeyError):
            return super().currency()

    def amount(self, text: str) -> Decimal:
        try:
            comma = self.merchant_domain() in ("amazon.de", "amazon.fr", "amazon.it", "amazon.es")
        except FieldNotFound:
            comma = None
        return self.money(text, decimal_separator="," if comma else "." if comma is False else None)

    def order_number(self) -> str:
        # "Order #202-1391264-5465967", "Ordine n°402-...", "Bestellung #302-...", digital "D01-..."
        return self.search_text(r"\b([0-9D]\d{2}-\d{7}-\d{7})\b")

    def order_date(self) -> date:
        # "Placed on February 10, 2018" / "Effettuato lunedì 16 marzo 2015" / "Aufgegeben am 3. März 2019"
        # / "Passée le 3 mars 2019" / "Realizado el 3 de marzo de 2019"
        found = re.search(r"^(?:placed on|order placed:?|effettuato(?: il)?|aufgegeben am|bestellt am|"
                          r"(?:commande )?passée le|realizado el)\s+(.+)$", self.text, re.I | re.M)
        if found:
            return self.date(found.group(1))
        # A bare body has no Date header; its tracking links carry the send time "urn:rtn:msg:20211124140932..."
        stamp = re.search(r"urn:rtn:msg:(20\d{6})\d{6}", self.mail.html or self.mail.text)
        if stamp and self.mail.original.date is None:
            return datetime.strptime(stamp.group(1), "%Y%m%d").date()
        raise FieldNotFound("order date")

    # --- cost breakdown -------------------------------------------------------------------
    @cached_property
    def breakdown(self) -> list[tuple[str, Decimal, bool]]:
        """(label, amount, negative) for every "Label: amount" row, every sub-order included."""
        rows, lines = [], self.text.splitlines()
        for i, line in enumerate(lines):
            # "Order Total: | £21.20" (cells), "Order Total: $80.61" (text) or "Order Total:" then "£21.20"
            found = ROW.fullmatch(line)
            if found is None and line.endswith(":") and i + 1 < len(lines) and re.fullmatch(AMOUNT, lines[i + 1]):
                found = ROW.fullmatch(f"{line} {lines[i + 1]}")
            if found:
                value = found.group(2)
                rows.append((found.group(1).lower(), self.amount(value), value.lstrip().startswith("-")))
        return rows

    def _sum(self, pattern: re.Pattern[str], *, first_label: bool = False) -> Decimal:
        found = [(label, amount) for label, amount, _ in self.breakdown if pattern.fullmatch(label)]
        if not found:
            raise FieldNotFound(pattern.pattern[:20])
        # a split purchase repeats "Order Total:" per order; a later "Grand Total:" would repeat the sum
        return sum((amount for label, amount in found if not first_label or label == found[0][0]), Decimal(0))

    def total(self) -> Decimal:
        return self._sum(TOTAL, first_label=True)

    def shipping(self) -> Decimal:
        return self._sum(SHIPPING)

    def tax(self) -> Decimal:
        return self._sum(TAX)

    def subtotal(self) -> Decimal:
        self.tax()  # "Item Subtotal" is before VAT on EU/UK storefronts, where item prices include it
        return self._sum(SUBTOTAL)

    def discount(self) -> Decimal:
        found = [amount for label, amount, negative in self.breakdown
                 if not GIFT_CARD.search(label) and (negative or DISCOUNT.search(label))]
        if not found:
            raise FieldNotFound("discount")
        return sum(found, Decimal(0))

    # --- items ----------------------------------------------------------------------------
    def items(self) -> list[Item]:
        items = self._classic_items() or self._rio_items()
        if not items:
            raise FieldNotFound("items")
        return items

    def _classic_items(self) -> list[Item]:
        items = []
        for cell in self.css("table#itemDetails td.name"):
            row = cell.getparent()
            link = cell.find(".//a")
            name = element_text(link) if link is not None else (cell.text or "").strip()
            lead = re.match(r"^(\d+)\s*(?:x|of:)\s+", name)  # "2 x Widget" / "2 of: Widget"
            quantity = QUANTITY.search(element_text(cell)) or lead
            price = row.cssselect("td.price")
            image = row.cssselect("td.photo img")
            items.append(Item(name=name[lead.end():] if lead else name,
                              quantity=int(quantity.group(1)) if quantity else 1,
                              line_total=self.amount(element_text(price[0])) if price else None,
                              url=link.get("href") if link is not None else None,
                              image=image[0].get("src") if image else None, sku=_asin(link)))
        return items

    def _rio_items(self) -> list[Item]:
        items = []
        for img in self.css("img.productImage"):
            box = img.xpath("ancestor::*[.//span[@role='region']][1]")
            if not box:
                continue
            title = box[0].xpath(".//a[not(img)][contains(@href, 'dp')]")
            price = re.search(r"amount=(-?[\d.]+)", box[0].xpath(".//span[@role='region']")[0].get("aria-label", ""))
            quantity = QUANTITY.search(element_text(box[0]))
            link = title[0] if title else img.getparent()
            items.append(Item(name=img.get("alt") or element_text(link),
                              quantity=int(quantity.group(1)) if quantity else 1,
                              unit_price=Decimal(price.group(1)) if price else None,
                              url=link.get("href"), image=img.get("src"), sku=_asin(link)))
        return items


def _asin(link: etree._Element | None) -> str | None:
    """The ASIN in the product link (".../dp/B08YRT9PC3/ref=..." behind the click tracker)."""
    found = re.search(r"(?:/|%2F)dp(?:/|%2F)([A-Z0-9]{10})", link.get("href", "") if link is not None else "")
    return found.group(1) if found else None
