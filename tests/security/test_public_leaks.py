"""Issue 11, points 3, 4, 14 and 19 (text): personal data must not reach a public surface however it
is spelled, and public text must not carry control or bidi-control characters.

1. A table of obfuscations an attacker (or a sloppy receipt) produced, each redacted and checked in
   FOLDED form (case, compatibility forms, separators and invisible characters taken away), and
   hypothesis-generated obfuscations of planted card numbers, phones, emails and order numbers.
2. Links: every link form that leaked is dropped or cleaned, checked percent-DECODED.
3. End to end: a crafted email with personal data planted in item names, links and address lines goes
   through the real processing for a user, every item is approved, and every public surface of a
   REAL server (profile, purchase page with its JSON-LD, Atom, API, a follower's feed and live event)
   is grepped for each planted value raw, percent-decoded, entity-decoded and folded. The Atom feed
   must parse as XML although control characters were planted.
"""

from __future__ import annotations

import html as htmlmod
import io
import json
import re
import time
import xml.etree.ElementTree as ET
import zipfile
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlmodel import select

from parsers.personal import looks_like_address
from purchaseshare import pipeline
from purchaseshare.account import delete_purchase, export_chunks
from purchaseshare.clock import utcnow
from purchaseshare.db import session_scope
from purchaseshare.models import Purchase, PurchaseItem, User
from purchaseshare.redact import PRODUCT_QUERY_KEYS, fold, public_url, redact
from tests.security.conftest import post_form
from tests.web.conftest import receive

CARD = "4111111111111111"
PHONE = "5415550199"
EMAIL = "alice.liddell@mail.test"
ORDER = "ORD-CANARY-77001"
INVOICE = "2026/004571"
NAME = "Alice Liddell"
STREET = "742 Evergreen Terrace"
TOWN = "Springfield OR 97403"
SECRETS = (ORDER, INVOICE, NAME, "Liddell", STREET, TOWN, "97403", PHONE, EMAIL, "4242")
PATH_TOKEN = "SECRETPATHTOKEN77"
QUERY_TOKEN = "SECRETQUERYTOKEN99"
UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def survives(planted: str, text: str | None) -> bool:
    """Whether `planted` can still be read in `text`: raw, percent-decoded, or folded."""
    text = text or ""
    views = [text, unquote(unquote(text))]
    return any(planted.lower() in view.lower() for view in views) or any(fold(planted) in fold(view) for view in views)


# --- 1. the obfuscation table -------------------------------------------------------------------

# (text, the planted value that must not survive, whether the email's own values are known)
OBFUSCATIONS = [
    ("Voucher_4111111111111111", CARD, False),
    ("4111 / 1111 / 1111 / 1111", CARD, False),
    ("4111-1111.1111_1111", CARD, False),
    ("4111\u200b1111\u200c1111\u2060111\ufeff1", CARD, False),  # zero-width characters
    ("４１１１ １１１１ １１１１ １１１１", CARD, False),  # fullwidth digits
    ("\u0664\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661", CARD, False),
    ("4111\xa01111\xa01111\xa01111", CARD, False),  # NBSP
    ("4111\u20131111\u20141111\u22121111", CARD, False),  # en dash, em dash, minus
    ("4111 \u2011 1111 / 1111 . 1111", CARD, False),  # mixed separators
    ("card 4111111111111111x", CARD, False),
    ("541/555/0199", PHONE, False),
    ("5415550199x", PHONE, False),
    ("(541) 555-0199", PHONE, False),
    ("+1 541.555.0199", PHONE, False),
    ("tel\u00a0541\u2011555\u20110199", PHONE, False),
    ("O R D-CANARY-77001", ORDER, True),
    ("ORD\u2011CANARY\u201177001", ORDER, True),  # U+2011 non-breaking hyphen
    ("ord_canary_77001", ORDER, True),
    ("ＯＲＤ－ＣＡＮＡＲＹ－７７００１", ORDER, True),
    ("O\u200bRD-CAN\u200dARY-77\u2060001", ORDER, True),
    ("see 2026%2F004571", INVOICE, True),
    ("invoice 2026\u2215004571", INVOICE, True),
    ("Gift wrap and card to Alice Liddell, 742 Evergreen Terrace, Springfield OR 97403", NAME, True),
    ("Gift wrap and card to Alice Liddell, 742 Evergreen Terrace, Springfield OR 97403", STREET, True),
    ("Gift wrap and card to Alice Liddell, 742 Evergreen Terrace, Springfield OR 97403", "97403", True),
    ("for ALICE  LIDDELL", NAME, True),
    ("for A\u200blice Lid\u00addell", NAME, True),  # soft hyphen, zero-width space
    ("Mrs Liddéll's mug", "Liddell", True),
    ("742 evergreen\u00a0terrace", STREET, True),
    ("mail alice.liddell@mail.test", EMAIL, False),
    ("mail alice.liddell%40mail.test", EMAIL, False),
    ("mail ａｌｉｃｅ.ｌｉｄｄｅｌｌ＠ｍａｉｌ.ｔｅｓｔ", EMAIL, False),
    ("mail alice.lid\u200bdell@mail.test", EMAIL, False),
    ("mail alice.liddell [at] mail [dot] test", EMAIL, False),
    ("mail alice.liddell @ mail.test", EMAIL, False),
    ("mail alice.liddell@mail .test", EMAIL, False),
    ("ALICE.LIDDELL@MAIL.TEST", EMAIL, False),
    ("Visa ending in 4242", "4242", False),
    ("card ****4242", "4242", False),
    ("paid with ＊＊＊＊ ４２４２", "4242", False),
]


@pytest.mark.parametrize("text, planted, own_values", OBFUSCATIONS)
def test_obfuscated_personal_values_are_hidden(text: str, planted: str, own_values: bool) -> None:
    secrets = SECRETS if own_values else ()
    out = redact(text, secrets)
    if planted.isdigit() and len(planted) == 4:  # last four digits: as a number of their own
        assert not re.search(rf"(?<!\d){planted}(?!\d)", fold(out)), (text, out)
    else:
        assert not survives(planted, out), (text, out)
    assert "[hidden]" in out


def test_the_generic_patterns_alone_leave_the_own_values_readable() -> None:
    """Without the email's own values the name and address pass (why they are stored): the table's
    `own_values` rows really test the secrets."""
    line = "Gift wrap and card to Alice Liddell, 742 Evergreen Terrace, Springfield OR 97403"
    assert redact(line) == line
    assert redact("O R D-CANARY-77001") == "O R D-CANARY-77001"


@pytest.mark.parametrize("text", ["Trail Mug", "XXL 12 pack", "2 x 12 mugs", "Box 1234", "Brownie tin",
                                  "Alice in Wonderland", "Liddellson lamp", "Size 10"])
def test_ordinary_text_is_kept(text: str) -> None:
    assert redact(text, SECRETS) == text


@pytest.mark.parametrize("text", ["Zelda\u202eadleZ", "bio\x07\x1b[31m", "a\u2066b\u2069c", "x\u200fy\u061c",
                                  "tab\x0bnull\x00", "nel\x85c1\x9b", "\ufffebad\uffff"])
def test_control_and_bidi_characters_never_reach_public_text(text: str) -> None:
    out = redact(text)
    assert not UNSAFE.search(out) and "\ufffe" not in out and "\uffff" not in out, repr(out)
    assert out.replace(" ", "")  # the visible letters stay


SEPARATORS = [" ", "\xa0", "/", " / ", ".", "-", "_", "\u2010", "\u2011", "\u2013", "\u2014", "\u2212", "\u200b",
              "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u202f", "\u3000", "", "", ""]
DIGIT_FORMS = [lambda d: d, lambda d: chr(0xFF10 + int(d)), lambda d: chr(0x0660 + int(d)),
               lambda d: chr(0x1D7CE + int(d)), lambda d: chr(0x0966 + int(d))]


@st.composite
def obfuscated(draw, value: str, separators: bool = True) -> str:
    """`value` with each digit in some Unicode form, letters in either case or fullwidth, and
    separators or invisible characters between characters."""
    out = []
    for char in value:
        if char.isdigit():
            out.append(draw(st.sampled_from(DIGIT_FORMS))(char))
        elif char.isalpha():
            form = draw(st.integers(0, 2))
            out.append(char.upper() if form == 0 else char.lower() if form == 1 else chr(ord(char.upper()) + 0xFEE0))
        elif char == "@":
            out.append(draw(st.sampled_from(["@", "＠", "%40", " [at] ", "(at)"])))
        else:
            out.append(draw(st.sampled_from([char, chr(ord(char) + 0xFEE0)])) if char in "-./" else char)
        if separators:
            out.append(draw(st.sampled_from(SEPARATORS)))
        else:
            out.append(draw(st.sampled_from(["", "", "\u200b", "\u2060", "\ufeff"])))
    return "".join(out)


AROUND = st.text(alphabet="abcxyz XYZ_:#()", max_size=8)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_generated_obfuscations_never_survive(data) -> None:
    planted, own, separators = data.draw(st.sampled_from([
        (CARD, False, True), ("5555444433331111", False, True), (PHONE, False, True), ("4477009004610", False, True),
        (ORDER, True, True), (INVOICE, True, True), (EMAIL, False, False)]))
    text = data.draw(AROUND) + data.draw(obfuscated(planted, separators)) + data.draw(AROUND)
    out = redact(text, SECRETS if own else ())
    assert not survives(planted, out), (text, out)


# --- 2. links -----------------------------------------------------------------------------------

DROPPED = [
    f"https://shop.canary.test/trail-mug?id={EMAIL}&token={QUERY_TOKEN}",
    "https://shop.canary.test/trail-mug?id=alice.liddell%40mail.test",
    "https://shop.canary.test/trail-mug?id=alice.liddell%2540mail.test",  # encoded twice
    f"https://shop.canary.test/track/{PATH_TOKEN}/alice.liddell%40mail.test/ref",
    f"https://shop.canary.test/p/{PATH_TOKEN}",  # a token alone in a path segment
    "https://shop.canary.test/p/mug/5f1d2c9a8b7e6d5c4b3a2f1e0d9c8b7a",
    "https://shop.canary.test/p/mug?id=3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b",
    "https://shop.canary.test/orders/2026%2F004571",
    "https://shop.canary.test/p/2026-004571",
    "https://shop.canary.test/p/mug/2026%252F004571",
    "https://shop.canary.test/p/alice-liddell-mug",
    "https://shop.canary.test/p/mug-for-ALICE_LIDDELL",
    "https://alice-liddell.canary.test/p/mug",
    "https://shop.canary.test/p/mug?sku=4111111111111111",
    "https://shop.canary.test/p/mug?sku=4111%201111%201111%201111",
    "https://shop.canary.test/p/ORD%E2%80%91CANARY%E2%80%9177001",
    "https://shop.canary.test/p/5415550199-mug",
    "https://shop.canary.test/account/orders/view",
    "https://user:pass@shop.canary.test/p/mug",
    "javascript:alert(1)//https://shop.canary.test",
    "data:text/html,hi",
    "ftp://shop.canary.test/p/mug",
    "https://shop.canary.test/p/mug?id=a%0Ab",
]
CLEANED = [
    ("https://shop.canary.test/p/trail-mug?id=4471&utm_source=mail&token=x", "https://shop.canary.test/p/trail-mug?id=4471"),
    (f"https://shop.canary.test/p/wool-socks?sku=WS-12&email={EMAIL}", "https://shop.canary.test/p/wool-socks?sku=WS-12"),
    ("https://shop.canary.test/p/mug#alice.liddell@mail.test", "https://shop.canary.test/p/mug"),
    ("https://www.ebay.com/itm/123456789012?hash=item1c&_trkparms=x", "https://www.ebay.com/itm/123456789012"),
    ("https://www.amazon.com/dp/B08N5WRWNW?th=1", "https://www.amazon.com/dp/B08N5WRWNW"),
    ("HTTPS://Shop.Canary.Test/p/trail%2Dmug-2024-blue.html", "https://shop.canary.test/p/trail-mug-2024-blue.html"),
]


@pytest.mark.parametrize("url", DROPPED)
def test_links_with_personal_values_or_tokens_are_dropped(url: str) -> None:
    assert public_url(url, SECRETS) is None


@pytest.mark.parametrize("url, cleaned", CLEANED)
def test_product_links_are_cleaned_not_dropped(url: str, cleaned: str) -> None:
    out = public_url(url, SECRETS)
    assert out == cleaned
    parts = urlsplit(out)
    assert not parts.fragment and "@" not in parts.netloc
    assert all(key.lower() in PRODUCT_QUERY_KEYS for key, _ in parse_qsl(parts.query))
    for planted in (EMAIL, NAME, ORDER, INVOICE, PHONE, CARD):
        assert not survives(planted, out)


@pytest.mark.parametrize("url", ["https://i.ebayimg.com/images/g/Tb4AAOSwc1lgF0Hq/s-l140.jpg",
                                 "https://img.canary.test/p/5f1d2c9a8b7e6d5c4b3a2f1e0d9c8b7a/mug@2x.png"])
def test_pictures_named_by_content_hash_are_kept(url: str) -> None:
    assert public_url(url, SECRETS, image=True) == url
    assert public_url(f"{url}?u={EMAIL}", SECRETS, image=True) == url
    head, _, tail = url.rpartition("/")
    assert public_url(f"{head}/alice-liddell/{tail}", SECRETS, image=True) is None


@hsettings(max_examples=100, deadline=None)
@given(st.data())
def test_generated_links_never_carry_the_planted_values(data) -> None:
    planted = data.draw(st.sampled_from([EMAIL, ORDER, INVOICE, NAME, CARD]))
    from urllib.parse import quote

    spelled = data.draw(obfuscated(planted, separators=planted != EMAIL))
    encoded = quote(spelled, safe="") if data.draw(st.booleans()) else quote(quote(spelled, safe=""), safe="")
    where = data.draw(st.sampled_from(["path", "id", "other"]))
    url = {"path": f"https://shop.canary.test/p/{encoded}/mug", "id": f"https://shop.canary.test/p/mug?id={encoded}",
           "other": f"https://shop.canary.test/p/mug?ref={encoded}&pid=77"}[where]
    out = public_url(url, SECRETS)
    assert out is None or not survives(planted, out), (url, out)
    if where == "other":
        assert out == "https://shop.canary.test/p/mug?pid=77"


# --- 3. the email's own values, and addresses that are not items ----------------------------------

CANARY_EMAIL = f"""From: Canary Outfitters <orders@canary-outfitters.test>
To: Alice Liddell <{EMAIL}>
Subject: Your order {ORDER}
Date: Tue, 15 Apr 2025 09:12:44 +0100
Message-ID: <ord-canary-77001@mail.canary-outfitters.test>
Content-Type: text/html; charset="utf-8"
MIME-Version: 1.0

<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Your order</title></head>
<body>
<p>Dear Alice Liddell,</p>
<p>Thank you for your order.</p>
<table>
<tr><td>Order number:</td><td>{ORDER}</td></tr>
<tr><td>Invoice no:</td><td>{INVOICE}</td></tr>
<tr><td>Order date:</td><td>15 April 2025</td></tr>
</table>
<table>
<tr><th>Item</th><th>Qty</th><th>Price</th></tr>
<tr><td><a href="https://shop.canary.test/p/trail-mug?id={EMAIL}&amp;token={QUERY_TOKEN}">Trail Mug</a></td><td>1</td><td>$12.00</td></tr>
<tr><td><a href="https://shop.canary.test/track/{PATH_TOKEN}/alice.liddell%40mail.test/ref">Camp Lantern Voucher_4111111111111111</a></td><td>1</td><td>$30.00</td></tr>
<tr><td><a href="https://shop.canary.test/p/enamel-plate/2026%2F004571">Enamel Plate O R D-CANARY-77001 call 541/555/0199</a></td><td>1</td><td>$9.00</td></tr>
<tr><td><a href="https://shop.canary.test/p/wool-socks?sku=WS-12&amp;utm_source=mail&amp;email={EMAIL}">Wool Socks 5415550199x ORD\u2011CANARY\u201177001 for Ms Liddell \u202eevil\x07\x1b</a></td><td>1</td><td>$8.00</td></tr>
<tr><td>Gift wrap and card to Alice Liddell, 742 Evergreen Terrace, Springfield OR 97403</td><td>1</td><td>$4.00</td></tr>
</table>
<table>
<tr><td>Subtotal</td><td>$63.00</td></tr>
<tr><td>Order total</td><td>$63.00</td></tr>
</table>
<p>Paid with Visa ending in 4242.</p>
<p>Ship to:</p>
<p>Alice Liddell<br>742 Evergreen Terrace<br>Springfield OR 97403<br>United States</p>
<p>Phone: (541) 555-0199</p>
</body></html>
""".encode()
PLANTED = [EMAIL, "alice.liddell%40mail.test", ORDER, INVOICE, NAME, "Liddell", STREET, "Evergreen Terrace",
           TOWN, "97403", PHONE, CARD, PATH_TOKEN, QUERY_TOKEN]


def test_the_pipeline_reads_the_emails_own_values_and_drops_the_address_row() -> None:
    result = pipeline.run(CANARY_EMAIL)
    assert result.status == "purchase" and result.parser == "generic"
    names = [item.name for item in result.items]
    assert len(names) == 4 and not any("Evergreen" in name for name in names), names
    folded = {fold(term) for term in result.personal}
    for value in (NAME, "Liddell", EMAIL, ORDER, INVOICE, STREET, TOWN, "97403", PHONE, "4242"):
        assert fold(value) in folded, (value, result.personal)
    assert "personal" not in json.dumps(result.to_json())  # not part of the CONTRACT object


def test_the_name_and_address_are_read_without_a_to_name_or_an_address_label() -> None:
    """From the greeting and from the address's own structure (street number + street word, postcode)."""
    raw = (CANARY_EMAIL.replace(f"To: Alice Liddell <{EMAIL}>".encode(), f"To: {EMAIL}".encode())
           .replace(b"<p>Ship to:</p>", b"<p>Notes:</p>")
           .replace(b"Gift wrap and card to Alice Liddell, 742 Evergreen Terrace, Springfield OR 97403", b"Gift wrap"))
    folded = {fold(term) for term in pipeline.run(raw).personal}
    for value in (NAME, STREET, TOWN, "97403"):
        assert fold(value) in folded, value


@pytest.mark.parametrize("line, address", [
    ("Gift wrap and card to Alice Liddell, 742 Evergreen Terrace, Springfield OR 97403", True),
    ("Livraison à Jeanne Martin, 12 rue de la Paix, 75002 Paris", True),
    ("Geschenk an Max Muster, Hauptstraße 5, 10115 Berlin", True),
    ("Envío a Ana López, Calle Mayor 5, 28013 Madrid", True),
    ("Regalo per Luca Rossi, Via Roma 12, 00184 Roma", True),
    ("3 Pack Drive Belt", False), ("Abbey Road vinyl", False), ("Trail Mug", False),
    ("Route 66 Road Trip Atlas", False),
])
def test_delivery_address_lines_are_recognised_by_structure(line: str, address: bool) -> None:
    assert looks_like_address(line) is address


def test_own_values_are_private_exported_and_deleted_with_the_purchase(settings) -> None:
    with session_scope(settings) as session:
        from purchaseshare.users import create_user

        alice = create_user(session, "alice", email="alice-account@example.org", password_hash=None)
        session.commit()
    outcome = receive(settings, alice, CANARY_EMAIL)
    assert outcome.status == "parsed"
    with session_scope(settings) as session:
        purchase = session.get(Purchase, outcome.purchase_id)
        terms = json.loads(purchase.personal_terms)
        assert NAME in terms and ORDER in terms
        archive = zipfile.ZipFile(io.BytesIO(b"".join(export_chunks(settings, alice.id))))
        exported = json.loads(archive.read("purchases.json"))
        assert [row["personal_terms"] for row in exported] == [purchase.personal_terms]
        delete_purchase(session, purchase)
        assert session.exec(select(Purchase.personal_terms)).all() == []


# --- 4. end to end, against the real server ------------------------------------------------------

HTML = {"accept": "text/html"}


def leaked(body: str, content_type: str = "") -> list[str]:
    """Planted values readable in a response: raw, entity/JSON-decoded, percent-decoded, folded."""
    views = [body, htmlmod.unescape(body), htmlmod.unescape(htmlmod.unescape(body))]
    if "json" in content_type:
        views.append(json.dumps(json.loads(body), ensure_ascii=False))
    views += [unquote(unquote(view)) for view in views]
    haystack = "\n".join(views)
    found = [value for value in PLANTED if value.lower() in haystack.lower()]
    folded = fold(haystack)
    found += [f"folded {value}" for value in PLANTED if len(fold(value)) >= 8 and fold(value) in folded]
    found += [f"word {m}" for m in re.findall(r"(?<![\w-])(4242|0199|97403)(?![\w-])", haystack)]
    found += [f"unsafe {m!r}" for m in UNSAFE.findall(haystack)]
    return found


def live_event(client, timeout: float = 20.0) -> str:
    """The first `purchase` event of the follower's live feed (the stream is closed after it)."""
    deadline = time.monotonic() + timeout
    text = ""
    with client.stream("GET", "/feed/events?since=2000-01-01T00:00:00", headers={"accept": "text/event-stream"}) as events:
        for chunk in events.iter_text():
            text += chunk
            if "event: purchase" in text and text.rstrip(" ").endswith("\n\n"):
                return text
            assert time.monotonic() < deadline, "no live event"
    return text


def test_no_planted_value_reaches_any_public_surface(site) -> None:
    site.make_user("alice")
    site.make_user("bob")
    with session_scope(site.settings) as session:
        alice = session.exec(select(User).where(User.handle == "alice")).one()
        alice.display_name, alice.bio = "Alice\u202e ecilA\x07", "Tea\x1b[0m and \x01trails\u2066."
        session.add(alice)
        session.commit()
    outcome = receive(site.settings, alice, CANARY_EMAIL)
    assert outcome.status == "parsed", outcome
    with session_scope(site.settings) as session:
        purchase = session.get(Purchase, outcome.purchase_id)
        names = session.exec(select(PurchaseItem.name).where(PurchaseItem.purchase_id == purchase.id)).all()
        assert len(names) == 4 and any("4111111111111111" in name for name in names)  # really planted
        public_id = purchase.public_id

    owner, follower, anonymous = site.client(), site.client(), site.client()
    site.log_in(owner, "alice")
    page = f"/purchases/{outcome.purchase_id}"
    assert post_form(owner, f"{page}/approve", page=page).status_code == 303
    caption = f"Love it \u202eti evol\x07 {ORDER.lower()} — A.\u200bLiddell, 742\u00a0Evergreen Terrace \x0c"
    assert post_form(owner, f"{page}/caption", {"caption": caption}, page=page).status_code == 303
    with session_scope(site.settings) as session:
        assert all(session.exec(select(PurchaseItem.approved).where(PurchaseItem.purchase_id == outcome.purchase_id)))
    site.log_in(follower, "bob")
    assert post_form(follower, "/u/alice/follow", page="/u/alice").status_code == 303

    urls = ["/", "/u/alice", f"/u/alice/p/{public_id}", "/u/alice/feed.atom", "/api/v1/users/alice",
            "/api/v1/users/alice/purchases", f"/api/v1/users/alice/purchases/{public_id}"]
    bodies = {}
    for url in urls:
        response = anonymous.get(url, headers=HTML)
        assert response.status_code == 200, (url, response.status_code)
        bodies[url] = (response.text, response.headers.get("content-type", ""))
    for url in ["/feed", f"/u/alice/p/{public_id}"]:
        response = follower.get(url, headers=HTML)
        assert response.status_code == 200
        bodies[f"bob {url}"] = (response.text, response.headers.get("content-type", ""))
    bodies["live event"] = (live_event(follower), "text/event-stream")

    for where, (body, content_type) in bodies.items():
        assert not leaked(body, content_type), (where, leaked(body, content_type))
    # The surfaces did show the purchase: its items, and the cleaned product link.
    page_body = bodies[f"/u/alice/p/{public_id}"][0]
    assert "Trail Mug" in page_body and "Wool Socks" in page_body and "Enamel Plate" in page_body
    assert "https://shop.canary.test/p/wool-socks?sku=WS-12" in page_body
    assert "application/ld+json" in page_body
    assert "Wool Socks" in bodies["live event"][0] and "Wool Socks" in bodies["bob /feed"][0]
    api = json.loads(bodies[f"/api/v1/users/alice/purchases/{public_id}"][0])
    links = {item["name"].split()[0]: item["url"] for item in api["items"]}
    assert links == {"Trail": None, "Camp": None, "Enamel": None,
                     "Wool": "https://shop.canary.test/p/wool-socks?sku=WS-12"}, links
    # The Atom feed is well-formed XML though control characters were planted in the bio, the
    # display name, the caption and an item name.
    feed = ET.fromstring(bodies["/u/alice/feed.atom"][0].encode())
    assert feed.tag.endswith("feed") and "Wool Socks" in ET.tostring(feed, encoding="unicode")
    assert "trails" in bodies["/u/alice/feed.atom"][0]
    # The owner's own page still shows what the email said: the values were real.
    own = owner.get(page, headers=HTML).text
    assert ORDER in own and "4111111111111111" in own


def test_migration_0007_fills_existing_purchases_from_their_stored_email(settings) -> None:
    from alembic import command

    from purchaseshare.db import alembic_config, get_engine

    with session_scope(settings) as session:
        from purchaseshare.users import create_user

        alice = create_user(session, "alice", email="alice-account@example.org", password_hash=None)
        session.commit()
    outcome = receive(settings, alice, CANARY_EMAIL)
    config = alembic_config(get_engine(settings))
    command.downgrade(config, "0006")  # the column goes: the purchase is as it was before 0007
    command.upgrade(config, "head")
    with session_scope(settings) as session:
        terms = json.loads(session.get(Purchase, outcome.purchase_id).personal_terms)
    assert NAME in terms and STREET in terms and ORDER in terms
    # The round trip kept the page-cache triggers (a table copied by a batch would lose them).
    from purchaseshare.models import CacheScope

    with session_scope(settings) as session:
        before = getattr(session.get(CacheScope, alice.id), "value", 0)  # no row until her first bump
        purchase = session.get(Purchase, outcome.purchase_id)
        purchase.published_at = utcnow()
        session.add(purchase)
        session.commit()
    with session_scope(settings) as session:
        assert session.get(CacheScope, alice.id).value > before


def test_reparse_fills_the_own_values_even_of_a_reviewed_purchase(settings) -> None:
    from purchaseshare.reparse import reparse_raw_email
    from purchaseshare.users import create_user
    from tests.web.test_public import approve

    with session_scope(settings) as session:
        alice = create_user(session, "alice", email="alice-account@example.org", password_hash=None)
        session.commit()
    outcome = receive(settings, alice, CANARY_EMAIL)
    approve(settings, outcome.purchase_id, {0})  # reviewed by its owner: the items stay as they are
    with session_scope(settings) as session:
        purchase = session.get(Purchase, outcome.purchase_id)
        purchase.personal_terms = None  # as a purchase stored before this change
        session.add(purchase)
        session.commit()
        raw_id = purchase.source_raw_id
    reparse_raw_email(raw_id, settings)
    with session_scope(settings) as session:
        terms = json.loads(session.get(Purchase, outcome.purchase_id).personal_terms)
    assert NAME in terms and fold(PHONE) in {fold(term) for term in terms}


def test_a_second_email_of_the_order_adds_its_own_values(settings) -> None:
    from purchaseshare.users import create_user

    with session_scope(settings) as session:
        alice = create_user(session, "alice", email="alice-account@example.org", password_hash=None)
        session.commit()
    first = receive(settings, alice, CANARY_EMAIL)
    again = (CANARY_EMAIL.replace(b"<ord-canary-77001@", b"<ord-canary-77001-again@")
             .replace(b"742 Evergreen Terrace", b"9 Rabbit Hole Lane"))
    assert b"Evergreen" not in again
    second = receive(settings, alice, again)
    assert second.purchase_id == first.purchase_id
    with session_scope(settings) as session:
        terms = json.loads(session.get(Purchase, first.purchase_id).personal_terms)
    assert STREET in terms and "9 Rabbit Hole Lane" in terms
