"""SNCF - emails from sncf.fr, sncf.com, sncf-connect.com, oui.sncf."""

from parsers.base import MerchantParser


class SncfParser(MerchantParser):
    slug = "sncf"
    display_name = "SNCF"
    domains = ("sncf.fr", "sncf.com", "sncf-connect.com", "oui.sncf")
