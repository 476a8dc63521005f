"""The merchant of an email with no sender (a bare body, a forward that lost its From),
from the body's structure: where its links point, the logo's alt text, the copyright line."""

from __future__ import annotations

import random

import pytest

import parsers.merchant_evidence as evidence
from parsers.merchant_evidence import merchant_from_body
from parsers.message import Email, Headers
from purchaseshare.pipeline import run

SYLLABLES = ("ka", "lo", "mi", "ven", "dor", "sa", "tru", "bel", "no", "fin", "ra", "quo")


def shop_name(seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(SYLLABLES) for _ in range(3)).capitalize()


def receipt_html(domain: str, *, logo_alt: str | None = None, footer: str = "", extra_links: int = 0,
                 others: tuple[str, ...] = ()) -> str:
    """An order email whose links go to `domain`, a CDN, social networks and a click tracker."""
    logo = (f'<a href="https://www.{domain}/"><img src="https://d111.cloudfront.net/logo.png" alt="{logo_alt}"></a>'
            if logo_alt is not None else "")
    links = "".join(f'<p><a href="https://www.{domain}/orders/{n}?utm_source=mail">Order {n}</a></p>'
                    for n in range(2 + extra_links))
    other = "".join(f'<a href="https://{host}/">{host}</a>' for host in others)
    social = ('<a href="https://www.facebook.com/x">f</a><a href="https://twitter.com/x">t</a>'
              '<a href="https://www.instagram.com/x">i</a><img src="https://cdn.jsdelivr.net/a.png">')
    return (f"<html><body>{logo}<p>Thank you for your order.</p><table><tr><td>Lamp</td><td>$20.00</td></tr>"
            f"<tr><td>Order total</td><td>$20.00</td></tr></table>{links}{other}{social}"
            f"<p>{footer}</p></body></html>")


def bare(html: str) -> Email:
    return Email(original=Headers(), html=html)


@pytest.mark.parametrize("seed", range(4))
def test_the_domain_most_links_point_to_and_the_logo_name(seed):
    name = shop_name(seed)
    domain = f"{name.lower()}.com"
    assert merchant_from_body(bare(receipt_html(domain, logo_alt=f"{name} logo"))) == (name, domain)


@pytest.mark.parametrize("seed", range(4))
def test_the_copyright_holder_names_the_shop_without_its_legal_form(seed):
    name = shop_name(seed)
    footer = f"© 2019-2024 {name} Trading Ltd. All rights reserved."
    html = receipt_html(f"{name.lower()}-trading.co.uk", footer=footer)
    assert merchant_from_body(bare(html)) == (f"{name} Trading", f"{name.lower()}-trading.co.uk")


def test_a_name_that_does_not_match_the_domain_is_not_taken():
    html = receipt_html("kalomi.com", logo_alt="Summer sale", footer="© 2024 Parent Holdings Inc.")
    assert merchant_from_body(bare(html)) == ("Kalomi", "kalomi.com")


def test_a_click_trackers_path_names_the_target():
    links = "".join(f'<a href="http://mandrillapp.com/track/click/3014/venfin.net?p=ey{n}">x</a>' for n in range(3))
    html = f"<html><body><p>Thank you for your order.</p>{links}</body></html>"
    assert merchant_from_body(bare(html)) == ("Venfin", "venfin.net")


def test_a_brands_country_site_wins_over_its_global_tracking_host():
    links = "".join(f'<a href="https://rd.trudor.com/c/{n}">x</a>' for n in range(5))
    links += "".join(f'<a href="https://www.trudor.co.uk/order/{n}">y</a>' for n in range(3))
    html = f"<html><body>{links}</body></html>"
    assert merchant_from_body(bare(html))[1] == "trudor.co.uk"


@pytest.mark.parametrize("html", [
    # two shops as often: no sender stands out
    '<a href="https://a-shop.com/1">a</a><a href="https://a-shop.com/2">a</a>'
    '<a href="https://b-shop.com/1">b</a><a href="https://b-shop.com/2">b</a>',
    # one mention is not a sender
    '<a href="https://a-shop.com/1">a</a>',
    # infrastructure only
    '<a href="https://www.facebook.com/">f</a><a href="https://www.facebook.com/">f</a>'
    '<img src="https://d1.cloudfront.net/a.png"><img src="https://d1.cloudfront.net/b.png">',
])
def test_no_clear_majority_gives_nothing(html):
    assert merchant_from_body(bare(f"<html><body>{html}</body></html>")) == (None, None)


def test_a_receipt_platforms_links_are_not_the_shop():
    links = "".join(f'<a href="https://email.receipts.tillbox.com/c/{n}">x</a>' for n in range(6))
    html = (f"<html><body>{links}<p>© Quolo Market</p><img src='https://tillbox.com/p.png' "
            "alt='Powered by Tillbox'></body></html>")
    assert merchant_from_body(bare(html)) == ("Quolo Market", None)


def test_plain_text_urls_count_too():
    text = ("Thank you for your booking at Belsa Hostels.\n"
            "Manage it: https://www.belsahostels.com/booking/123\n"
            "Cancel: https://www.belsahostels.com/cancel/123\n"
            "Follow us https://www.instagram.com/belsa\n")
    assert merchant_from_body(Email(original=Headers(), text=text)) == ("Belsahostels", "belsahostels.com")


def test_the_pipeline_fills_the_merchant_of_a_bare_body_and_its_ccTLD_decides_the_dollar():
    result = run(receipt_html("fintruno.ca", logo_alt="Fintruno").encode())
    assert result.status == "purchase"
    assert result.merchant == {"name": "Fintruno", "domain": "fintruno.ca"}
    assert result.currency == "CAD"


def test_a_sender_in_the_headers_is_never_second_guessed(monkeypatch):
    def not_called(mail: Email) -> tuple[str | None, str | None]:
        raise AssertionError("body evidence read for an email with a sender")

    monkeypatch.setattr("purchaseshare.pipeline.merchant_from_body", not_called)
    raw = ("From: Dorka <orders@dorka.com>\r\nSubject: Your order\r\nContent-Type: text/html\r\n\r\n"
           + receipt_html("other-place.com", logo_alt="Other place")).encode()
    result = run(raw)
    assert result.merchant == {"name": "Dorka", "domain": "dorka.com"}


def test_only_the_first_links_are_read(monkeypatch):
    monkeypatch.setattr(evidence, "_LINKS_SCANNED", 3)
    links = "".join(f'<a href="https://late-shop.com/{n}">x</a>' for n in range(50))
    early = "".join(f'<a href="https://{host}/">x</a>' for host in ("kalo.com", "miven.com", "dorsa.com"))
    html = f"<html><body>{early}{links}</body></html>"
    assert merchant_from_body(bare(html)) == (None, None)
    monkeypatch.setattr(evidence, "_LINKS_SCANNED", 400)
    assert merchant_from_body(bare(html))[1] == "late-shop.com"
