"""American Airlines - emails from aa.com."""

from parsers.base import MerchantParser


class AmericanAirlinesParser(MerchantParser):
    slug = "american_airlines"
    display_name = "American Airlines"
    domains = ("aa.com",)
