"""United Airlines - emails from united.com."""

from parsers.base import MerchantParser


class UnitedParser(MerchantParser):
    slug = "united"
    display_name = "United Airlines"
    domains = ("united.com",)
