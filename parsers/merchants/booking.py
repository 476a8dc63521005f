"""Booking.com - emails from booking.com."""

from parsers.base import MerchantParser


class BookingParser(MerchantParser):
    slug = "booking"
    display_name = "Booking.com"
    domains = ("booking.com",)
