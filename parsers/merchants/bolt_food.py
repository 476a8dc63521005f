"""Bolt Food - emails from bolt.eu."""

from parsers.base import MerchantParser


class BoltFoodParser(MerchantParser):
    slug = "bolt_food"
    display_name = "Bolt Food"
    domains = ("bolt.eu",)
