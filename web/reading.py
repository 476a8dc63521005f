"""How sure the email reading was about a purchase, in words for its owner: which parser layer read
it, its confidence as high/medium/low, and the stored warnings, with the ones about the total
singled out so the owner knows what to check. Private: only the owner's pages use this."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from parsers.registry import BY_SLUG
from purchaseshare.models import Purchase

# Confidence is a score in [0, 1]; the words are what an owner reads (the number is in a title).
HIGH, MEDIUM = 0.8, 0.5
# A warning saying the total is doubtful: the parts do not add up to it, or it could not be read.
TOTAL_DOUBT = re.compile(r"did not add up|do not add up|does not add up|total not read|total was not read", re.I)
TOTAL_HINT = ("Compare the total with the email: the item prices, shipping, tax and discounts should add up to "
              "it. Correct the total or the items under “Correct what was read”.")
MISSING_TOTAL_HINT = "The total was not read: enter it from the email under “Correct what was read”."


@dataclass(frozen=True)
class Reading:
    layer: str | None  # "read by the generic reader", ...; None when entered by hand or unknown
    level: str | None  # "high" | "medium" | "low"
    score: float | None
    warnings: list[str] = field(default_factory=list)
    total_warnings: list[str] = field(default_factory=list)

    @property
    def total_hint(self) -> str:
        return TOTAL_HINT if any(not re.search(r"not read", w, re.I) for w in self.total_warnings) \
            else MISSING_TOTAL_HINT


def layer_words(parser: str | None) -> str | None:
    if not parser:
        return None
    if parser == "generic":
        return "read by the generic reader"
    if parser == "schema_org":
        return "from schema.org data"
    if parser == "taught":
        return "taught by you, pointing at the email"
    if parser.startswith("learned:"):
        return f"read with the layout learned for {parser.removeprefix('learned:')}"
    if parser.startswith("merchant:"):
        slug = parser.removeprefix("merchant:")
        known = BY_SLUG.get(slug)
        name = known.display_name if known is not None else slug.replace("_", " ").title()
        return f"read by the {name} parser"
    return f"read by {parser}"


def level_words(score: float | None) -> str | None:
    if score is None:
        return None
    return "high" if score >= HIGH else "medium" if score >= MEDIUM else "low"


def stored_warnings(text: str | None) -> list[str]:
    """Purchase.warnings (a JSON list); anything else stored there reads as no warnings."""
    if not text:
        return []
    try:
        found = json.loads(text)
    except ValueError:
        return []
    return [str(item) for item in found if str(item).strip()] if isinstance(found, list) else []


def doubts_total(warning: str) -> bool:
    return TOTAL_DOUBT.search(warning) is not None


def reading(purchase: Purchase) -> Reading:
    found = stored_warnings(purchase.warnings)
    return Reading(layer=layer_words(purchase.parser), level=level_words(purchase.confidence),
                   score=purchase.confidence, warnings=found,
                   total_warnings=[w for w in found if doubts_total(w)])


def total_in_doubt(purchase: Purchase) -> bool:
    """For the owner's lists: a small marker on purchases whose total should be checked."""
    return any(doubts_total(w) for w in stored_warnings(purchase.warnings))
