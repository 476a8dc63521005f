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
