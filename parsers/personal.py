"""The email's OWN personal values: the recipient's name and addresses, the delivery and billing
address lines, phone numbers, the card's last digits and order numbers, as this email states them.

They are kept privately with the purchase and passed to the public redaction as secrets, so an item
name or a link that repeats them (in any spelling the redaction folds) is never published. Structure
and language vocabularies only, no shop names. Every pattern is linear (bounded runs, no nested
quantifiers) and runs over at most `MAX_LINES` lines of at most `MAX_LINE` characters.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # parsers.message imports normalize, which imports this module
    from parsers.message import Email

MAX_LINES = 4000
MAX_LINE = 300
MAX_TERMS = 60
BLOCK_LINES = 6  # lines read under an address label

# "Delivery address", "Ship to:", "Adresse de livraison", "Lieferadresse", ... (en/fr/de/es/it/nl).
ADDRESS_LABEL = re.compile(
    r"^(?:(?:your )?(?:shipping|delivery|billing|invoice|mailing|postal|home) (?:address|details|to)"
    r"|ship(?:ped|ping)? to|deliver(?:ed|ing)? to|sent to|bill(?:ed)? to|recipient|address"
    r"|adresse (?:de |d')(?:livraison|facturation|exp[ée]dition)|livr[ée]e? [àa]|factur[ée]e? [àa]"
    r"|(?:liefer|rechnungs|versand)(?:adresse|anschrift)|lieferung an|versand an|empf[äa]nger"
    r"|direcci[óo]n de (?:env[íi]o|entrega|facturaci[óo]n)|enviar a|enviado a|destinatario"
    r"|indirizzo di (?:spedizione|consegna|fatturazione)|spedi(?:re|to) a|consegna a"
    r"|(?:aflever|bezorg|factuur)adres|verzonden naar)\s*(?:[:|]\s*(.*))?$",
    re.IGNORECASE)
# Street words by language, for an address line read by structure: "742 Evergreen Terrace",
# "12 rue de la Paix", "Hauptstraße 5", "Calle Mayor 5", "Via Roma 12".
STREET_WORD_LIST = (
    "street", "st", "road", "rd", "avenue", "ave", "av", "lane", "ln", "drive", "dr", "terrace", "ter", "way",
    "court", "ct", "place", "pl", "boulevard", "blvd", "close", "crescent", "cres", "square", "sq", "highway",
    "hwy", "parkway", "pkwy", "row", "mews", "grove", "gardens", "walk", "circle", "cir", "trail", "trl",
    "rue", "bd", "chemin", "all\u00e9e", "allee", "impasse", "quai", "route", "cours",
    "stra\u00dfe", "strasse", "str", "weg", "gasse", "platz", "ring", "damm", "ufer",
    "calle", "c/", "avenida", "avda", "plaza", "paseo", "camino", "carretera", "ronda",
    "via", "viale", "piazza", "corso", "vicolo", "largo",
    "straat", "laan", "plein", "gracht", "kade")
STREET_WORDS = "|".join(re.escape(word) for word in STREET_WORD_LIST)
_NAME_WORD = r"[^\W\d_][\w'’.-]{0,30}+"
STREET = re.compile(
    rf"\b\d{{1,5}}[a-z]?,? (?:{_NAME_WORD} ){{1,4}}?(?:{STREET_WORDS})\b\.?"  # 742 Evergreen Terrace
    rf"|\b(?:{STREET_WORDS}) (?:{_NAME_WORD} ){{0,4}}?{_NAME_WORD},? \d{{1,5}}[a-z]?\b"  # rue de la Paix 12
    rf"|\b\d{{1,5}}(?:bis|ter)?,? (?:rue|avenue|boulevard|bd|chemin|all[ée]e|impasse|quai|place|route|cours|"
    rf"calle|avenida|plaza|paseo|via|viale|piazza|corso) (?:{_NAME_WORD} ){{0,3}}?{_NAME_WORD}\b"  # 12 rue de la Paix
    r"|\b[^\W\d_]{2,30}(?:stra(?:ß|ss)e|str\.|weg|gasse|platz|allee|straat|laan) \d{1,5}[a-z]?\b",  # Hauptstraße 5
    re.IGNORECASE)
# STREET is the costliest pattern here (alternations tried at every word): a line gets it only when
# one of its words is a street word or ends like a German/Dutch street name. Every match of STREET
# holds such a word, so the filter never changes a result, only skips lines that cannot match.
_STREET_WORD_SET = frozenset(STREET_WORD_LIST)
# The endings of the last STREET alternative ("Hauptstraße 5"), as plain text.
_STREET_SUFFIXES = ("straße", "strasse", "str", "weg", "gasse", "platz", "allee", "straat", "laan")
_LETTER_RUN = re.compile(r"[^\W\d_]+")


def street_in(text: str) -> re.Match[str] | None:
    """STREET.search(text), skipping the search where no word could start a street."""
    lowered = text.lower()
    if "c/" in lowered or any(word in _STREET_WORD_SET or word.endswith(_STREET_SUFFIXES)
                              for word in _LETTER_RUN.findall(lowered)):
        return STREET.search(text)
    return None


# Postcodes: US ZIP(+4) after a state, UK, Canada, NL, and 4-5 digits before a town (most of Europe).
POSTCODE = re.compile(
    r"\b[A-Z]{2},? \d{5}(?:-\d{4})?\b"
    r"|\b[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}\b"
    r"|\b[A-Z]\d[A-Z] ?\d[A-Z]\d\b"
    r"|\b\d{4} ?[A-Z]{2}\b"
    r"|\b(?:[A-Z]{1,2}-)?\d{4,5} [^\W\d_]{2,}")
PHONE = re.compile(
    r"\b(?:phone|tel(?:ephone)?|mobile|cell|contact number|t[ée]l[ée]phone|portable|telefon|handy|"
    r"tel[ée]fono|m[óo]vil|cellulare|telefoon)\b\.?(?: ?(?:number|no\.?|nr\.?|n°))?\s*[:|]?\s*"
    r"(\+?[\d\s()./-]{6,24}+)", re.IGNORECASE)
CARD_END = re.compile(
    r"(?:ending (?:in|with)|ends (?:in|with)|endet mit|endend auf|finissant par|se terminant par|"
    r"terminant par|terminada en|que termina en|terminante (?:in|con)|che termina con|eindigend op|"
    r"(?<![*xX•·])[*xX•·]{2,}+[ -]?)\s*:?\s*(\d{4})\b", re.IGNORECASE)
CARD_NUMBER = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
GREETING = re.compile(
    r"^(?i:hi|hello|hey|dear|thank you|thanks|bonjour|cher|ch[èe]re|hallo|liebe|lieber|"
    r"sehr geehrte(?:r)? (?:herr|frau)|hola|estimad[oa]|querid[oa]|ciao|gentile|car[oa]|beste|hoi)"
    r"(?i: for your (?:order|purchase))?,? ((?:[A-Z][\w'’-]{1,30}+ ){1,3}[A-Z][\w'’-]{1,30}+)\s*[,!:.]",
    re.UNICODE)
ORDER_LABEL = re.compile(
    r"(?:order|confirmation|booking|reservation|invoice|receipt)\s*(?:number|no\.?|n°|nr\.?|id|#|code|reference)"
    r"[\s:#|]*([A-Z0-9][A-Z0-9/-]{3,40}+)|"
    r"(?:bestellnummer|auftragsnummer|num[ée]ro de commande|n° de commande|n[úu]mero de pedido|"
    r"numero (?:d'|dell')?ordine|bestelnummer)[\s:#|]*([A-Z0-9][A-Z0-9/-]{3,40}+)", re.IGNORECASE)
_DIGIT = re.compile(r"\d")
# Words of a greeting or a label that are no one's name ("Dear Valued Customer").
_NOT_NAMES = frozenset({"customer", "customers", "team", "service", "services", "member", "members", "valued",
                        "client", "clients", "friend", "friends", "shopper", "sir", "madam", "kunde", "kundin",
                        "cliente", "clienta", "klant", "gentile"})
# Column headings next to an address ("Address | Phone"): not values, and hiding them would hide
# ordinary words ("Phone case").
_FIELD_WORDS = frozenset({"phone", "telephone", "tel", "mobile", "email", "e-mail", "name", "address", "country",
                          "city", "state", "zip", "postcode", "company", "contact"})
_ORDER_HINTS = ("order", "confirmation", "booking", "reservation", "invoice", "receipt", "bestell", "auftrag",
                "commande", "pedido", "ordine", "bestel")
_CARD_HINTS = ("end", "termin", "finiss", "eindig", "**", "xx", "••", "··")
# The hints as one search each (a generator of `in` tests per line cost more than the rest of a line).
_ORDER_HINT = re.compile("|".join(map(re.escape, _ORDER_HINTS)))
_CARD_HINT = re.compile("|".join(map(re.escape, _CARD_HINTS)))
_MONEY = re.compile(r"[£€$¥₹]|\d[.,]\d{2}\b|^\d{1,3}$")  # a price or quantity cell, not an address part
# A line that ends an address block: a label, a money amount, a long sentence.
_BLOCK_END = re.compile(r"^\S.{0,40}:$|[£€$¥₹]\s?\d|\d[.,]\d{2}\b|^(?:order|total|item|payment|qty)", re.IGNORECASE)


def looks_like_address(text: str) -> bool:
    """An item "name" that is a delivery address ("Gift wrap and card to Alice Liddell, 742
    Evergreen Terrace, Springfield OR 97403"): a street address together with a postcode, a
    comma-separated address or an address label. A street alone ("3 Pack Drive Belt") is not."""
    text = text[:MAX_LINE]
    street = street_in(text)
    if street is None:
        return ADDRESS_LABEL.match(text) is not None and bool(POSTCODE.search(text))
    after = text[street.end():]
    return bool(POSTCODE.search(after) or after.lstrip().startswith(",")
                or re.search(r"\b(?:to|for|an|à|a|para|per)\s+[A-Z]", text[:street.start()]))


def personal_terms(mail: Email, order_number: str | None = None) -> list[str]:
    """This email's own personal values, in the order found, without repeats."""
    terms: list[str] = []
    headers = [mail.original, mail.envelope] if mail.forwarded else [mail.original]
    for head in headers:
        for name in head.to_names:
            _add_name(terms, name)
        terms += head.to
    if order_number:
        terms.append(order_number)
    lines = [line[:MAX_LINE] for line in mail.body_text.split("\n")[:MAX_LINES]]
    subject = (mail.original.subject or "")[:MAX_LINE]
    for found in ORDER_LABEL.finditer(subject):
        terms.append(found.group(1) or found.group(2))
    for index, line in enumerate(lines):
        _read_line(terms, lines, index, line)
    unique = list(dict.fromkeys(term.strip(" ,.;|") for term in terms if term and len(term.strip()) >= 4))
    return unique[:MAX_TERMS]


def _read_line(terms: list[str], lines: list[str], index: int, line: str) -> None:
    # Cheap tests first: most lines of an email hold none of these (parsing time matters).
    lowered = line.lower()
    digits = _DIGIT.search(line) is not None
    if line[:1].isalpha():
        greeting = GREETING.match(line)
        if greeting:
            _add_name(terms, greeting.group(1))
    if _ORDER_HINT.search(lowered):  # with the next line: "Order number:" above its value
        following = lines[index + 1] if index + 1 < len(lines) else ""
        terms += [found.group(1) or found.group(2) for found in ORDER_LABEL.finditer(f"{line}\n{following}")]
    if digits:
        for found in PHONE.finditer(line):
            if sum(char.isdigit() for char in found.group(1)) >= 6:
                terms.append(found.group(1).strip())
        if _CARD_HINT.search(lowered):
            terms += [found.group(1) for found in CARD_END.finditer(line)]
        terms += [found.group(0) for found in CARD_NUMBER.finditer(line)]
    label = ADDRESS_LABEL.match(line) if len(line) <= 120 else None
    if label:
        rest = (label.group(1) or "").strip(" |")
        block = [rest] if rest else []
        for following in lines[index + 1:index + 1 + BLOCK_LINES]:
            if _BLOCK_END.search(following) or ADDRESS_LABEL.match(following) or len(following) > 80:
                break
            block.append(following)
        if block:
            _add_name(terms, block[0].split(",")[0].split(" | ")[0])
        for address_line in block:
            _add_address(terms, address_line)
    elif digits and len(line) <= 120 and street_in(line):
        _add_address(terms, line)
        if index + 1 < len(lines) and len(lines[index + 1]) <= 60 and POSTCODE.search(lines[index + 1]):
            _add_address(terms, lines[index + 1])


def _add_address(terms: list[str], line: str) -> None:
    """An address line, each of its comma/cell parts, its street without the number and its postcode."""
    parts = [part.strip() for part in re.split(r",| \| ", line)
             if part.strip() and not _MONEY.search(part) and part.strip(" :").lower() not in _FIELD_WORDS]
    terms.append(", ".join(parts))
    terms += parts
    for part in parts:
        street = street_in(part)
        if street:
            terms.append(street.group(0))
            terms.append(re.sub(r"^\d{1,5}[a-z]?,? |,? \d{1,5}[a-z]?$", "", street.group(0)))
        postcode = POSTCODE.search(part)
        if postcode:  # "OR 97403": the whole and its digits
            terms.append(postcode.group(0))
            terms += re.findall(r"\d{4,5}+", postcode.group(0))


def _add_name(terms: list[str], name: str | None) -> None:
    """A person's name (two to four words, no digits, no "@"): the whole name and the surname."""
    if not name:
        return
    words = name.replace('"', " ").split()
    if (not 2 <= len(words) <= 4 or any(char.isdigit() or char == "@" for char in name)
            or not all(word[0].isupper() for word in words) or _NOT_NAMES.intersection(map(str.lower, words))):
        return
    terms.append(" ".join(words))
    if len(words[-1]) >= 4:
        terms.append(words[-1])
