"""Amazon - emails from amazon.com, amazon.co.uk, amazon.de, amazon.fr, amazon.it, amazon.es, amazon.ca."""

from parsers.base import MerchantParser


class AmazonParser(MerchantParser):
    slug = "amazon"
    display_name = "Amazon"
    domains = ("amazon.com", "amazon.co.uk", "amazon.de", "amazon.fr", "amazon.it", "amazon.es", "amazon.ca")
