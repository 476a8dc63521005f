"""Normalize and validate: money, currency, dates, domains, links; then reconcile.

Every parser layer hands over an `Extraction` with raw-ish values; this module is the
one place that turns them into the CONTRACT's shapes: Decimal money with an ISO 4217
code (or None rather than a wrong guess), ISO dates, integer quantities, registrable
domains, links without tracking parameters.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import babel.numbers
import tldextract
from price_parser import Price

from parsers.model import Extraction, Item
from parsers.personal import looks_like_address

_EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)  # bundled list, no network

# Symbols that name exactly one currency.
UNAMBIGUOUS_SIGNS = {
    "£": "GBP", "€": "EUR", "₹": "INR", "₩": "KRW", "₽": "RUB", "zł": "PLN", "r$": "BRL",
    "us$": "USD", "usd$": "USD", "ca$": "CAD", "c$": "CAD", "a$": "AUD", "au$": "AUD",
    "nz$": "NZD", "hk$": "HKD", "s$": "SGD", "mx$": "MXN", "₺": "TRY", "kč": "CZK",
    "₪": "ILS", "฿": "THB", "₫": "VND", "₱": "PHP", "fr.": "CHF", "sfr": "CHF", "eur": "EUR",
    "gbp": "GBP", "usd": "USD", "lei": "RON", "ft": "HUF", "руб": "RUB",
}  # fmt: skip
# Symbols shared by several currencies: the country decides.
AMBIGUOUS_SIGNS = {"$", "kr", "kr.", "¥", "r", "fr", "₨"}
_GENERIC_TLDS = {"com", "net", "org", "info", "biz", "io", "co", "eu", "app", "shop", "store"}
# ccTLDs sold as generic names (twitch.tv is not from Tuvalu): they say nothing of a country.
_VANITY_TLDS = frozenset({"tv", "me", "fm", "ai", "gg", "ly", "to", "cc", "ws", "nu", "tk", "am", "im",
                          "la", "sh", "ac", "vc", "gl", "so", "xyz", "cx", "ms", "gs", "md", "mu"})
_TLD_TERRITORY = {"uk": "GB", "com.au": "AU", "co.nz": "NZ", "com.mx": "MX", "com.br": "BR",
                  "co.jp": "JP", "com.sg": "SG", "com.tr": "TR", "co.za": "ZA", "com.cn": "CN"}


@lru_cache(maxsize=4096)
def registrable_domain(value: str | None) -> str | None:
    """'auto-confirm@amazon.co.uk' or 'https://www.amazon.co.uk/x' -> 'amazon.co.uk'."""
    if not value:
        return None
    host = value.rsplit("@", 1)[-1] if "@" in value and "/" not in value else value
    if "//" in host:
        host = urlsplit(host).hostname or ""
    host = host.strip().strip(".<>").lower()
    parts = _EXTRACT(host)
    return parts.top_domain_under_public_suffix or None


def territory_of_domain(domain: str | None) -> str | None:
    if not domain:
        return None
    suffix = _EXTRACT(domain).suffix
    if suffix in _TLD_TERRITORY:
        return _TLD_TERRITORY[suffix]
    last = suffix.rsplit(".", 1)[-1]
    if last in _GENERIC_TLDS or last in _VANITY_TLDS or len(last) != 2 or not last.isalpha():
        return None
    return _TLD_TERRITORY.get(last, last.upper())


def territory_of_language(language: str | None) -> str | None:
    """'en-US' -> 'US'; a bare language ('fr') says nothing about the country."""
    if not language:
        return None
    parts = re.split(r"[-_]", language)
    return parts[1].upper() if len(parts) > 1 and len(parts[1]) == 2 else None


def currency_code(hint: str | None) -> str | None:
    """An ISO 4217 code or a sign that names one currency ("€", "CA$") -> its code; a sign
    several countries share ("$", "kr") or an unknown one -> None (parsers.currency decides)."""
    if not hint:
        return None
    key = hint.strip().lower()
    if len(key) == 3 and key.isalpha() and key.upper() in _ISO_CODES:
        return key.upper()
    return UNAMBIGUOUS_SIGNS.get(key)


_ISO_CODES = frozenset(babel.numbers.list_currencies())


@lru_cache(maxsize=512)
def territory_currency(territory: str, symbol: str) -> str | None:
    try:
        codes = babel.numbers.get_territory_currencies(territory)
    except Exception:  # an unknown territory code
        return None
    for code in codes:
        for locale in (f"en_{territory}", "en"):
            try:
                local = babel.numbers.get_currency_symbol(code, locale).lower()
            except Exception:
                continue
            if local.rstrip(".") == symbol.rstrip(".") or (symbol == "$" and local.endswith("$")):
                return code
    return None


def parse_money(text: str | None, *, decimal_separator: str | None = None) -> tuple[Decimal | None, str | None]:
    """'£1,234.56' -> (Decimal('1234.56'), '£'); amounts are never floats."""
    if text is None:
        return None, None
    if isinstance(text, (int, Decimal)):
        return Decimal(text), None
    price = Price.fromstring(str(text), decimal_separator=decimal_separator)
    return price.amount, (price.currency.strip() if price.currency else None)


def to_decimal(value: object) -> Decimal | None:
    """A JSON number or numeric string -> Decimal (floats via their repr, not binary value)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, (int, float)):
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    amount, _ = parse_money(str(value))
    return amount


_TRACKING_PARAM = re.compile(
    r"^(utm_\w+|gclid|fbclid|dclid|msclkid|mc_[ce]id|_hs\w+|ref|ref_|refrid|pf_rd_\w+|pd_rd_\w+|"
    r"qid|sr|crid|sprefix|psc|th|linkcode|linkid|camp|creative|creativeasin|icid|cmpid|cmp|trk|"
    r"trkid|spm|scm|_trk\w*|mkevt|mkcid|mkrid|campid|customid|toolid|emailid|email|e|uid|"
    r"source|src|mid|cid|rid|sid|eid|ncid|elqtrack\w*|elq\w*|vero_\w+|oly_\w+|rb_clickid|"
    r"s_kwcid|ascsubtag|smid|tag)$",
    re.IGNORECASE,
)
_REDIRECT_PARAMS = ("u", "url", "target", "redirect", "redirect_url", "dest", "destination", "to", "r", "loc", "link",
                    "goto", "redir")


def clean_url(url: str | None) -> str | None:
    """Drop tracking parameters and unwrap redirectors; keep what identifies the product."""
    if not url:
        return None
    url = url.strip()
    if not re.match(r"^https?://", url, re.IGNORECASE):
        return None
    for _ in range(3):  # redirectors wrap redirectors
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        target = next((v for k, v in query if k.lower() in _REDIRECT_PARAMS
                       and re.match(r"^https?(://|%3A)", v, re.IGNORECASE)), None)
        if not target:
            break
        url = unquote(target) if "%3A" in target[:8].upper() else target
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not _TRACKING_PARAM.match(k)]
    path = re.sub(r"/ref=[^/?]*$", "", parts.path)  # Amazon's /dp/ASIN/ref=pd_... tail
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, urlencode(query), ""))


def parse_date_text(text: str | None, *, language: str | None) -> date | None:
    """A date as a merchant prints it, read in the email's language."""
    if not text:
        return None
    text = re.sub(r"\s+", " ", str(text)).strip()
    iso = re.search(r"\b(\d{4})-(\d{2})-(\d{2})\b", text)
    if iso:
        try:
            return date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
        except ValueError:
            pass
    lang = (language or "").split("-")[0].lower() or None
    territory = territory_of_language(language)
    date_order = "MDY" if territory in ("US", None) and lang in ("en", None) else "DMY"
    languages = [lang, "en"] if lang and lang != "en" else ["en"]
    quick = quick_datetime(text, languages, date_order=date_order)
    if quick is not None:
        return quick.date()
    import dateparser  # slow import: only paid when a merchant date needs reading

    settings = {
        "PARSERS": ["custom-formats", "absolute-time"],
        "DATE_ORDER": date_order,
        "PREFER_DAY_OF_MONTH": "first",
        "REQUIRE_PARTS": ["day", "month", "year"],
    }
    try:
        parsed = dateparser.parse(text, languages=languages, settings=settings)
    except (ValueError, OverflowError):
        parsed = None
    return parsed.date() if parsed else None


def money_str(value: Decimal | None) -> str | None:
    if value is None:
        return None
    try:
        return format(value.normalize() if value == value.to_integral() else value, "f")
    except InvalidOperation:
        return None


def normalize_items(items: list[Item]) -> list[Item]:
    cleaned = []
    for item in items:
        name = re.sub(r"\s+", " ", item.name or "").strip()
        if not name or looks_like_address(name):  # a delivery address read as a row is not an item
            continue
        quantity = item.quantity if isinstance(item.quantity, int) and item.quantity > 0 else 1
        unit, line = item.unit_price, item.line_total
        if line is None and unit is not None:
            line = unit * quantity
        if unit is None and line is not None:
            unit = line / quantity if quantity == 1 or (line / quantity) * quantity == line else None
            if unit is not None and quantity > 1:
                unit = unit.quantize(Decimal("0.01")) if unit.as_tuple().exponent < -2 else unit
        cleaned.append(Item(name=name, quantity=quantity, unit_price=unit, line_total=line,
                            url=clean_url(item.url), image=clean_url(item.image),
                            sku=(item.sku or None), variant=(item.variant or None)))
    return cleaned


def reconcile(extraction: Extraction) -> list[str]:
    """Items + shipping + tax - discounts against the total: a warning when they disagree."""
    if extraction.total is None or not extraction.items:
        return []
    if any(item.line_total is None for item in extraction.items):
        return []
    items_sum = sum((item.line_total for item in extraction.items), Decimal(0))
    base = extraction.subtotal if extraction.subtotal is not None else items_sum
    expected = base + (extraction.shipping or 0) + (extraction.tax or 0) - (extraction.discount or 0)
    warnings = []
    if extraction.subtotal is not None and items_sum != extraction.subtotal:
        warnings.append(f"items do not add up to subtotal: {money_str(items_sum)} != {money_str(extraction.subtotal)}")
    if expected != extraction.total and items_sum != extraction.total:
        warnings.append(f"items do not add up to total: {money_str(expected)} != {money_str(extraction.total)}")
    return warnings


# --- Dates: a fast path for the common shapes; anything else goes to dateparser ----------
# dateparser costs milliseconds per date (locale detection, translation). These shapes are
# read exactly as dateparser reads them (tests/parsers check the two agree); a shape, word
# or value this table does not know returns None and dateparser decides.
_MONTH_NAMES = {
    "en": ("january february march april may june july august september october november december",
           "jan feb mar apr may jun jul aug sep oct nov dec"),
    "de": ("januar februar märz april mai juni juli august september oktober november dezember",
           "jan feb mär apr mai jun jul aug sep okt nov dez"),
    "fr": ("janvier février mars avril mai juin juillet août septembre octobre novembre décembre",),
    "es": ("enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre",),
    "it": ("gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre dicembre",),
    "nl": ("januari februari maart april mei juni juli augustus september oktober november december",),
}  # fmt: skip
_WEEKDAY_NAMES = {
    "en": ("monday tuesday wednesday thursday friday saturday sunday", "mon tue wed thu fri sat sun"),
    "de": ("montag dienstag mittwoch donnerstag freitag samstag sonntag",),
    "fr": ("lundi mardi mercredi jeudi vendredi samedi dimanche",),
    "es": ("lunes martes miércoles jueves viernes sábado domingo",),
    "it": ("lunedì martedì mercoledì giovedì venerdì sabato domenica",),
    "nl": ("maandag dinsdag woensdag donderdag vrijdag zaterdag zondag",),
}  # fmt: skip
_MONTHS = {lang: {name: i + 1 for row in rows for i, name in enumerate(row.split())}
           for lang, rows in _MONTH_NAMES.items()}
_MONTHS["en"]["sept"] = 9
_WEEKDAYS = {lang: {name: i for row in rows for i, name in enumerate(row.split())}
             for lang, rows in _WEEKDAY_NAMES.items()}
_QUICK_TIME = (r"(?:,? (?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?(?: (?P<ampm>[ap]m))?"
               r"(?: (?P<tz>(?:utc|gmt)(?:[+-]\d{1,2})?|[+-]\d{2}:?\d{2}))?)?")
_QUICK_NAMED = (
    # "Oct 18, 2025", "Sat, Oct 18, 2025", "Wednesday, July 09, 2014 10:27 am"
    re.compile(r"(?:(?P<wd>[^\W\d_]+),? )?(?P<mon>[^\W\d_]+) (?P<d>\d{1,2}), (?P<y>\d{4})" + _QUICK_TIME),
    # "18 December 2017", "14. März 2024", "venerdì 06 febbraio 2015", "17 de junio de 2020"
    re.compile(r"(?:(?P<wd>[^\W\d_]+),? )?(?P<d>\d{1,2})(?P<dot>\.)? (?P<de>de )?(?P<mon>[^\W\d_]+) "
               r"(?(de)de )(?P<y>\d{4})" + _QUICK_TIME),
    # ctime: "Sat Aug 02 06:36:04 2014"
    re.compile(r"(?P<wd>[a-z]{3}) (?P<mon>[a-z]{3}) (?P<d>\d{1,2}) (?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2}) "
               r"(?P<y>\d{4})"),
)
_QUICK_NUMERIC = re.compile(r"(?P<a>\d{1,2})(?P<sep>[./])(?P<b>\d{1,2})(?P=sep)(?P<y>\d{4}|\d{2})")
_QUICK_ISO = re.compile(r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})" + _QUICK_TIME)  # "2017-01-04 11:27"


def quick_datetime(text: str, languages: list[str], *, date_order: str | None = None) -> datetime | None:
    """`text` (whitespace already collapsed) in one of the shapes above, or None.

    `languages` in dateparser's order: the first whose words read every word of the text
    decides (as dateparser picks a locale). `date_order` ("MDY"/"DMY") reads "04/14/2025".
    """
    text = text.lower()
    if date_order:
        numeric = _QUICK_NUMERIC.fullmatch(text)
        if numeric:
            first, second = int(numeric.group("a")), int(numeric.group("b"))
            month, day = (first, second) if date_order == "MDY" else (second, first)
            year = int(numeric.group("y"))
            if year < 100:  # "24.07.23": strptime's %y, as dateparser reads it
                year += 2000 if year < 69 else 1900
            return _quick_build(year, month, day, numeric)
    iso = _QUICK_ISO.fullmatch(text)
    if iso:
        return _quick_build(int(iso.group("y")), int(iso.group("mo")), int(iso.group("d")), iso)
    for shape in _QUICK_NAMED:
        found = shape.fullmatch(text)
        if found is not None:
            break
    else:
        return None
    groups = found.groupdict()
    for lang in languages:
        month = _MONTHS.get(lang, {}).get(groups["mon"])
        if month is None or (groups.get("de") and lang != "es") or (groups.get("dot") and lang != "de"):
            continue
        weekday = None
        if groups["wd"] is not None:
            weekday = _WEEKDAYS[lang].get(groups["wd"])
            if weekday is None:
                continue
        value = _quick_build(int(found.group("y")), month, int(found.group("d")), found)
        if value is None or (weekday is not None and value.weekday() != weekday):
            return None
        return value
    return None


def _quick_build(year: int, month: int, day: int, found: re.Match[str]) -> datetime | None:
    groups = found.groupdict()
    hour = minute = second = 0
    if groups.get("H") is not None:
        hour, minute, second = int(groups["H"]), int(groups["M"]), int(groups["S"] or 0)
        if groups.get("ampm"):
            if not 1 <= hour <= 12:
                return None
            hour = hour % 12 + (12 if groups["ampm"] == "pm" else 0)
    if not 1900 <= year <= 2099:
        return None
    tzinfo = None
    if groups.get("tz"):
        offset = re.fullmatch(r"(?:utc|gmt)?(?:([+-])(\d{1,2})(?::?(\d{2}))?)?", groups["tz"])
        if offset is None:
            return None
        sign, hours, minutes = offset.groups()
        if minutes not in (None, "00"):
            return None  # dateparser knows some half-hour zones, not others ("-0530")
        if sign is None:
            tzinfo = UTC
        else:
            delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
            if delta > timedelta(hours=14):
                return None
            tzinfo = timezone(-delta if sign == "-" else delta)
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=tzinfo)
    except ValueError:
        return None
