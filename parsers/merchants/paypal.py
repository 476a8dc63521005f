"""PayPal - emails from paypal.com, paypal.co.uk, paypal.de, paypal.fr, paypal.it, paypal.es."""

from parsers.base import MerchantParser


class PaypalParser(MerchantParser):
    slug = "paypal"
    display_name = "PayPal"
    domains = ("paypal.com", "paypal.co.uk", "paypal.de", "paypal.fr", "paypal.it", "paypal.es")
