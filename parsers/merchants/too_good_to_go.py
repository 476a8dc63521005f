"""Too Good To Go - emails from toogoodtogo.com."""

from parsers.base import MerchantParser


class TooGoodToGoParser(MerchantParser):
    slug = "too_good_to_go"
    display_name = "Too Good To Go"
    domains = ("toogoodtogo.com",)
