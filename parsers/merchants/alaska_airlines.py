"""Alaska Airlines - emails from alaskaair.com."""

from parsers.base import MerchantParser


class AlaskaAirlinesParser(MerchantParser):
    slug = "alaska_airlines"
    display_name = "Alaska Airlines"
    domains = ("alaskaair.com",)
