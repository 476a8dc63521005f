"""Booking.com - booking confirmations (kind order) and payment receipts from booking.com.

One item per room type: "<Property> – <room type>, N nights". Labels are read in English,
French and German.
"""

import re
from datetime import date
from decimal import Decimal

from parsers.base import FieldNotFound, Item, Kind, MerchantParser
from parsers.normalize import parse_money

# "Confirmation: 1234567890" (confirmation) / "Booking number / 5695162259" (receipt)
_NUMBER = r"^(?:Confirmation|Booking number|Numéro de réservation|Buchungsnummer|Bestätigungsnummer)\s*:?\s*\n?(\d[\d.]{6,})"
# "<Property> is expecting you on Sun, Mar 8" / "... vous attend le ..." / "... erwartet Sie am ..."
_PROPERTY = r"^(?:Property name|Nom de l'établissement|Name der Unterkunft)\n(.+)$|^(.+?) (?:is expecting you|vous attend|erwartet Sie)\b"
# "Your reservation / 4 nights, Corner King Room" / "Votre réservation / 4 nuits, ..." / "Ihre Buchung / 4 Nächte, ..."
_NIGHTS = r"^(?:Your reservation|Votre réservation|Ihre Buchung)\n(\d+) (?:nights?|nuits?|Nächte|Nacht)"
# "Price details" ... "Total Price": "1 Corner King Room with City View / $1,296.80", "City tax / US$45.39"
_PRICES = r"^(?:Price details|Détails du prix|Preisdetails)\n(.*?)(?:\n| \| )(?:Total Price|Prix total|Gesamtpreis)(?:\n| \| )(.+)$"
_TOTAL = r"^(?:Amount paid on .+|Montant payé le .+|Bezahlter Betrag am .+)\n(.+)$"
_STAY = r"^(?:Check-in|Arrivée|Anreise)\n(.+)\n(?:Check-out|Départ|Abreise)\n(.+)$"
_NIGHT_WORDS = {"fr": ("nuit", "nuits"), "de": ("Nacht", "Nächte")}


class BookingParser(MerchantParser):
    slug = "booking"
    display_name = "Booking.com"
    domains = ("booking.com",)

    def kind(self) -> Kind | None:
        # decided by the body, not the subject (a property called "The Package Inn" is no parcel)
        if re.search(r"^(?:This is your receipt|Ceci est votre reçu|Das ist Ihre Quittung)$", self.text, re.M):
            return Kind.RECEIPT
        confirmed = r"(?:booking|réservation|Buchung) .*(?:is confirmed|est confirmée|ist bestätigt)"
        return Kind.ORDER if re.search(confirmed, self.text, re.I) else None

    def order_number(self) -> str:
        return self.search_text(_NUMBER, flags=re.M | re.I).replace(".", "")

    def order_date(self) -> date:
        # receipt: "Date / Nov 4, 2025"; a confirmation states no booking date
        return self.date(self.search_text(r"^(?:Date|Datum)\n(.+)$", flags=re.M))

    def _property(self) -> str:
        found = re.search(_PROPERTY, self.text, re.M)
        if not found:
            raise FieldNotFound("property")
        return (found[1] or found[2]).strip()

    def _nights(self) -> int:
        found = re.search(_NIGHTS, self.text, re.M)
        if found:
            return int(found[1])
        stay = re.search(_STAY, self.text, re.M)
        if not stay:
            raise FieldNotFound("nights")
        check_in, check_out = self.date(stay[1]), self.date(stay[2])
        return (check_out - check_in).days

    def _price_lines(self) -> list[tuple[str, str]]:
        found = re.search(_PRICES, self.text, re.M | re.S)
        lines = re.split(r"\n| \| ", found[1]) if found else []
        return list(zip(lines[::2], lines[1::2], strict=False))

    def items(self) -> list[Item]:
        nights, hotel = self._nights(), self._property()
        words = _NIGHT_WORDS.get((self.mail.language or "en")[:2], ("night", "nights"))
        stay = f"{nights} {words[nights != 1]}"
        rooms = [(re.match(r"(\d+) (.+)", label), amount) for label, amount in self._price_lines()]
        items = []
        for room, amount in rooms:
            if room:  # "1 Corner King Room with City View"; "2 × Double Room" when several
                kind = room[2] if room[1] == "1" else f"{room[1]} × {room[2]}"
                items.append(Item(f"{hotel} – {kind}, {stay}", unit_price=self.money(amount)))
        if not items:  # a receipt names no room: "Riu Plaza Toronto, 2 nights"
            items.append(Item(f"{hotel}, {stay}", unit_price=self.total()))
        return items

    def _fees(self) -> list[Decimal]:
        return [self.money(amount) * (-1 if amount.strip().startswith("-") else 1)
                for label, amount in self._price_lines() if not re.match(r"\d+ ", label)]

    def tax(self) -> Decimal:
        fees = [fee for fee in self._fees() if fee > 0]  # "City tax", "Other tax", "VAT"
        if not fees:
            raise FieldNotFound("tax")
        return sum(fees, Decimal(0))

    def discount(self) -> Decimal:
        cuts = [-fee for fee in self._fees() if fee < 0]  # "Genius discount / -US$20"
        if not cuts:
            raise FieldNotFound("discount")
        return sum(cuts, Decimal(0))

    def _total_text(self) -> str:
        found = re.search(_PRICES, self.text, re.M | re.S)
        return found[2] if found else self.search_text(_TOTAL, flags=re.M)

    def total(self) -> Decimal:
        return self.money(self._total_text())

    def currency(self) -> str:
        # the total names it: "US$1,526.33", "CAD 756.16", "€ 412,00"
        symbol = parse_money(self._total_text())[1]
        if not symbol:
            raise FieldNotFound("currency")
        return symbol
