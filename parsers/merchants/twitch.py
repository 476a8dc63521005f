"""Twitch - emails from twitch.tv."""

from parsers.base import MerchantParser


class TwitchParser(MerchantParser):
    slug = "twitch"
    display_name = "Twitch"
    domains = ("twitch.tv",)
