"""Southwest Airlines - emails from southwest.com."""

from parsers.base import MerchantParser


class SouthwestParser(MerchantParser):
    slug = "southwest"
    display_name = "Southwest Airlines"
    domains = ("southwest.com",)
