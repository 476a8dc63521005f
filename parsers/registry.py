"""The explicit, sorted registry of merchant parsers: one line per merchant.

`purchaseshare new-merchant` inserts new lines in order. Nothing is discovered at
import time; `tests/parsers/test_registry.py` fails when a file in parsers/merchants/
is missing here.
"""

from __future__ import annotations

from parsers.base import MerchantParser

# fmt: off
# -- imports (sorted) --
from parsers.merchants.alaska_airlines import AlaskaAirlinesParser
from parsers.merchants.amazon import AmazonParser
from parsers.merchants.american_airlines import AmericanAirlinesParser
from parsers.merchants.aohostels import AoHostelsParser
from parsers.merchants.apple import AppleParser
from parsers.merchants.bolt_food import BoltFoodParser
from parsers.merchants.booking import BookingParser
from parsers.merchants.capital_one_travel import CapitalOneTravelParser
from parsers.merchants.chase_travel import ChaseTravelParser
from parsers.merchants.ebay import EbayParser
from parsers.merchants.new_seasons_market import NewSeasonsMarketParser
from parsers.merchants.oneplus import OnePlusParser
from parsers.merchants.paypal import PaypalParser
from parsers.merchants.sncf import SncfParser
from parsers.merchants.southwest import SouthwestParser
from parsers.merchants.steam import SteamParser
from parsers.merchants.too_good_to_go import TooGoodToGoParser
from parsers.merchants.twitch import TwitchParser
from parsers.merchants.uber import UberParser
from parsers.merchants.united import UnitedParser
from parsers.merchants.walmart import WalmartParser
from parsers.message import Email

# -- end imports --

MERCHANTS: tuple[type[MerchantParser], ...] = (
    AlaskaAirlinesParser,
    AmazonParser,
    AmericanAirlinesParser,
    AoHostelsParser,
    AppleParser,
    BoltFoodParser,
    BookingParser,
    CapitalOneTravelParser,
    ChaseTravelParser,
    EbayParser,
    NewSeasonsMarketParser,
    OnePlusParser,
    PaypalParser,
    SncfParser,
    SouthwestParser,
    SteamParser,
    TooGoodToGoParser,
    TwitchParser,
    UberParser,
    UnitedParser,
    WalmartParser,
)
# fmt: on


def _index() -> tuple[dict[str, type[MerchantParser]], dict[str, type[MerchantParser]]]:
    by_slug: dict[str, type[MerchantParser]] = {}
    by_domain: dict[str, type[MerchantParser]] = {}
    for parser in MERCHANTS:
        module = parser.__module__.rsplit(".", 1)[-1]
        if parser.slug != module:
            raise ValueError(f"{parser.__name__}.slug {parser.slug!r} differs from its module {module!r}")
        if parser.slug in by_slug:
            raise ValueError(f"duplicate merchant slug {parser.slug!r}")
        by_slug[parser.slug] = parser
        for domain in parser.domains:
            if domain in by_domain:
                raise ValueError(f"{domain} claimed by {by_domain[domain].slug} and {parser.slug}")
            by_domain[domain] = parser
    if list(by_slug) != sorted(by_slug):
        raise ValueError("MERCHANTS must be sorted by slug")
    return by_slug, by_domain


BY_SLUG, BY_DOMAIN = _index()


# `disabled` value that switches every merchant parser off (`parse --no-merchant-parsers`).
ALL_MERCHANTS = frozenset({"*"})


def candidates(mail: Email, disabled: frozenset[str] = frozenset()) -> list[type[MerchantParser]]:
    """Parsers for this email: the sender's domain owner first, then content matches.

    `disabled` holds slugs left out (ALL_MERCHANTS: every one), to measure what a merchant
    nobody wrote a parser for gets (bench.generalize)."""
    if disabled == ALL_MERCHANTS:
        return []
    owner = BY_DOMAIN.get(mail.sender_domain or "")
    if owner is not None and owner.slug not in disabled:
        return [owner] if owner.accepts(mail) else []
    return [parser for parser in MERCHANTS if parser.slug not in disabled and parser.accepts(mail)]
