"""A&O Hostels - emails from aohostels.com."""

from parsers.base import MerchantParser


class AoHostelsParser(MerchantParser):
    slug = "aohostels"
    display_name = "A&O Hostels"
    domains = ("aohostels.com",)
