"""The fallback for merchants nobody wrote a parser for.

Reads the visible text (one line per block, table cells joined by " | "): totals from
the usual words in several languages, item rows from lines that end in a price, the
order number and date from their labels. Less sure than a merchant parser, and says so.
"""

from __future__ import annotations

import re
from decimal import Decimal

from parsers.classify import body_kind
from parsers.items import read_items
from parsers.message import Email, normalize_lines, unquote_text
from parsers.model import Extraction, Item, Kind
from parsers.normalize import parse_date_text, parse_money

CONFIDENCE = 0.5

_CURRENCY = r"(?:[£€$¥₹]|[A-Z]{2}\$|US\$|kr\.?|CHF|zł|R\$|(?:USD|EUR|GBP|CAD|AUD|CHF|SEK|NOK|DKK|PLN|JPY)\b)"
_NUMBER = r"\d{1,3}(?:[.,\u202f ]\d{3})*[.,]\d{2}|\d+[.,]\d{2}"
MONEY = re.compile(rf"(-|−)?\s*(?:{_CURRENCY}\s?(?:{_NUMBER})|(?:{_NUMBER})\s?{_CURRENCY}|(?:{_NUMBER}))")

# Labels, strongest first: the first one found gives the total.
TOTAL_LABELS = (
    r"grand total", r"order total", r"total (?:paid|charged|amount|price)", r"amount (?:paid|charged)",
    r"total ttc", r"montant total", r"gesamtsumme", r"gesamtbetrag", r"summe", r"importe total",
    r"total a pagar", r"totale (?:ordine|complessivo)", r"totale", r"totaal", r"total",
)
SUBTOTAL_LABELS = (r"sub-?total", r"item\(?s\)? subtotal", r"sous-total", r"zwischensumme",
                   r"subtotale", r"subtotaal", r"items?:")
SHIPPING_LABELS = (r"shipping(?: (?:&|and) handling)?", r"postage(?: (?:&|and) packing)?", r"delivery",
                   r"livraison", r"frais de port", r"versand(?:kosten)?", r"envío", r"spedizione",
                   r"verzendkosten")
TAX_LABELS = (r"(?:estimated |sales )?tax", r"vat", r"tva", r"mwst\.?", r"ust\.?", r"iva", r"btw")
DISCOUNT_LABELS = (r"discount", r"promotion(?: applied)?", r"coupon", r"savings", r"remise", r"rabatt",
                   r"descuento", r"sconto", r"korting", r"gift card")
_SUMMARY = re.compile(
    r"^(?:" + "|".join(TOTAL_LABELS + SUBTOTAL_LABELS + SHIPPING_LABELS + TAX_LABELS + DISCOUNT_LABELS)
    + r"|payment|paid|balance|amount|visa|mastercard|amex|card|refund|credit)\b", re.IGNORECASE,
)
ORDER_NUMBER = re.compile(
    r"(?:order|confirmation|booking|reservation|invoice|receipt)\s*(?:number|no\.?|n°|nr\.?|id|#|code|reference)"
    r"[\s:#|]*([A-Z0-9][A-Z0-9-]{3,})|"  # "Order number: | WB-481207" (label and value in two cells)
    r"(?:bestellnummer|auftragsnummer|num[ée]ro de commande|n° de commande|n[úu]mero de pedido|"
    r"numero (?:d'|dell')?ordine|bestelnummer)[\s:#|]*([A-Z0-9][A-Z0-9-]{3,})",
    re.IGNORECASE,
)
ORDER_DATE = re.compile(
    r"(?:order(?:ed)? (?:date|on|placed)|date (?:of (?:order|purchase)|de (?:la )?commande)|"
    r"bestelldatum|fecha del pedido|data (?:dell')?ordine|purchase date|invoice date|date)[\s:|]*"
    r"([^|\n]{6,40})",
    re.IGNORECASE,
)
_QTY = re.compile(r"^(?:qty|quantity|menge|anzahl|quantité|qté|cantidad|quantità|aantal)?\s*:?\s*[x×]?\s*(\d{1,3})\s*[x×]?$",
                  re.IGNORECASE)
_QTY_IN_NAME = re.compile(r"(?:^(\d{1,3})\s*[x×]\s+)|(?:\s+[x×]\s*(\d{1,3})$)|(?:\s*\((?:qty|quantity)\s*:?\s*(\d{1,3})\)$)",
                          re.IGNORECASE)


def extract_generic(mail: Email) -> Extraction | None:
    # A shipping notice or a newsletter lists products and prices too: never read those as a purchase.
    if body_kind(mail)[0] in (Kind.SHIPPING, Kind.NEWSLETTER):
        return None
    lines = _lines(mail)
    result = Extraction(parser="generic", confidence=CONFIDENCE)
    currency: list[str] = []
    result.total = _labelled_amount(lines, TOTAL_LABELS, currency)
    result.subtotal = _labelled_amount(lines, SUBTOTAL_LABELS, currency)
    result.shipping = _labelled_amount(lines, SHIPPING_LABELS, currency)
    result.tax = _labelled_amount(lines, TAX_LABELS, currency)
    result.discount = _labelled_amount(lines, DISCOUNT_LABELS, currency)
    if result.total is not None or result.subtotal is not None:
        # Rows priced like items only count in an email that states what was paid.
        result.items = read_items(mail)  # TEMPORARY (items branch): the new reader, resolved at merge
    if not result.has_purchase_data:
        return None
    result.currency = currency[0] if currency else None
    text = "\n".join(lines)
    number = ORDER_NUMBER.search(text)
    if number:
        result.order_number = number.group(1) or number.group(2)
    when = ORDER_DATE.search(text)
    if when:
        result.order_date = parse_date_text(when.group(1), language=mail.language)
    if result.items and result.total is not None:
        items_sum = sum((i.line_total or Decimal(0) for i in result.items), Decimal(0))
        if items_sum in (result.total, result.subtotal):
            result.confidence = CONFIDENCE + 0.1
    return result


def _lines(mail: Email) -> list[str]:
    """Visible text lines; a plain-text body's columns ("Name ....... 12,95 €") become cells."""
    if mail.html_text:
        return mail.html_text.split("\n")
    columns = re.sub(r"(?m)(?<=\S)[ \t]*(?:\.{3,}|\t|[ ]{2,}|…+)[ \t]*(?=\S)", " | ", unquote_text(mail.text))
    return normalize_lines(columns).split("\n")


def _with_links(items: list[Item], mail: Email) -> list[Item]:
    """Product link and picture from the HTML row that names the item."""
    if mail.tree is None or not items:
        return items
    # Innermost rows and their text, read once for all items.
    rows = [(row, re.sub(r"\s+", " ", row.text_content())) for row in mail.tree.iter("tr") if not row.xpath(".//tr")]
    for item in items:
        for row, text in rows:
            if item.name not in text:
                continue
            links = [a.get("href") for a in row.iter("a") if item.name in re.sub(r"\s+", " ", a.text_content())
                     and (a.get("href") or "").startswith("http")]
            images = [i.get("src") for i in row.iter("img") if (i.get("src") or "").startswith("http")]
            item.url = links[0] if links else None
            item.image = images[0] if images else None
            break
    return items


def _amount(text: str, currency: list[str]) -> Decimal | None:
    found = list(MONEY.finditer(text))
    if not found:
        return None
    match = found[-1]
    amount, symbol = parse_money(match.group(0))
    if amount is None:
        return None
    if symbol:
        currency.append(symbol)
    return -amount if match.group(1) else amount


def _labelled_amount(lines: list[str], labels: tuple[str, ...], currency: list[str]) -> Decimal | None:
    for label in labels:
        # up to 30 characters between label and amount ("Order total (incl. VAT):"), but not a
        # newsletter's "Total savings up to £20"
        pattern = re.compile(rf"^(?:{label})\b(?!{_NOT_A_TOTAL})[^\d\n]{{0,30}}?(?:\(.*?\))?\s*[:|]?\s*(.*)$",
                             re.IGNORECASE)
        for index, line in enumerate(lines):
            found = pattern.match(line)
            if not found:
                continue
            rest = found.group(1) or (lines[index + 1] if index + 1 < len(lines) else "")
            amount = _amount(rest, currency)
            if amount is not None:
                return abs(amount) if labels is DISCOUNT_LABELS else amount
    return None


_NOT_A_TOTAL = r"[^\d\n]{0,12}\b(?:savings?|save|off|up to|from|starting|bis zu|jusqu|hasta|fino a)\b"
# A "name" cell that is a column heading or a "Label:" (fees, taxes) rather than a product.
_NOT_AN_ITEM = re.compile(
    r"^(?:.*:|price|prix|preis|precio|prezzo|amount|montant|betrag|importe|importo|total.*|qty|quantity|"
    r"items?|description|article|artikel|art[íi]culo|articolo|unit price|each|subtotal|tax|vat|fees?)$",
    re.IGNORECASE,
)
_QTY_PRICE = re.compile(r"^(\d{1,3})\s*[x×]\s*(.+)$", re.IGNORECASE)  # "2 x 14,90 €"


def _qty_price(cell: str) -> re.Match[str] | None:
    found = _QTY_PRICE.match(cell)
    return found if found and MONEY.fullmatch(found.group(2).strip()) else None


def _item_rows(lines: list[str], currency: list[str]) -> list[Item]:
    """Lines with a name cell and a price at the end, above the totals block."""
    items = []
    for line in lines:
        if _SUMMARY.match(line):
            if items:
                break  # the totals block closes the item list
            continue
        cells = [c.strip() for c in line.split(" | ") if c.strip()]
        if len(cells) < 2 or not MONEY.fullmatch(cells[-1]):
            continue
        names = [c for c in cells[:-1] if re.search(r"[^\W\d_]{3,}", c) and not MONEY.fullmatch(c)
                 and not _qty_price(c)]
        if not names or _NOT_AN_ITEM.match(names[0]):
            continue
        quantity = 1
        unit = None
        for cell in cells[:-1]:
            qty = _QTY.match(cell)
            qty_price = _qty_price(cell)
            if qty:
                quantity = int(qty.group(1))
            elif qty_price:
                quantity, unit = int(qty_price.group(1)), _amount(qty_price.group(2), currency)
        name = names[0]
        in_name = _QTY_IN_NAME.search(name)
        if in_name:
            quantity = int(next(g for g in in_name.groups() if g))
            name = _QTY_IN_NAME.sub("", name).strip()
        line_total = _amount(cells[-1], currency)
        if line_total is None or len(name) > 200:
            continue
        prices = [c for c in cells[:-1] if MONEY.fullmatch(c)]
        if prices and unit is None:
            unit = _amount(prices[-1], currency)
        items.append(Item(name=name, quantity=quantity, unit_price=unit, line_total=line_total))
    return items
