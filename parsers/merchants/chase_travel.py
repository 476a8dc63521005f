"""Chase Travel - emails from chasetravel.com."""

from parsers.base import MerchantParser


class ChaseTravelParser(MerchantParser):
    slug = "chase_travel"
    display_name = "Chase Travel"
    domains = ("chasetravel.com",)
