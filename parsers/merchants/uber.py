"""Uber - emails from uber.com."""

from parsers.base import MerchantParser


class UberParser(MerchantParser):
    slug = "uber"
    display_name = "Uber"
    domains = ("uber.com",)
