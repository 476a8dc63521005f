"""Which currency an amount is in, from the evidence the email carries.

Order of strength: an ISO code or an unambiguous symbol decides alone ("EUR", "£", "CA$").
A sign several currencies share ("$", "kr", "¥") is narrowed by the email's countries:
the sender's ccTLD, the address country (a line naming it, a postal code), tax labels
(GST/HST, IVA, MwSt) - strong evidence - then `<html lang>`/Content-Language regions and
phone prefixes - weak evidence, used when the strong says nothing or leaves a choice.
Each piece of evidence allows a set of currencies (babel's territory currencies that
write this sign); the answer is what they all allow. Evidence that disagrees gives None
and a warning rather than a guess; when only a default decided ("$" alone is USD) the
code comes with a warning saying so.

Gathered only for an ambiguous sign or a missing one: the common path pays nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import babel.numbers
from babel import Locale

from parsers.message import Email
from parsers.normalize import (
    AMBIGUOUS_SIGNS,
    currency_code,
    territory_currency,
    territory_of_domain,
    territory_of_language,
)

# Languages whose country names we read besides English (the vocabularies' languages).
_NAME_LANGUAGES = ("fr", "de", "es", "it", "nl", "pt", "sv", "pl")
_COUNTRY_ALIASES = {
    "usa": "US", "u.s.a": "US", "u.s": "US", "united states of america": "US", "uk": "GB",
    "u.k": "GB", "great britain": "GB", "england": "GB", "scotland": "GB", "wales": "GB",
    "northern ireland": "GB", "deutschland": "DE", "österreich": "AT", "schweiz": "CH",
    "suisse": "CH", "españa": "ES", "italia": "IT", "nederland": "NL", "sverige": "SE", "polska": "PL",
}  # fmt: skip
# Country calling codes of the countries most mail comes from (weak: a support line abroad).
_CALLING_CODES = {
    "1": ("US", "CA"), "7": ("RU", "KZ"), "20": ("EG",), "27": ("ZA",), "30": ("GR",), "31": ("NL",),
    "32": ("BE",), "33": ("FR",), "34": ("ES",), "36": ("HU",), "39": ("IT",), "40": ("RO",),
    "41": ("CH",), "43": ("AT",), "44": ("GB",), "45": ("DK",), "46": ("SE",), "47": ("NO",),
    "48": ("PL",), "49": ("DE",), "51": ("PE",), "52": ("MX",), "54": ("AR",), "55": ("BR",),
    "56": ("CL",), "57": ("CO",), "60": ("MY",), "61": ("AU",), "62": ("ID",), "63": ("PH",),
    "64": ("NZ",), "65": ("SG",), "66": ("TH",), "81": ("JP",), "82": ("KR",), "84": ("VN",),
    "86": ("CN",), "90": ("TR",), "91": ("IN",), "351": ("PT",), "352": ("LU",), "353": ("IE",),
    "354": ("IS",), "358": ("FI",), "420": ("CZ",), "852": ("HK",), "886": ("TW",), "966": ("SA",),
    "971": ("AE",), "972": ("IL",),
}  # fmt: skip
_EU = ("AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
       "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE")
# Tax labels -> the countries that print them (case-sensitive: "GST" is a label, "gst" is not).
_TAX_LABELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (r"GST/HST|HST|QST|TPS/TVQ|TVQ|TVH", "Canadian sales tax", ("CA",)),
    (r"GST", "GST", ("CA", "AU", "NZ", "SG", "IN", "MY")),
    (r"VAT|V\.A\.T\.", "VAT", ("GB", "NO", "CH", *_EU)),
    (r"MwSt|MWST|USt", "MwSt", ("DE", "AT", "CH", "LI", "LU")),
    (r"TVA", "TVA", ("FR", "BE", "LU", "CH", "MC", "RO")),
    (r"IVA", "IVA", ("ES", "IT", "PT", "MX", "AR", "CL", "CO", "UY")),
    (r"BTW", "BTW", ("NL", "BE")),
    (r"MVA", "MVA", ("NO",)),
)
# Postal codes with their region: an address line names its country without naming it.
_POSTCODES: tuple[tuple[str, str], ...] = (
    (r"(?:A[KLRZ]|C[AOT]|D[CE]|FL|GA|HI|I[ADLN]|K[SY]|LA|M[ADEINOST]|N[CDEHJMVY]|O[HKR]|PA|RI|"
     r"S[CD]|T[NX]|UT|V[AT]|W[AIVY]),? \d{5}(?:-\d{4})?\b", "US"),
    (r"(?:AB|BC|MB|NB|NL|NS|NT|NU|ON|PE|QC|SK|YT),? [A-Z]\d[A-Z] ?\d[A-Z]\d\b", "CA"),
    (r"(?:NSW|VIC|QLD|WA|SA|TAS|ACT|NT),? \d{4}\b", "AU"),
    (r"[A-Z]{1,2}\d[A-Z\d]? \d[ABD-HJLNP-UW-Z]{2}\b", "GB"),
)


def _one_pass(patterns: list[str], suffix: str = "") -> re.Pattern[str]:
    """One regex, a named group per pattern (g0, g1...), tried only where a capital starts a
    word: a pass per pattern costs several times more on a long body."""
    branches = "|".join(f"(?P<g{index}>{pattern})" for index, pattern in enumerate(patterns))
    return re.compile(rf"(?<!\w)(?=[A-Z])(?:{branches}){suffix}")


_TAX_PATTERN = _one_pass([pattern for pattern, _, _ in _TAX_LABELS], r"(?!\w)")
_POSTCODE_PATTERN = _one_pass([pattern for pattern, _ in _POSTCODES])
_PHONE = re.compile(r"(?<![\w+])\+(\d{1,3})[\s.\-\u00a0(]")
_DIGIT = re.compile(r"\d")
_COUNTRY_LINE_CHARS = 60  # an address line naming a country is short
_BODY_CHARS = 30000  # evidence far below this is footer noise in a huge email


@dataclass(frozen=True)
class Evidence:
    what: str  # "the sender's domain (.ca)", shown in warnings
    territories: tuple[str, ...]
    strong: bool


def currency_of(hint: str | None, mail: Email, domain: str | None) -> tuple[str | None, list[str]]:
    """(ISO 4217 code or None, warnings) for an amount written with `hint` in this email."""
    if hint and hint.strip():
        code = currency_code(hint)
        if code:
            return code, []
        symbol: str | None = hint.strip().lower()
        if symbol not in AMBIGUOUS_SIGNS:
            return None, []  # a sign we do not know: nothing to narrow
    else:
        symbol = None
    evidence = gather(mail, domain)
    return decide(symbol, evidence)


def decide(symbol: str | None, evidence: list[Evidence]) -> tuple[str | None, list[str]]:
    """The currency every piece of evidence allows, strong evidence first."""
    sign = f"'{symbol}'" if symbol else "no currency sign"
    allowed = [(item, _currencies(item.territories, symbol)) for item in evidence]
    allowed = [(item, codes) for item, codes in allowed if codes]  # evidence about another sign says nothing
    strong = [(item, codes) for item, codes in allowed if item.strong]
    weak = [(item, codes) for item, codes in allowed if not item.strong]
    common: frozenset[str] | None = None
    used: list[Evidence] = []
    for item, codes in strong:
        narrowed = codes if common is None else common & codes
        if not narrowed:
            return None, [f"currency unclear: {sign} with conflicting evidence "
                          f"({_describe(strong)})"]
        common, used = narrowed, [*used, item]
    for item, codes in weak:  # weak evidence narrows, never contradicts the strong
        narrowed = codes if common is None else common & codes
        if not narrowed:
            if not strong:
                return None, [f"currency unclear: {sign} with conflicting evidence ({_describe(weak)})"]
            continue
        common, used = narrowed, [*used, item]
    if symbol is None and not strong:
        return None, []  # no sign and no firm country: nothing to assume from
    default = _default(symbol)
    if common is None:
        if default:
            return default, [f"currency assumed from the {sign} sign alone: {default}"]
        return None, [f"currency unclear: {sign} and no country in the email"] if symbol else []
    if len(common) == 1:
        (code,) = common
        if symbol is None:
            return code, [f"currency assumed from {', '.join(e.what for e in used)}: {code}"]
        return code, []
    if default in common:
        return default, [f"currency assumed: {sign} could be {', '.join(sorted(common))}; took {default}"]
    if symbol is None:
        return None, []  # no sign, several countries' currencies: say nothing rather than guess
    return None, [f"currency unclear: {sign} could be {', '.join(sorted(common))}"]


def _describe(items: list[tuple[Evidence, frozenset[str]]]) -> str:
    return "; ".join(f"{item.what}: {'/'.join(sorted(codes))}" for item, codes in items)


def _default(symbol: str | None) -> str | None:
    """The currency English writes with exactly this sign ("$" USD, "¥" JPY), or None."""
    if symbol is None:
        return None
    return _en_symbol_owner(symbol)


@lru_cache(maxsize=64)
def _en_symbol_owner(symbol: str) -> str | None:
    owners = [code for code in _COMMON_CODES if babel.numbers.get_currency_symbol(code, "en").lower() == symbol]
    return owners[0] if len(owners) == 1 else None


_COMMON_CODES = ("USD", "EUR", "GBP", "JPY", "CNY", "CAD", "AUD", "CHF", "SEK", "NOK", "DKK", "INR", "ZAR")


@lru_cache(maxsize=1024)
def _currencies(territories: tuple[str, ...], symbol: str | None) -> frozenset[str]:
    """The currencies these countries pay in, written with `symbol` (any, when None)."""
    found = set()
    for territory in territories:
        if symbol is None:
            try:
                codes = babel.numbers.get_territory_currencies(territory)
            except Exception:  # an unknown territory code
                continue
            if codes:
                found.add(codes[0])
        else:
            code = territory_currency(territory, symbol)
            if code:
                found.add(code)
    return frozenset(found)


def gather(mail: Email, domain: str | None) -> list[Evidence]:
    """Every piece of country evidence in the email (cheap: one pass per kind over the text)."""
    found: list[Evidence] = []
    territory = territory_of_domain(domain)
    if territory:
        found.append(Evidence(f"the sender's domain ({domain})", (territory,), True))
    text = mail.body_text[:_BODY_CHARS]
    found += _address_countries(text, mail.language)
    postcodes: dict[int, str] = {}
    for match in _POSTCODE_PATTERN.finditer(text):
        postcodes.setdefault(int(match.lastgroup[1:]), match.group(0))
    for index, code in sorted(postcodes.items()):
        found.append(Evidence(f"a postal code ({code})", (_POSTCODES[index][1],), True))
    labels = sorted({int(match.lastgroup[1:]) for match in _TAX_PATTERN.finditer(text)})
    for index in labels:
        _, label, territories = _TAX_LABELS[index]
        found.append(Evidence(f"the tax label {label}", territories, True))
    declared = _declared_region(mail)
    if declared:
        found.append(Evidence(f"the declared language {declared[0]}", (declared[1],), False))
    prefixes = {match.group(1) for match in _PHONE.finditer(text)}
    for prefix in sorted(prefixes):
        if prefix in _CALLING_CODES:
            found.append(Evidence(f"the phone prefix +{prefix}", _CALLING_CODES[prefix], False))
    return found


def _declared_region(mail: Email) -> tuple[str, str] | None:
    """`<html lang="en-CA">` or Content-Language: en-CA -> ('en-CA', 'CA')."""
    values = [mail.tree.get("lang") if mail.tree is not None else None, mail.original.content_language]
    for value in values:
        value = (value or "").split(",")[0].strip()
        territory = territory_of_language(value)
        if territory and territory.isalpha():
            return value, territory
    return None


def _address_countries(text: str, language: str | None) -> list[Evidence]:
    """Countries named as the last part of a short address line, after a line holding a digit
    (a street number or a postal code): "Toronto, ON M5V 2T6" / "Canada"."""
    names = _country_names((language or "en").split("-")[0].lower())
    found: dict[str, Evidence] = {}
    digit_seen = -10
    for number, line in enumerate(text.splitlines()):
        if len(line) > _COUNTRY_LINE_CHARS:
            continue
        if _DIGIT.search(line):
            digit_seen = number
        if number - digit_seen > 3:
            continue
        tail = line.rsplit(",", 1)[-1].strip(" .|\t")
        territory = names.get(tail.lower())
        if territory and territory not in found:
            found[territory] = Evidence(f"the address country ({tail})", (territory,), True)
    return list(found.values())


@lru_cache(maxsize=16)
def _country_names(language: str) -> dict[str, str]:
    """Country name (lowercase) -> territory code, in English and the email's language."""
    names: dict[str, str] = {}
    for lang in ("en", language) if language in _NAME_LANGUAGES else ("en",):
        for code, name in Locale.parse(lang).territories.items():
            if len(code) == 2 and code.isalpha() and code not in ("EU", "EZ", "UN", "ZZ", "QO"):
                names.setdefault(name.lower(), code)
    for alias, code in _COUNTRY_ALIASES.items():
        names.setdefault(alias, code)
    return names
