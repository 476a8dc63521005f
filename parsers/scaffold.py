"""`purchaseshare new-merchant SLUG --from FILE.eml`: a new merchant in minutes.

Modelled on recipe-scrapers' generate.py. From one real email it writes
parsers/merchants/SLUG.py (a minimal parser), registers it in parsers/registry.py in
sorted order, copies the email into fixtures/emails/SLUG/ with the personal data
scrubbed, and writes the golden the current pipeline gives for the developer to correct.

Scrubbing (`Scrubber`) runs in two passes over the whole message, nested forwards
included: first it collects what is personal (the customer's names, postal addresses,
e-mail addresses, phone numbers, card digits, order and tracking numbers), then it
replaces every occurrence - headers, text parts, HTML text and attributes (BeautifulSoup)
- with invented values, the same one everywhere. Attachments are dropped; only text
parts survive, re-encoded as UTF-8 quoted-printable. The merchant's own addresses stay:
matching needs them.
"""

from __future__ import annotations

import ast
import email
import email.policy
import json
import keyword
import os
import random
import re
import subprocess
import sys
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from urllib.parse import quote

from bs4 import BeautifulSoup

from parsers.message import (
    EMAIL_ADDRESS,
    html_text,
    looks_like_headers,
    normalize_lines,
    payload_text,
    read_bare_body,
)
from parsers.normalize import registrable_domain

ROOT = Path(__file__).resolve().parent.parent
SLUG = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
IMPORTS_START = "# -- imports (sorted) --"
IMPORTS_END = "# -- end imports --"
_IMPORT_LINE = re.compile(r"^from parsers\.merchants\.(\w+) import (\w+)\s*$")
_MERCHANTS_OPEN = re.compile(r"^MERCHANTS\b.*=\s*\(\s*$")
# Headers a fixture keeps; Received, DKIM, X-* and friends carry addresses and hosts.
_KEPT_HEADERS = ("from", "to", "cc", "reply-to", "subject", "date", "message-id", "mime-version",
                 "content-language")

TEMPLATE = '''"""{display_name} - emails from {domains_text}."""

from parsers.base import MerchantParser


class {camel}Parser(MerchantParser):
    slug = "{slug}"
    display_name = "{display_name}"
    domains = ({domains})
    # Override only the fields schema.org does not give (parsers/base.py lists them);
    # comment each regex with the email phrase it targets.
'''


class ScaffoldError(ValueError):
    """A slug or an email the scaffold refuses, with a message for the developer."""


@dataclass
class Scaffold:
    slug: str
    camel: str
    display_name: str
    domains: tuple[str, ...]
    files: dict[Path, str] = field(default_factory=dict)  # path -> new content
    scrubbed: dict[str, int] = field(default_factory=dict)  # category -> values replaced
    golden: dict | None = None
    dry_run: bool = False

    def summary(self, root: Path = ROOT) -> str:
        verb = "would write" if self.dry_run else "wrote"
        lines = [f"{verb} {path.relative_to(root)}" for path in self.files]
        found = ", ".join(f"{n} {what}" for what, n in sorted(self.scrubbed.items()) if n) or "nothing"
        lines.append(f"scrubbed: {found}")
        if not self.domains:
            lines.append("no sender domain found: fill in `domains` (or a body `match`) by hand")
        if self.golden is not None:
            g = self.golden
            lines.append(f"golden: {g.get('status')} via {g.get('parser')}, total {g.get('total')} "
                         f"{g.get('currency')}, {len(g.get('items') or [])} item(s)")
        lines.append(f"next: flesh out parsers/merchants/{self.slug}.py, then READ and correct "
                     f"fixtures/emails/{self.slug}/{self.slug}_1.json")
        return "\n".join(lines)


def camel_case(slug: str) -> str:
    return "".join(part.capitalize() for part in slug.split("_"))


def check_slug(slug: str, root: Path = ROOT) -> None:
    if not SLUG.match(slug) or len(slug) > 40:
        raise ScaffoldError(f"bad slug {slug!r}: use the brand in lowercase snake_case, e.g. acme_outdoor")
    if keyword.iskeyword(slug):
        raise ScaffoldError(f"bad slug {slug!r}: a Python keyword cannot be a module name")
    if (root / "parsers" / "merchants" / f"{slug}.py").exists():
        raise ScaffoldError(f"merchant {slug!r} already exists: parsers/merchants/{slug}.py")
    registry = (root / "parsers" / "registry.py").read_text(encoding="utf-8")
    if re.search(rf"^from parsers\.merchants\.{slug} import", registry, re.MULTILINE):
        raise ScaffoldError(f"merchant {slug!r} is already registered in parsers/registry.py")
    if re.search(rf"\b{camel_case(slug)}Parser\b", registry):
        raise ScaffoldError(f"class {camel_case(slug)}Parser is already registered")
    folder = root / "fixtures" / "emails" / slug
    if folder.exists() and any(folder.iterdir()):
        raise ScaffoldError(f"fixtures/emails/{slug}/ already exists and is not empty")


def claimed_domain(domain: str, root: Path = ROOT) -> str | None:
    """The slug of the existing merchant file that lists this domain, if any."""
    for path in sorted((root / "parsers" / "merchants").glob("*.py")):
        if re.search(rf"""["']{re.escape(domain)}["']""", path.read_text(encoding="utf-8")):
            return path.stem
    return None


def add_to_registry(source: str, slug: str, class_name: str) -> str:
    """The registry text with one import and one MERCHANTS line inserted in slug order."""
    lines = source.split("\n")
    try:
        start, end = lines.index(IMPORTS_START), lines.index(IMPORTS_END)
    except ValueError:
        raise ScaffoldError(f"parsers/registry.py lacks the {IMPORTS_START!r} markers") from None
    slugs = {}
    position = end
    for index in range(start + 1, end):
        found = _IMPORT_LINE.match(lines[index])
        if not found:
            continue
        slugs[found.group(2)] = found.group(1)
        if found.group(1) > slug and position == end:
            position = index
    lines.insert(position, f"from parsers.merchants.{slug} import {class_name}")
    opening = next((i for i, line in enumerate(lines) if _MERCHANTS_OPEN.match(line)), None)
    if opening is None:
        raise ScaffoldError("parsers/registry.py has no `MERCHANTS = (` tuple")
    index = opening + 1
    while index < len(lines) and lines[index].strip() != ")":
        name = lines[index].strip().rstrip(",")
        if slugs.get(name, "") > slug:
            break
        index += 1
    if index >= len(lines):
        raise ScaffoldError("parsers/registry.py: the MERCHANTS tuple is not closed by a lone ')'")
    lines.insert(index, f"    {class_name},")
    result = "\n".join(lines)
    ast.parse(result)  # never write a registry that does not compile
    return result


def render_parser(slug: str, display_name: str, domains: tuple[str, ...]) -> str:
    quoted = "".join(f'"{d}", ' for d in domains).rstrip(" ")
    return TEMPLATE.format(slug=slug, camel=camel_case(slug), display_name=display_name.replace('"', "'"),
                           domains=quoted, domains_text=", ".join(domains) or "an unknown sender")


# --- scrubbing ----------------------------------------------------------------------------

_FIRST_NAMES = ("Robin", "Casey", "Morgan", "Jordan", "Avery", "Quinn", "Rowan", "Sasha")
_LAST_NAMES = ("Example", "Sampleton", "Placeholder", "Testwood", "Fixturely", "Mockford")
_STREETS = ("12 Sample Street", "48 Example Avenue", "7 Placeholder Road", "301 Fixture Lane")
_NOT_NAMES = frozenset((
    "customer", "client", "cliente", "kunde", "kundin", "sir", "madam", "valued", "member", "shopper",
    "friend", "there", "team", "all", "everyone", "guest", "user", "traveler", "traveller", "passenger",
    "herr", "frau", "mr", "mrs", "ms", "miss", "dr", "m", "mme", "mlle", "sr", "sra", "signor", "signora",
    "sig", "and", "from", "the", "your", "our", "thank", "thanks",
))
_TITLES = r"(?:(?:Mr|Mrs|Ms|Miss|Dr|Herr|Frau|M|Mme|Mlle|Sr|Sra|Sig|Signor|Signora)\.?\s+)?"
_NAME = r"([A-ZÀ-ÖØ-Þ][\w'’-]+(?:[ \t]+[A-ZÀ-ÖØ-Þ][\w'’-]+){0,2})"
# "Hello Jane," "Dear Mr Doe:" "Bonjour Jane !" "Hallo Jane," "Hola Jane," "Ciao Jane,"
GREETING = re.compile(
    r"(?:^|\n)[ \t]*(?:Hello|Hi|Hey|Dear|Greetings|Bonjour|Bonsoir|Cher|Chère|Hallo|Liebe|Lieber|Guten Tag|Hola|"
    r"Estimad[oa]|Querid[oa]|Ciao|Gentile|Car[oa]|Salve|Beste|Hoi|Olá)[ \t,]+" + _TITLES + _NAME + r"[ \t]*[,!:.]",
)
# Lines that open a postal address block ("Ship to", "Adresse de livraison", "Lieferadresse", ...)
ADDRESS_LABEL = re.compile(
    r"^(?:ship(?:ping)?(?: to| address)|deliver(?:y|ing)? (?:to|address)|deliver to|billing address|bill to|"
    r"sold to|shipping details|delivery details|your address|address|adresse(?: de (?:livraison|facturation))?|"
    r"livr[ée]e? à|lieferadresse|rechnungsadresse|lieferung an|versand an|direcci[óo]n(?: de (?:env[íi]o|entrega|"
    r"facturaci[óo]n))?|enviar a|indirizzo(?: di (?:spedizione|consegna|fatturazione))?|spedire a)\s*:?\s*(.*)$",
    re.IGNORECASE,
)
_STREET = re.compile(
    r"\b\d{1,5}[A-Za-z]?,?[ \t]+(?:[A-Z][\w'.-]*[ \t]+){1,4}(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|"
    r"Blvd|Way|Court|Ct|Place|Pl|Terrace|Close|Crescent|Parkway|Pkwy|Highway|Hwy|Square|Sq)\b\.?"
    r"(?:,?[ \t]*(?:Apt|Apartment|Suite|Ste|Unit|#)\.?[ \t]*\w+)?"
    r"|\b\d{1,4}(?:[ \t]?(?:bis|ter))?,?[ \t]+(?:rue|avenue|boulevard|bd|chemin|allée|impasse|place|quai|route)[ \t]+[^\n,|<]{3,40}"
    r"|\b[A-ZÄÖÜ][\wäöüß-]*(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm)[ \t]+\d{1,4}[ \t]?[a-z]?\b"
    r"|\b(?:Calle|C/|Avenida|Avda\.|Paseo|Plaza|Via|Viale|Piazza|Corso|Largo)[ \t]+[^\n,|<\d]{3,40},?[ \t]*\d{1,4}\b",
)
_CITY_LINE = re.compile(
    r"\b[A-Z][a-zA-Z .'-]{1,30},\s*[A-Z]{2}\s+\d{5}(?:-\d{4})?\b"  # Springfield, IL 62704
    r"|\b[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2}\b"  # UK postcode SW1A 1AA
)
_POSTCODE_CITY = re.compile(r"^\s*(?:[A-Z]{1,2}-)?\d{4,5}\s+[A-ZÀ-ÖØ-Þ][\w' -]+$")
_PHONE = re.compile(
    r"\b(?:phone|tel(?:ephone)?|mobile|cell|t[ée]l[ée]phone|t[ée]l\.?|telefon|handy|tel[ée]fono|cellulare)"
    r"(?:\s*(?:number|no\.?|nr\.?|n°))?\s*[:.]?\s*(\+?\d[\d \t().-]{6,}\d)"
    r"|(?<![\w.,/+-])(\+\d{1,3}[ \t.-]?\(?\d{1,4}\)?(?:[ \t.-]?\d{2,4}){2,4})(?![\w.,/-])"
    r"|(?<![\w.,/-])(\(\d{3}\)\s?\d{3}[ .-]\d{4}|\d{3}[ .-]\d{3}[ .-]\d{4})(?![\w.,/-])",
    re.IGNORECASE,
)
# "Visa ending in 1234", "**** 1234", "•••• 1234", "se terminant par 1234", "endet auf 1234"
CARD = re.compile(
    r"(?:ending|ends|terminant|termine|endet|endend|terminada|termina|terminante|eindigend)\s*(?:in|with|par|auf|"
    r"en|con|op|mit)?\s*:?\s*(?:[*•xX·.]+\s*)?(\d{4})\b"
    r"|(?:[*•xX·]{2,}[\s-]*){1,4}(\d{4})\b",
    re.IGNORECASE,
)
_NUMBER_LABEL = re.compile(
    r"(?:order|confirmation|booking|reservation|invoice|receipt|transaction|tracking|reference|customer|account)"
    r"\s*(?:number|no\.?|n°|nr\.?|id|#|code|reference|ref\.?)\s*[:#]?\s*#?\s*([A-Z0-9][A-Z0-9-]{3,})"
    r"|(?:bestellnummer|auftragsnummer|sendungsnummer|rechnungsnummer|kundennummer|num[ée]ro de (?:commande|suivi)|"
    r"n° de commande|n[úu]mero de (?:pedido|seguimiento)|numero (?:d'|dell')?ordine|bestelnummer|"
    r"commande|pedido|ordine|order)\s*[:#]?\s*(?:n[°º.]?\s*)?#?\s*([A-Z0-9][A-Z0-9-]{3,})"
    r"|\b(?:document|invoice|receipt|rechnung|facture|factura|fattura|tracking)\s*:\s*([A-Z0-9][A-Z0-9-]{3,})",
    re.IGNORECASE,
)


_NOT_ADDRESS = re.compile(
    r"(?i)\b(?:order|total|items?|qty|quantity|price|product|description|payment|subtotal|summary|shipping method|"
    r"delivery (?:date|method|option)|arriv|estimated|phone|tel|mobile|e-?mail|commande|produit|artikel|menge|preis|pedido|producto|ordine|"
    r"prodotto|thank|merci|danke|gracias|grazie)\b"
)


def _has_digit(value: str) -> bool:
    return any(c.isdigit() for c in value)


class Scrubber:
    """Collect the personal values of one message, then replace them everywhere, consistently."""

    def __init__(self, merchant_domain: str | None, seed: str) -> None:
        self.merchant_domain = merchant_domain
        self.random = random.Random(seed)
        self.mapping: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self._pattern: re.Pattern[str] | None = None
        self._emails = 0

    # --- collecting ---------------------------------------------------------------------
    def _add(self, category: str, value: str, replacement: str) -> None:
        value = value.strip()
        if not value or value in self.mapping or value == replacement:
            return
        self.mapping[value] = replacement
        self.counts[category] = self.counts.get(category, 0) + 1
        self._pattern = None

    def _reshape(self, value: str) -> str:
        """Same shape, invented characters: '112-3456789' -> '804-1175230'."""
        for _ in range(20):
            out = "".join(
                str(self.random.randint(0, 9)) if c.isdigit()
                else self.random.choice("ABCDEFGHJKLMNPRSTUVWXYZ") if c.isupper()
                else self.random.choice("abcdefghjkmnpqrstuvwxyz") if c.islower() else c
                for c in value)
            if out != value and out not in self.mapping.values():
                return out
        return value + "0"

    def is_merchant_address(self, address: str) -> bool:
        return bool(self.merchant_domain) and registrable_domain(address) == self.merchant_domain

    def add_email(self, address: str) -> None:
        address = address.strip().rstrip(".")
        if self.is_merchant_address(address) or address in self.mapping:
            return
        if address.lower() in self.mapping:
            self._add("email addresses", address, self.mapping[address.lower()])
            return
        self._emails += 1
        invented = f"customer{self._emails}@example.com"
        self._add("email addresses", address, invented)
        self.mapping.setdefault(address.lower(), invented)
        self.mapping.setdefault(quote(address, safe=""), quote(invented, safe=""))

    def add_name(self, name: str) -> None:
        name = re.sub(r"\s+", " ", name).strip(" \"'<>,")
        if not name or "@" in name or _has_digit(name):
            return
        tokens = [t for t in name.split(" ") if len(t) >= 2 and t.lower().strip(".") not in _NOT_NAMES]
        if not tokens:
            return
        merchant_words = {w.lower() for w in re.split(r"\W+", self.merchant_domain or "") if w}
        if any(t.lower() in merchant_words for t in tokens):
            return  # the brand's own name ("Acme Orders"), not a person
        invented = []
        for position, token in enumerate(tokens):
            if token in self.mapping:
                invented.append(self.mapping[token])
                continue
            pool = _FIRST_NAMES if (position == 0 and len(tokens) > 1) or len(tokens) == 1 else _LAST_NAMES
            used = set(self.mapping.values())
            choice = next((p for p in pool if p not in used and p != token), pool[0] + "a")
            self._add("names", token, choice)
            self.mapping.setdefault(token.upper(), choice.upper())
            invented.append(choice)
        if len(tokens) > 1:
            self._add("names", " ".join(tokens), " ".join(invented))

    def add_address_line(self, line: str) -> None:
        line = line.strip(" ,|")
        if len(line) < 4 or len(line) > 80 or line in self.mapping:
            return
        street = _STREETS[self.counts.get("postal addresses", 0) % len(_STREETS)]
        if not _STREET.search(line) and (_CITY_LINE.search(line) or _POSTCODE_CITY.match(line)):
            invented = "Sampletown, EX 00000" if re.search(r",\s*[A-Z]{2}\s+\d{5}", line) else "00000 Sampletown"
        else:
            invented = street if _has_digit(line) else "Example District"
        self._add("postal addresses", line, invented)

    def add_number(self, category: str, value: str) -> None:
        value = value.strip().rstrip(".-")
        if len(value) < 4 or not _has_digit(value) or value in self.mapping:
            return
        invented = self._reshape(value)
        self._add(category, value, invented)
        digits = re.sub(r"\D", "", value)
        if category == "phone numbers" and len(digits) >= 8 and digits != value:  # tel:+14155550199 links
            self._add(category, digits, re.sub(r"\D", "", invented))

    def collect_headers(self, message: EmailMessage) -> None:
        """Every address but the merchant's: the user's From when forwarding, To, Cc, ..."""
        for key in ("from", "to", "cc", "delivered-to", "x-original-to", "reply-to", "sender"):
            for name, address in getaddresses([str(v) for v in message.get_all(key, [])]):
                if address and not self.is_merchant_address(address):
                    self.add_email(address)
                    if name:
                        self.add_name(name)

    def collect_text(self, text: str) -> None:
        """Everything personal in one block of visible text (plain part or HTML text)."""
        text = normalize_lines(text)
        for address in EMAIL_ADDRESS.findall(text):
            self.add_email(address)
        # forwarded header blocks: "To: Jane Doe <jane@example.org>"
        for found in re.finditer(r"^(?:To|From|Cc|An|À|Von|De|Para|A|Da|Aan|Van)\s*:\s*\"?([^<\n\"]+?)\"?\s*[<\[]"
                                 r"(?:mailto:)?([^>\]\s]+)[>\]]", text, re.MULTILINE):
            if not self.is_merchant_address(found.group(2)):
                self.add_name(found.group(1))
        for found in GREETING.finditer(text):
            self.add_name(found.group(1))
        for found in _PHONE.finditer(text):
            self.add_number("phone numbers", next(g for g in found.groups() if g))
        for found in CARD.finditer(text):
            self.add_number("card digits", found.group(1) or found.group(2))
        for found in _NUMBER_LABEL.finditer(text):
            self.add_number("order numbers", next(g for g in found.groups() if g))
        lines = text.split("\n")
        for index, line in enumerate(lines):
            label = ADDRESS_LABEL.match(line)
            if label:
                rest = label.group(1).strip(" |")
                self._address_block(([rest] if rest else []) + lines[index + 1 : index + 7])
        for found in _STREET.finditer(text):
            self.add_address_line(found.group(0))
        for found in _CITY_LINE.finditer(text):
            self.add_address_line(found.group(0))

    def _address_block(self, lines: list[str]) -> None:
        """A name, then street, city and country lines, until something that is not an address."""
        for position, line in enumerate(lines[:6]):
            cells = [c.strip() for c in line.split(" | ") if c.strip()]
            line = cells[0] if cells else ""
            if (not line or len(line) > 60 or line.endswith(":") or re.search(r"[$€£¥@]|\d[.,]\d\d\b", line)
                    or ADDRESS_LABEL.match(line) or _NOT_ADDRESS.search(line)):
                break
            if line in self.mapping:
                continue
            if position == 0 and not _has_digit(line):
                if re.fullmatch(r"[A-ZÀ-Þ][\w'’.-]+(?: [A-ZÀ-Þ][\w'’.-]+){0,3}", line):
                    self.add_name(line)
            elif re.fullmatch(r"[A-Za-zÀ-ÿ .'-]{2,30}", line) and position > 1:
                continue  # a country or region on its own: not personal
            else:
                self.add_address_line(line)

    # --- replacing ----------------------------------------------------------------------
    def pattern(self) -> re.Pattern[str] | None:
        if self._pattern is None and self.mapping:
            parts = []
            for key in sorted(self.mapping, key=len, reverse=True):
                if re.fullmatch(r"[\d -]+", key):  # bare digits: never a piece of a price or a longer number
                    before, after = r"(?<![\w@.,+$£€-])", r"(?![\w@]|[.,]\d)"
                else:
                    before = r"(?<![\w@.+-])" if re.match(r"\w", key) else ""
                    after = r"(?![\w@])" if re.search(r"\w$", key) else ""
                parts.append(before + re.escape(key) + after)
            self._pattern = re.compile("|".join(parts))
        return self._pattern

    def replace(self, text: str) -> str:
        pattern = self.pattern()
        if pattern is None or not text:
            return text
        return pattern.sub(lambda m: self.mapping[m.group(0)], text)

    def scrub_html(self, html: str) -> str:
        soup = BeautifulSoup(html, "html.parser")
        for string in list(soup.find_all(string=True)):
            new = self.replace(str(string))
            if new != str(string):
                string.replace_with(type(string)(new))
        for tag in soup.find_all(True):
            for name, value in list(tag.attrs.items()):
                if isinstance(value, str):
                    tag[name] = self.replace(value)
                elif isinstance(value, list):
                    tag[name] = [self.replace(v) for v in value]
        return str(soup)


# --- the message --------------------------------------------------------------------------

_ATTACHED = ("message/rfc822", "message/global")


def _decode_attached(message: EmailMessage) -> None:
    """Gmail base64-encodes attached messages (RFC 2046 forbids it): hold them parsed instead."""
    for part in message.walk():
        if part.get_content_type() in _ATTACHED and not part.is_multipart():
            inner = email.message_from_bytes(part.get_payload(decode=True) or b"", policy=email.policy.default)
            del part["Content-Transfer-Encoding"]
            part.set_payload([inner])


def _leaves(message: EmailMessage) -> list[EmailMessage]:
    """Text parts to keep; drops attachments (and inline images) from their parents."""
    if message.get_content_type() in _ATTACHED:
        return [leaf for inner in message.get_payload() for leaf in _leaves(inner)]
    if not message.is_multipart():
        return [message] if message.get_content_type() in ("text/plain", "text/html") else []
    kept: list[EmailMessage] = []
    children = []
    for part in message.get_payload():
        if part.get_content_disposition() == "attachment" and part.get_content_type() not in _ATTACHED:
            continue
        if (part.is_multipart() and part.get_content_maintype() == "multipart") or part.get_content_type() in _ATTACHED:
            children.append(part)
            kept += _leaves(part)
        elif part.get_content_type() in ("text/plain", "text/html"):
            children.append(part)
            kept.append(part)
    message.set_payload(children)
    return kept


def _messages(message: EmailMessage) -> list[EmailMessage]:
    """The message and every message attached to it (forwards as attachments)."""
    found = [message]
    for part in message.walk():
        if part is not message and part.get_content_type() in _ATTACHED:
            found += [inner for inner in part.get_payload() if isinstance(inner, EmailMessage)]
    return found


def scrub_email(raw: bytes, *, merchant_domain: str | None, seed: str, extra_numbers: tuple[str, ...] = ()) -> tuple[bytes, dict[str, int]]:
    """The email with personal data replaced, attachments dropped, MIME valid."""
    scrubber = Scrubber(merchant_domain, seed)
    if not looks_like_headers(raw):
        body = read_bare_body(raw)  # decoded as the pipeline reads it (quoted-printable too)
        is_html = body.html is not None
        text = body.html or body.text
        scrubber.collect_text(html_text(text) if is_html else text)
        for number in extra_numbers:
            scrubber.add_number("order numbers", number)
        out = scrubber.scrub_html(text) if is_html else scrubber.replace(text)
        return out.encode("utf-8"), scrubber.counts

    message = email.message_from_bytes(raw.lstrip(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    _decode_attached(message)
    messages = _messages(message)
    leaves = _leaves(message)
    texts = {id(part): payload_text(part) for part in leaves}
    for inner in messages:
        scrubber.collect_headers(inner)
        scrubber.collect_text(str(inner.get("subject", "")))
    for part in leaves:
        text = texts[id(part)]
        scrubber.collect_text(html_text(text) if part.get_content_subtype() == "html" else text)
    for number in extra_numbers:
        scrubber.add_number("order numbers", number)

    for index, inner in enumerate(messages):
        for key in {k.lower() for k in inner}:
            if key.startswith("content-") or (key in _KEPT_HEADERS and key != "message-id"):
                continue
            if key == "message-id":
                inner.replace_header(key, f"<{seed}-{index + 1}@fixtures.purchaseshare.invalid>")
                continue
            del inner[key]
        for key in ("from", "to", "cc", "reply-to", "subject"):
            values = [str(v) for v in inner.get_all(key, [])]
            if len(values) == 1:
                inner.replace_header(key, scrubber.replace(values[0]))  # keeps the header's name and place
            elif values:
                del inner[key]
                for value in values:
                    inner[key] = scrubber.replace(value)
    for part in leaves:
        subtype = part.get_content_subtype()
        text = texts[id(part)]
        text = scrubber.scrub_html(text) if subtype == "html" else scrubber.replace(text)
        disposition = part.get_content_disposition()
        part.set_content(text, subtype=subtype, charset="utf-8", cte="quoted-printable",
                         disposition=disposition)
        if part is not message:
            del part["MIME-Version"]
    if "mime-version" not in message:
        message["MIME-Version"] = "1.0"
    return message.as_bytes(policy=email.policy.default.clone(linesep="\n")), scrubber.counts


# --- the command ----------------------------------------------------------------------------

def scaffold(slug: str, source: Path, *, display_name: str | None = None, dry_run: bool = False,
             root: Path = ROOT) -> Scaffold:
    """Write (or, with dry_run, only compute) the parser, registry lines, fixture and golden."""
    from parsers.unwrap import unwrap
    from purchaseshare.pipeline import run

    check_slug(slug, root)
    try:
        raw = Path(source).read_bytes()
    except OSError as exc:
        raise ScaffoldError(f"cannot read {source}: {exc.strerror or exc}") from None
    if not raw.strip():
        raise ScaffoldError(f"{source} is empty")
    mail = unwrap(raw)
    domain = mail.sender_domain
    if domain:
        owner = claimed_domain(domain, root)
        if owner:
            raise ScaffoldError(f"{domain} is already claimed by parsers/merchants/{owner}.py: "
                                f"extend that parser instead")
    domains = (domain,) if domain else ()
    name = (display_name or slug.replace("_", " ").title()).strip()
    result = Scaffold(slug=slug, camel=camel_case(slug), display_name=name, domains=domains, dry_run=dry_run)

    before = run(raw).to_json()
    numbers = tuple(n for n in (before.get("order_number"),) if n)
    scrubbed, result.scrubbed = scrub_email(raw, merchant_domain=domain, seed=slug, extra_numbers=numbers)
    registry_path = root / "parsers" / "registry.py"
    suffix = ".eml" if looks_like_headers(raw) else (".html" if b"<" in raw[:2000] else ".txt")
    fixture = root / "fixtures" / "emails" / slug / f"{slug}_1{suffix}"
    result.files = {
        root / "parsers" / "merchants" / f"{slug}.py": render_parser(slug, name, domains),
        registry_path: add_to_registry(registry_path.read_text(encoding="utf-8"), slug, f"{result.camel}Parser"),
        fixture: scrubbed.decode("utf-8", "surrogateescape"),
    }
    if dry_run:
        golden = run(scrubbed).to_json()
        golden.pop("source")
        result.golden = golden
        return result
    for path, content in result.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8", "surrogateescape"))
    result.golden = golden_in(root, fixture)
    golden_path = fixture.with_suffix(".json")
    golden_path.write_text(json.dumps(result.golden, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                           encoding="utf-8")
    result.files[golden_path] = golden_path.read_text(encoding="utf-8")
    return result


def golden_in(root: Path, fixture: Path) -> dict:
    """The pipeline's output for the fixture, run in a fresh interpreter that sees the new parser."""
    code = ("import json, sys; from purchaseshare.pipeline import run; "
            "d = run(open(sys.argv[1], 'rb').read()).to_json(); d.pop('source'); print(json.dumps(d))")
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", code, str(fixture)], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise ScaffoldError(f"the new parser does not import or run:\n{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- from a learned template ------------------------------------------------------------------

LEARNED_TEMPLATE = '''"""{display_name} - emails from {domains_text}.

Started from the layout owners taught PurchaseShare ({hits} emails read with it): the anchors
below say where each field sits (a digest of its label and which occurrence, or of a landmark and
an offset; the items' block by DOM path). Replace them with this merchant's own rules.
"""

from functools import cached_property

from parsers.base import FieldNotFound, MerchantParser
from parsers.model import Extraction
from parsers.templates import Template, read

ANCHORS = {anchors!r}
LAYOUT = Template.from_json("{domain}", "", ANCHORS)


class {camel}Parser(MerchantParser):
    slug = "{slug}"
    display_name = "{display_name}"
    domains = ({domains})

    @cached_property
    def _learned(self) -> Extraction:
        found = read(LAYOUT, self.mail, parser_name=f"merchant:{{self.slug}}")
        if found is None:
            raise FieldNotFound("the learned layout does not add up on this email")
        return found

    def _field(self, name: str):
        value = getattr(self._learned, name)
        if value is None:
            raise FieldNotFound(name)
        return value

    def total(self):
        return self._field("total")

    def subtotal(self):
        return self._field("subtotal")

    def shipping(self):
        return self._field("shipping")

    def tax(self):
        return self._field("tax")

    def items(self):
        return self._field("items") or []
'''


def scaffold_from_template(slug: str, domain: str, anchors: str, *, hits: int = 0, display_name: str | None = None,
                           dry_run: bool = False, root: Path = ROOT) -> Scaffold:
    """A merchant parser file (and its registry lines) that starts from a learned template's
    anchors; the developer adds a fixture and its expected JSON as for any merchant."""
    check_slug(slug, root)
    owner = claimed_domain(domain, root)
    if owner:
        raise ScaffoldError(f"{domain} is already claimed by parsers/merchants/{owner}.py: extend that parser instead")
    name = (display_name or slug.replace("_", " ").title()).strip().replace('"', "'")
    result = Scaffold(slug=slug, camel=camel_case(slug), display_name=name, domains=(domain,), dry_run=dry_run)
    source = LEARNED_TEMPLATE.format(slug=slug, camel=result.camel, display_name=name, domains=f'"{domain}",',
                                     domains_text=domain, domain=domain, anchors=anchors, hits=hits)
    ast.parse(source)  # never write a parser that does not compile
    registry_path = root / "parsers" / "registry.py"
    result.files = {
        root / "parsers" / "merchants" / f"{slug}.py": source,
        registry_path: add_to_registry(registry_path.read_text(encoding="utf-8"), slug, f"{result.camel}Parser"),
    }
    if not dry_run:
        for path, content in result.files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
    return result
