"""Steam - emails from steampowered.com."""

from parsers.base import MerchantParser


class SteamParser(MerchantParser):
    slug = "steam"
    display_name = "Steam"
    domains = ("steampowered.com",)
