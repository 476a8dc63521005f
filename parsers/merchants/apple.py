"""Apple - emails from apple.com, itunes.com."""

from parsers.base import MerchantParser


class AppleParser(MerchantParser):
    slug = "apple"
    display_name = "Apple"
    domains = ("apple.com", "itunes.com")
