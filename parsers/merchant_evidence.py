"""Who sent an email that lost its sender (a bare .html body, a forward without "From:").

Structure, not shop names: the registrable domain most of the body's links point to (or,
with no links, its images), leaving out the hosts every email uses - mail and tracking
services, CDNs, social networks, payment providers, webmail - and a name for it from the
logo's alt text or the copyright line when that name agrees with the domain, else the
domain's own label ("shop-name.co.uk" -> "Shop-name").
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from functools import cache
from urllib.parse import urlsplit

from parsers.candidates import VOCAB_DIR
from parsers.message import Email
from parsers.normalize import _EXTRACT, clean_url, registrable_domain, territory_of_domain

# Hosts of mail infrastructure, not of the merchant (generic: no shop is listed here).
INFRASTRUCTURE = frozenset({
    # sending and tracking services
    "list-manage.com", "mailchimp.com", "mcusercontent.com", "mcsv.net", "sendgrid.net", "sendgrid.com",
    "mandrillapp.com", "mailgun.org", "mailgun.net", "sparkpostmail.com", "exacttarget.com", "exct.net",
    "rs6.net", "constantcontact.com", "klaviyo.com", "klaviyomail.com", "hubspot.com", "hubspotemail.net",
    "hs-sites.com", "hsforms.com", "marketo.com", "mktoweb.com", "mkto-lon.com", "braze.com", "customer.io",
    "iterable.com", "emarsys.net", "createsend.com", "createsend1.com", "cmail19.com", "cmail20.com",
    "campaign-archive.com", "mailjet.com", "sendinblue.com", "brevo.com", "awstrack.me", "doubleclick.net",
    "google-analytics.com", "googleadservices.com", "litmus.com", "returnpath.net", "eloqua.com",
    "en25.com", "responsys.net", "bluehornet.com", "salesforce.com", "sfmc-content.com", "pardot.com",
    "mailtrack.io", "sailthru.com", "cordial.io", "attentivemobile.com", "omnisend.com", "liveramp.com",
    # content delivery and storage
    "cloudfront.net", "akamaihd.net", "akamaized.net", "akamai.net", "cloudinary.com", "imgix.net",
    "fastly.net", "googleusercontent.com", "gstatic.com", "googleapis.com", "amazonaws.com", "azureedge.net",
    "jsdelivr.net", "unpkg.com", "wp.com", "gravatar.com", "typekit.net", "cloudflare.com", "imgur.com",
    # social networks and app stores' badges
    "facebook.com", "fb.com", "fb.me", "instagram.com", "twitter.com", "x.com", "t.co", "youtube.com",
    "youtu.be", "linkedin.com", "pinterest.com", "tiktok.com", "snapchat.com", "whatsapp.com", "reddit.com",
    "tumblr.com", "vk.com", "threads.net", "flickr.com", "vimeo.com", "discord.gg", "telegram.me",
    # webmail, link protection, standards
    "google.com", "office.com", "urldefense.com", "proofpoint.com", "mimecast.com", "w3.org", "schema.org", "example.com",
    "example.org", "example.net", "bit.ly", "goo.gl", "tinyurl.com", "ow.ly", "trustpilot.com",
})  # fmt: skip
# Payment providers: their receipts name the PAYEE, and the payee, not the processor, is the merchant.
PAYMENT_PROVIDERS = frozenset({
    "paypal.com", "paypalobjects.com", "paypal-communication.com", "stripe.com", "klarna.com", "affirm.com",
    "afterpay.com", "adyen.com", "braintreegateway.com", "paddle.com", "squareup.com", "square.com",
    "sumup.com", "zettle.com", "mollie.com", "wise.com", "venmo.com", "cash.app",
})  # fmt: skip
# Mailbox providers: an address there says nothing about the shop's own domain.
WEBMAIL = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "live.com", "hotmail.com", "hotmail.co.uk", "hotmail.fr",
    "hotmail.de", "hotmail.it", "hotmail.es", "msn.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de",
    "yahoo.it", "yahoo.es", "ymail.com", "aol.com", "icloud.com", "me.com", "mac.com", "gmx.de", "gmx.net",
    "gmx.com", "web.de", "btinternet.com", "sky.com", "virginmedia.com", "talktalk.net", "ntlworld.com",
    "orange.fr", "free.fr", "wanadoo.fr", "laposte.net", "libero.it", "t-online.de", "proton.me",
    "protonmail.com", "yandex.ru", "mail.ru", "qq.com", "163.com", "wp.pl", "o2.pl", "onet.pl", "live.co.uk",
})  # fmt: skip
INFRASTRUCTURE = INFRASTRUCTURE | PAYMENT_PROVIDERS | WEBMAIL
_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"')\]]+", re.IGNORECASE)
_COPYRIGHT = re.compile(
    r"(?:©|\(c\)|copyright)\s*(?:\d{4}\s*(?:[-–]\s*\d{4})?)?\s*,?\s*"
    r"(?P<holder>[^\W\d_][^\n|©]{1,60}?)\s*(?:[.,;]?\s*(?:all rights|alle rechte|tous droits|todos los derechos|"
    r"tutti i diritti)|\.?\s*$|\.\s)",
    re.IGNORECASE | re.MULTILINE,
)
_LEGAL_SUFFIX = re.compile(
    r"[,\s]+(?:inc|incorporated|ltd|limited|llc|l\.l\.c|plc|corp|corporation|co|gmbh|ag|s\.?a\.?s?|s\.?l\.?|"
    r"s\.?p\.?a|s\.?r\.?l|b\.?v|n\.?v|ab|as|a/s|oy|oü|sp\. z o\.o|pty|pte)\.?$",
    re.IGNORECASE,
)
_POWERED_BY = re.compile(r"\b(?:powered by|provided by|bereitgestellt von|propulsé par|fornito da)\s+([^\W\d_][\w.&' -]{1,30})",
                         re.IGNORECASE)
_HOST = re.compile(r"^(?:[a-z0-9-]+\.)+[a-z]{2,}$", re.IGNORECASE)
_LOGO_WORD = re.compile(r"\b(?:logo|logotipo|logotype)\b", re.IGNORECASE)
_MIN_REFERENCES = 2  # one link is a mention, not the sender
_LINKS_SCANNED = 400


def merchant_from_body(mail: Email) -> tuple[str | None, str | None]:
    """(name, registrable domain) for an email whose headers name no sender, or (None, None)."""
    links, images, alts = _references(mail)
    platforms = _POWERED_BY.findall("\n".join([mail.body_text[-6000:], *alts]))
    for counter in (links, images):  # a receipt platform's own links ("Powered by X") are not the shop's
        for domain in list(counter):
            if any(agrees(platform, domain_label(domain)) for platform in platforms):
                del counter[domain]
    domain = _majority(links) or _majority(images)
    holder = _copyright_holder(mail.body_text)
    if domain is None:
        return holder, None
    label = domain_label(domain)
    for candidate in (_logo_alt(mail, domain), holder):
        if candidate and agrees(candidate, label):
            return candidate, domain
    return label.capitalize(), domain


def _references(mail: Email) -> tuple[Counter[str], Counter[str], list[str]]:
    """Registrable domains of the body's links and of its images (infrastructure left out),
    and the images' alt texts ("Powered by X" is often a picture)."""
    links: Counter[str] = Counter()
    images: Counter[str] = Counter()
    alts: list[str] = []
    if mail.tree is not None:
        for count, element in enumerate(mail.tree.iter("a", "img")):
            if count >= _LINKS_SCANNED:
                break
            if element.tag == "a":
                _count(links, element.get("href"))
            else:
                _count(images, element.get("src"))
                alts.append(element.get("alt") or "")
    else:
        for count, match in enumerate(_URL_IN_TEXT.finditer(mail.plain_text)):
            if count >= _LINKS_SCANNED:
                break
            _count(links, match.group(0))
    return links, images, alts


def _count(counter: Counter[str], url: str | None) -> None:
    cleaned = clean_url(url.strip()) if url else None
    domain = registrable_domain(cleaned)
    if domain in INFRASTRUCTURE and cleaned:
        # a click tracker that carries its target's host in the path: ".../click/123/shop.example?p=..."
        hosts = (registrable_domain(part) for part in urlsplit(cleaned).path.split("/") if _HOST.match(part))
        domain = next((host for host in hosts if host and host not in INFRASTRUCTURE), None)
    if domain and domain not in INFRASTRUCTURE:
        counter[domain] += 1


def _majority(counter: Counter[str]) -> str | None:
    """The domain referenced most, when it is referenced twice or more and more than any other;
    between one brand's global and country sites ("brand.com", "brand.co.uk") the country's."""
    ranked = counter.most_common(2)
    if not ranked or ranked[0][1] < _MIN_REFERENCES:
        return None
    best = ranked[0][0]
    local = [domain for domain, count in counter.items() if count >= _MIN_REFERENCES and domain != best
             and domain_label(domain) == domain_label(best) and territory_of_domain(domain)]
    if local and not territory_of_domain(best):
        return max(local, key=lambda domain: counter[domain])
    if len(ranked) == 2 and ranked[1][1] == ranked[0][1]:
        return None  # a tie: no sender stands out
    return best


def domain_label(domain: str) -> str:
    """'shop-name.co.uk' -> 'shop-name'."""
    return _EXTRACT(domain).domain or domain.split(".")[0]


def _key(text: str) -> str:
    return re.sub(r"[\W_]", "", text.casefold())


def agrees(name: str, label: str) -> bool:
    """A name fits a domain when one holds the other ('Steam' / 'steampowered', 'eBay' / 'ebay')."""
    name_key, label_key = _key(name), _key(label)
    return len(name_key) >= 2 and (name_key in label_key or label_key in name_key)


def _logo_alt(mail: Email, domain: str) -> str | None:
    """The alt text of the first image that links to the domain or calls itself a logo, or
    of one of the first images when it is short and names the domain ("STEAM")."""
    if mail.tree is None:
        return None
    label = domain_label(domain)
    for count, image in enumerate(mail.tree.iter("img")):
        if count >= 40:  # the logo is at the top
            break
        alt = " ".join((image.get("alt") or "").split())
        if not alt or len(alt) > 40:
            continue
        link = next((parent for parent in image.iterancestors("a")), None)
        href_domain = registrable_domain(clean_url(link.get("href"))) if link is not None else None
        is_logo = _LOGO_WORD.search(f"{alt} {image.get('src') or ''} {image.get('class') or ''}")
        name = _LOGO_WORD.sub("", alt).strip(" -–|:")
        top_and_named = count < 3 and len(name.split()) <= 3 and agrees(name, label)
        if name and (href_domain == domain or is_logo or top_and_named):
            return name
    return None


def _copyright_holder(text: str) -> str | None:
    """'© 2021 Example Ltd. All rights reserved.' -> 'Example'."""
    found = _COPYRIGHT.search(text[-6000:])  # the copyright line sits in the footer
    if found is None:
        return None
    holder = found.group("holder").strip(" ,.")
    for _ in range(2):  # "Example Holdings, Inc."
        holder = _LEGAL_SUFFIX.sub("", holder).strip(" ,.")
    return holder or None


def is_payment_provider(name: str | None, domain: str | None) -> bool:
    """The merchant found so far is a payment provider (by its domain, or by a name that
    agrees with one when the email lost its sender's domain)."""
    if domain:
        return domain in PAYMENT_PROVIDERS
    key = _key(_LEGAL_SUFFIX.sub("", name or ""))  # "PayPal", never "Square Pizza" or "Cash Converters"
    return bool(key) and any(key == _key(domain_label(provider)) for provider in PAYMENT_PROVIDERS)


@cache
def _payee_labels() -> frozenset[str]:
    """Every language's payee labels ("Seller", "Payment to", "Händler"), casefolded."""
    labels: set[str] = set()
    for path in VOCAB_DIR.glob("??.toml"):
        labels.update(phrase.casefold() for phrase in tomllib.loads(path.read_text(encoding="utf-8")).get("payee", ()))
    return frozenset(labels)


_CONTACT = re.compile(r"^(?:[\w.+-]+@(?P<mail>[\w-]+(?:\.[\w-]+)+)|(?:https?://|www\.)(?P<site>[\w-]+(?:\.[\w-]+)+)\S*)$",
                      re.IGNORECASE)
# "... to Example Shop Ltd (help@example.com)": a name with its contact address in brackets
_NAME_AND_CONTACT = re.compile(r"\bto\s+(?P<name>[^\W\d_][^\n()]{1,60}?)\s*\(\s*(?P<contact>[\w.+-]+@[\w.-]+\.\w+)\s*\)")
_SITE_NAME = re.compile(r"[\w-]+(?:\.[\w-]+)+")  # a shop named after its site: "example.co.uk"
_PAYEE_LINES = 400


def payee(mail: Email) -> tuple[str, str | None] | None:
    """(name, registrable domain or None) of the payee a payment provider's receipt names: a
    payee label alone on its line ("Seller", "Payment to:"), the name on the next line and
    the payee's contact (email or web address) right under it, or "to NAME (contact)"."""
    lines = [line.strip() for line in mail.body_text.splitlines()[:_PAYEE_LINES]]
    labels = _payee_labels()
    for index, line in enumerate(lines[:-2]):
        if line.rstrip(": ").casefold() not in labels:
            continue
        name, contact = lines[index + 1], _CONTACT.match(lines[index + 2])
        if contact and name and len(name) <= 80 and name.rstrip(": ").casefold() not in labels:
            return name, _payee_domain(name, contact.group("mail") or contact.group("site"))
    inline = _NAME_AND_CONTACT.search("\n".join(lines))
    if inline:
        return inline.group("name").strip(), _payee_domain(inline.group("name"), inline.group("contact").split("@")[1])
    return None


def _payee_domain(name: str, host: str) -> str | None:
    """The payee's domain from its contact address, unless that is a mailbox provider's (then
    the name's, when the shop is named after its site)."""
    domain = registrable_domain(host)
    if domain and domain not in WEBMAIL and domain not in PAYMENT_PROVIDERS:
        return domain
    return registrable_domain(name) if _SITE_NAME.fullmatch(name.strip()) else None
