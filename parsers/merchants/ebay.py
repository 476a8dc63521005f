"""eBay - emails from ebay.com, ebay.co.uk, ebay.de, ebay.fr, ebay.it, ebay.es, ebay.ca, ebay.com.au."""

from parsers.base import MerchantParser


class EbayParser(MerchantParser):
    slug = "ebay"
    display_name = "eBay"
    domains = ("ebay.com", "ebay.co.uk", "ebay.de", "ebay.fr", "ebay.it", "ebay.es", "ebay.ca", "ebay.com.au")
