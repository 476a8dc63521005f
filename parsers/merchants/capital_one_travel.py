"""Capital One Travel - emails from capitalonebooking.com."""

from parsers.base import MerchantParser


class CapitalOneTravelParser(MerchantParser):
    slug = "capital_one_travel"
    display_name = "Capital One Travel"
    domains = ("capitalonebooking.com",)
