"""OnePlus - emails from oneplus.com, oneplus.net."""

from parsers.base import MerchantParser


class OnePlusParser(MerchantParser):
    slug = "oneplus"
    display_name = "OnePlus"
    domains = ("oneplus.com", "oneplus.net")
