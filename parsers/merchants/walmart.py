"""Walmart - emails from walmart.com."""

from parsers.base import MerchantParser


class WalmartParser(MerchantParser):
    slug = "walmart"
    display_name = "Walmart"
    domains = ("walmart.com",)
