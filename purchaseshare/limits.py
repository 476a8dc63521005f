"""Limits on actions that reach other people or cost us (comments notify an owner, verification
mail goes to an outside address, accounts are cheap to make but not free), taken with
purchaseshare.ratelimit.take."""

from __future__ import annotations

from datetime import timedelta

from purchaseshare.ratelimit import Rule

COMMENT_RULES: list[Rule] = [(5, timedelta(minutes=1)), (30, timedelta(hours=1))]
# Verification mail to one address, whichever accounts ask for it, and from one account.
VERIFY_TO_RULES: list[Rule] = [(3, timedelta(hours=1)), (5, timedelta(days=1))]
VERIFY_BY_RULES: list[Rule] = [(9, timedelta(hours=1)), (20, timedelta(days=1))]
SIGNUP_RULES: list[Rule] = [(10, timedelta(hours=1))]  # per client

# One length limit per text field, in characters: the forms' maxlength (and the counters on
# text areas) and the server's checks read these same numbers (web templates: `field_max`).
TEXT_MAX: dict[str, int] = {
    "merchant": 200,
    "item_name": 500,
    "items": 60_000,  # the manual entry's item lines (at most pipeline.MAX_ITEMS of them)
    "caption": 1000,
    "url": 2000,
    "money": 40,
    "currency": 3,
    "handle": 40,
    "display_name": 80,
    "avatar_url": 500,
    "bio": 2000,
    "comment": 2000,
    "review": 4000,
    "collection_name": 80,
    "collection_description": 1000,
}
