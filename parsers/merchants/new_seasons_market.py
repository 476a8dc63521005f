"""New Seasons Market - emails from newseasonsmarket.com."""

from parsers.base import MerchantParser


class NewSeasonsMarketParser(MerchantParser):
    slug = "new_seasons_market"
    display_name = "New Seasons Market"
    domains = ("newseasonsmarket.com",)
