"""schema.org extraction (extruct: JSON-LD and microdata only) over the already-parsed tree.

Gmail's order markup comes in two shapes - Order.acceptedOffer[].itemOffered and
Order.orderedItem[] of OrderItem - and prices as numbers or strings like "$70.00".
Invoice wraps an Order (referencesOrder); ParcelDelivery means a shipping notice.
Runs only when the HTML mentions schema.org.
"""

from __future__ import annotations

import json
import logging
import re
from decimal import Decimal
from typing import Any

from extruct.jsonld import JsonLdExtractor
from extruct.w3cmicrodata import MicrodataExtractor

from parsers.message import Email
from parsers.model import Extraction, Item, Kind
from parsers.normalize import parse_date_text, parse_money, to_decimal

log = logging.getLogger(__name__)

CONFIDENCE = 0.85
_JSONLD = JsonLdExtractor()
_MICRODATA = MicrodataExtractor(nested=True)
_CACHE_KEY = "schemaorg"


def extract_schemaorg(mail: Email) -> Extraction | None:
    """The purchase the markup describes, or None. Computed once per email."""
    if _CACHE_KEY not in mail.cache:
        mail.cache[_CACHE_KEY] = _extract(mail)
    return mail.cache[_CACHE_KEY]


def _extract(mail: Email) -> Extraction | None:
    if not mail.html or "schema.org" not in mail.html or mail.tree is None:
        return None
    nodes = [*_jsonld_nodes(mail), *_microdata_nodes(mail)]
    orders, parcels = [], []
    for node in _walk(nodes):
        types = _types(node)
        if "Order" in types:
            orders.append(node)
        elif "Invoice" in types and isinstance(node.get("referencesOrder"), dict):
            orders.append({**node["referencesOrder"], "_invoice": node})
        elif "Invoice" in types:
            orders.append({"_invoice": node})
        elif "ParcelDelivery" in types:
            parcels.append(node)
    if orders:
        return _from_orders(orders, mail)
    if parcels:
        result = Extraction(parser="schema_org", confidence=CONFIDENCE, kind=Kind.SHIPPING)
        order = parcels[0].get("partOfOrder")
        if isinstance(order, dict):
            result.order_number = _text(order.get("orderNumber"))
            result.merchant_name = _name(order.get("merchant") or order.get("seller"))
        return result
    return None


def _jsonld_nodes(mail: Email) -> list[Any]:
    try:
        return _JSONLD.extract_items(mail.tree)
    except Exception:  # one broken block must not hide the others: read them one by one
        nodes = []
        for script in mail.tree.xpath('//script[@type="application/ld+json"]'):
            data = _lenient_json(script.text_content())
            if data is None:
                mail.warnings.append("schema.org: unreadable JSON-LD block skipped")
            elif isinstance(data, list):
                nodes.extend(data)
            else:
                nodes.append(data)
        return nodes


def _lenient_json(source: str) -> Any:
    """Repair what real mail breaks: HTML comments, trailing commas, raw newlines."""
    cleaned = re.sub(r"<!--|-->", "", source).strip().rstrip(";")
    cleaned = re.sub(r",\s*([}\]])", r"\1", cleaned)
    for candidate in (cleaned, cleaned.replace("\n", " ")):
        try:
            return json.loads(candidate, strict=False)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            continue
    return None


def _microdata_nodes(mail: Email) -> list[Any]:
    if "itemscope" not in mail.html:
        return []
    try:
        items = _MICRODATA.extract_items(mail.tree, None)
    except Exception:
        mail.warnings.append("schema.org: unreadable microdata skipped")
        return []
    return [_flatten_microdata(item) for item in items]


def _flatten_microdata(value: Any) -> Any:
    """extruct's {'type': url, 'properties': {...}} -> JSON-LD-like {'@type': 'Order', ...}."""
    if isinstance(value, list):
        return [_flatten_microdata(v) for v in value]
    if not isinstance(value, dict) or "properties" not in value:
        return value
    types = value.get("type") or []
    types = [types] if isinstance(types, str) else types
    node = {"@type": [t.rstrip("/").rsplit("/", 1)[-1] for t in types]}
    for key, inner in value["properties"].items():
        node[key] = _flatten_microdata(inner)
    return node


def _walk(nodes: list[Any]):
    """Every dict in the markup, including @graph members and nested values."""
    stack = list(nodes)
    seen = 0
    while stack and seen < 10000:
        node = stack.pop(0)
        seen += 1
        if isinstance(node, list):
            stack[:0] = node
        elif isinstance(node, dict):
            yield node
            if "@graph" in node:
                stack.extend(node["@graph"] if isinstance(node["@graph"], list) else [node["@graph"]])


def _types(node: dict) -> set[str]:
    value = node.get("@type") or node.get("type") or []
    values = [value] if isinstance(value, str) else value
    return {str(v).rsplit("/", 1)[-1] for v in values if v}


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def _text(value: Any) -> str | None:
    value = _first(value)
    if isinstance(value, dict):
        value = value.get("@id") or value.get("name") or value.get("value")
    if value is None:
        return None
    text = re.sub(r"\s+", " ", str(value)).strip()
    return text or None


def _name(value: Any) -> str | None:
    value = _first(value)
    if isinstance(value, dict):
        return _text(value.get("name"))
    return _text(value)


def _url(value: Any) -> str | None:
    value = _first(value)
    if isinstance(value, dict):
        value = value.get("url") or value.get("contentUrl") or value.get("@id")
    return _text(value)


class _Money:
    """Reads prices given as numbers, numeric strings or '$70.00', noting the currency."""

    def __init__(self) -> None:
        self.currency: str | None = None

    def read(self, value: Any, currency: Any = None) -> Decimal | None:
        value = _first(value)
        if isinstance(value, dict):  # PriceSpecification / MonetaryAmount
            currency = value.get("priceCurrency") or value.get("currency") or currency
            value = value.get("price", value.get("value"))
        if value is None or value == "":
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            amount = to_decimal(value)
        else:
            amount, symbol = parse_money(str(value))
            currency = currency or symbol
        if currency and not self.currency:
            self.currency = _text(currency)
        if amount is not None and isinstance(amount.as_tuple().exponent, int) and amount.as_tuple().exponent > -2:  # 118.4 -> 118.40, as printed
            amount = amount.quantize(Decimal("0.01"))
        return amount


def _from_orders(orders: list[dict], mail: Email) -> Extraction:
    """One email -> one purchase: several Order nodes (multi-seller mail) are merged."""
    money = _Money()
    result = Extraction(parser="schema_org", confidence=CONFIDENCE, kind=Kind.ORDER)
    totals: list[Decimal] = []
    sellers: list[str | None] = []
    for order in orders:
        invoice = order.get("_invoice") or {}
        money.read(None, order.get("priceCurrency") or invoice.get("priceCurrency"))
        result.order_number = result.order_number or _text(order.get("orderNumber")) or _text(
            invoice.get("confirmationNumber") or invoice.get("accountId"))
        sellers.append(_name(order.get("merchant") or order.get("seller") or invoice.get("provider")))
        if result.order_date is None:
            result.order_date = parse_date_text(_text(order.get("orderDate") or invoice.get("paymentDueDate")),
                                                language=mail.language)
        result.items.extend(_items(order, money))
        total = money.read(order.get("totalPrice") or order.get("price") or order.get("priceSpecification")
                           or invoice.get("totalPaymentDue") or invoice.get("minimumPaymentDue"),
                           order.get("priceCurrency"))
        if total is not None:
            totals.append(total)
        for field, keys in (("discount", ("discount",)), ("shipping", ("shippingCost", "deliveryCost")),
                            ("tax", ("tax", "totalTax"))):
            for key in keys:
                amount = money.read(order.get(key))
                if amount is not None:
                    setattr(result, field, (getattr(result, field) or 0) + amount)
    if totals:
        result.total = sum(totals, Decimal(0))
    named = {s for s in sellers if s}
    # several shops in one marketplace email: the sender (the marketplace) is the merchant
    result.merchant_name = named.pop() if len(named) == 1 else None
    result.currency = money.currency
    _summary_from_text(result, mail)
    return result


def _summary_from_text(result: Extraction, mail: Email) -> None:
    """Markup rarely states shipping, tax or discount; the visible totals block does.

    Taken only when they make the items add up to the markup's total, so a stray
    "Shipping" line elsewhere in the email cannot spoil a consistent purchase.
    """
    from parsers import generic  # the label tables live there; imported late (generic imports classify)

    if result.total is None or not result.items or any(i.unit_price is None for i in result.items):
        return
    items = sum((i.unit_price * i.quantity for i in result.items), Decimal(0))
    known = {name: getattr(result, name) for name in ("shipping", "tax", "discount")}

    def adds_up(values: dict[str, Decimal | None]) -> bool:
        extra = (values["shipping"] or 0) + (values["tax"] or 0) - (values["discount"] or 0)
        return items + extra == result.total

    if adds_up(known):
        return
    read = dict(known)
    for name in ("shipping", "tax", "discount"):
        if read[name] is None:
            read[name] = generic.labelled_amount(mail, name)
    if adds_up(read):
        for name, value in read.items():
            setattr(result, name, value)


def _items(order: dict, money: _Money) -> list[Item]:
    items = []
    for offer in _as_list(order.get("acceptedOffer")):
        if not isinstance(offer, dict):
            continue
        product = _first(offer.get("itemOffered")) or {}
        quantity = _quantity(offer.get("eligibleQuantity"))
        price = money.read(offer.get("price") or offer.get("priceSpecification"), offer.get("priceCurrency"))
        items.append(_item(product, quantity, price))
    for entry in _as_list(order.get("orderedItem")):
        if not isinstance(entry, dict):
            continue
        if "OrderItem" in _types(entry):
            product = _first(entry.get("orderedItem")) or {}
            quantity = _quantity(entry.get("orderQuantity"))
            price = money.read(entry.get("price") or (product.get("offers") if isinstance(product, dict) else None))
        else:
            product, quantity = entry, 1
            price = money.read(product.get("offers"))
        items.append(_item(product, quantity, price))
    return [item for item in items if item.name]


def _item(product: Any, quantity: int, price: Decimal | None) -> Item:
    product = product if isinstance(product, dict) else {"name": product}
    return Item(name=_text(product.get("name")) or "", quantity=quantity, unit_price=price,
                url=_url(product.get("url")), image=_url(product.get("image")),
                sku=_text(product.get("sku") or product.get("productID")))


def _quantity(value: Any) -> int:
    value = _first(value)
    if isinstance(value, dict):
        value = value.get("value")
    try:
        quantity = int(Decimal(str(value)))
    except Exception:
        return 1
    return quantity if quantity > 0 else 1


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
