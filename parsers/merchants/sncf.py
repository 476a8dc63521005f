"""SNCF - e-billet confirmations ("VOTRE CONFIRMATION E-BILLET") from sncf.fr and friends.

Often seen as bare text (the e-billet's text, no headers): the body match recognises it.
"""

import re
from decimal import Decimal

from parsers.base import FieldNotFound, Item, Kind, Match, MerchantParser

# each journey: "TOULOUSE MATABIAU / MONTPELLIER ST-RO      35.00 EUR"
_JOURNEY = r"^(.+?) / (.+?) (\d+[.,]\d{2}) (EUR)$"


def _station(name: str) -> str:
    """'PARIS GARE DE LYON' -> 'Paris Gare de Lyon' (the ticket prints stations in capitals)."""
    return re.sub(r"(?<=\s)(De|Du|Des|La|Le|Les|Sur|En)\b", lambda m: m[1].lower(), name.title())


class SncfParser(MerchantParser):
    slug = "sncf"
    display_name = "SNCF"
    domains = ("sncf.fr", "sncf.com", "sncf-connect.com", "oui.sncf")
    match = (Match("body", r"CONFIRMATION E-BILLET"), Match("body", r"DOSSIER VOYAGE\s*:"))

    def kind(self) -> Kind | None:
        # a ticket confirmation, whatever the (missing) subject says
        return Kind.ORDER if re.search(r"CONFIRMATION E-BILLET", self.text) else None

    def merchant_domain(self) -> str | None:
        # a bare e-billet text names no sender: leave the domain unknown
        return self.mail.sender_domain if self.mail.sender_domain in self.domains else None

    def order_number(self) -> str:
        return self.search_text(r"DOSSIER VOYAGE\s*:\s*([A-Z0-9]{6})\b")

    def items(self) -> list[Item]:
        return [Item(f"{_station(m[1])} → {_station(m[2])}", unit_price=self.money(m[3]))
                for m in self.search_all(_JOURNEY)]

    def total(self) -> Decimal:
        prices = [self.money(m[3]) for m in self.search_all(_JOURNEY)]
        if not prices:
            raise FieldNotFound("prices")
        return sum(prices, Decimal(0))

    def currency(self) -> str:
        return self.search_text(_JOURNEY, 4, flags=re.M)
