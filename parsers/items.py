"""Item rows: lines of the visible text that hold a name and end in a price.

`read_items(mail)` is the one entry point the generic reader calls; quantities come from
"2 x", "x2", "Qty: 2" cells or names, product links and pictures from the HTML row that
names the item.
"""

from __future__ import annotations

import re
from decimal import Decimal

from parsers.message import Email, normalize_lines, unquote_text
from parsers.model import Item
from parsers.normalize import parse_money

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
_QTY = re.compile(r"^(?:qty|quantity|menge|anzahl|quantité|qté|cantidad|quantità|aantal)?\s*:?\s*[x×]?\s*(\d{1,3})\s*[x×]?$",
                  re.IGNORECASE)
_QTY_IN_NAME = re.compile(r"(?:^(\d{1,3})\s*[x×]\s+)|(?:\s+[x×]\s*(\d{1,3})$)|(?:\s*\((?:qty|quantity)\s*:?\s*(\d{1,3})\)$)",
                          re.IGNORECASE)



def read_items(mail: Email) -> list[Item]:
    """The email's item rows with their links and pictures."""
    return _with_links(_item_rows(_lines(mail), []), mail)


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
