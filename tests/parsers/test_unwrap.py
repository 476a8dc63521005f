"""parsers.unwrap: each forward style and language, nesting and its cap, and non-forwards."""

from __future__ import annotations

import base64
import quopri
import time
from datetime import datetime, timedelta, timezone

import pytest

import parsers.message
from parsers.unwrap import MAX_DEPTH, parse_loose_datetime, unwrap
from purchaseshare.pipeline import run
from tests.wrapping import INLINE_STYLES, LANGUAGES, STYLES, nest_attachments, wrap

FORWARDER = "alice@example.org"
SENT = datetime(2024, 3, 7, 14, 5, 9, tzinfo=timezone(timedelta(hours=1)))

ORIGINAL = (
    b"From: Acme Outdoor <orders@acme-outdoor.example>\r\n"
    b"To: Alice <alice@example.org>\r\n"
    b"Subject: Your Acme Outdoor order A-12345\r\n"
    b"Date: Thu, 07 Mar 2024 14:05:09 +0100\r\n"
    b"Message-ID: <a-12345@acme-outdoor.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b1"\r\n'
    b"\r\n--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    b"Thank you for your order A-12345.\r\nTent: 199.00 EUR\r\nOrder total: 199.00 EUR\r\n"
    b"\r\n--b1\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n\r\n"
    b'<html lang="en"><body><table class="order"><tr><td>Tent</td><td>199.00 EUR</td></tr>'
    b"<tr><td>Order total</td><td>199.00 EUR</td></tr></table>"
    b"<p>Thank you for your order A-12345.</p></body></html>\r\n"
    b"--b1--\r\n"
)


def _assert_original(mail, *, exact_date: bool) -> None:
    assert mail.forwarded is True
    assert mail.forwarded_by == FORWARDER
    assert mail.original.from_addr == "orders@acme-outdoor.example"
    assert mail.original.from_name == "Acme Outdoor"
    assert mail.original.subject == "Your Acme Outdoor order A-12345"
    assert mail.original.date is not None
    if exact_date:
        assert mail.original.date == SENT
    else:  # clients print minutes only and often no zone: the same wall-clock time
        assert mail.original.date.replace(tzinfo=None, second=0) == SENT.replace(tzinfo=None, second=0)


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("style", INLINE_STYLES)
def test_inline_forward_styles(style, lang):
    mail = unwrap(wrap(ORIGINAL, style, FORWARDER, lang))
    _assert_original(mail, exact_date=style in ("thunderbird", "apple"))
    # The forwarder's note, the marker and the header block are cut from both bodies.
    for body in (mail.plain_text, mail.body_text):
        assert "Thank you for your order A-12345." in body
        assert "Tent" in body
        assert "Your Acme Outdoor order A-12345" not in body
        assert "FYI" not in body and "Sent from my iPhone" not in body
    assert mail.tree is not None and mail.tree.cssselect("table.order")


@pytest.mark.parametrize("style", ["attachment", "attachment_in_attachment", "gmail_of_apple"])
def test_attached_and_nested_forwards(style):
    mail = unwrap(wrap(ORIGINAL, style, FORWARDER))
    _assert_original(mail, exact_date=style != "gmail_of_apple")
    assert "Thank you for your order A-12345." in mail.body_text


def test_every_style_is_tested():
    assert set(STYLES) == {*INLINE_STYLES, "attachment", "attachment_in_attachment", "gmail_of_apple"}


def test_message_global_attachment():
    raw = wrap(ORIGINAL, "attachment", FORWARDER).replace(b"message/rfc822", b"message/global")
    _assert_original(unwrap(raw), exact_date=True)


def test_not_a_forward_merchant_sent_directly():
    """Auto-forwarding rules keep the merchant's own headers: that is the original."""
    mail = unwrap(ORIGINAL)
    assert mail.forwarded is False and mail.forwarded_by is None
    assert mail.original.from_addr == "orders@acme-outdoor.example"


def test_itinerary_from_lines_are_not_a_forward():
    raw = (
        b"From: Example Air <booking@example-air.example>\r\nTo: bob@example.org\r\n"
        b"Subject: Your trip confirmation ABC123\r\nDate: Mon, 06 May 2024 09:00:00 +0000\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Confirmation code: ABC123\r\n\r\nFlight 1\r\nFrom: SFO\r\nTo: LAX\r\nDate: May 12, 2024\r\n\r\n"
        b"Flight 2\r\nFrom: LAX\r\nTo: SFO\r\nDate: May 19, 2024\r\n\r\nTotal: $312.40\r\n"
    )
    mail = unwrap(raw)
    assert mail.forwarded is False
    assert mail.original.from_addr == "booking@example-air.example"
    assert "From: SFO" in mail.text
    html = raw.replace(b"text/plain", b"text/html").replace(b"\r\n", b"<br>\r\n")
    html = html.replace(b"<br>\r\n<br>\r\nConfirmation", b"\r\n\r\nConfirmation", 1)
    assert unwrap(html).forwarded is False


def test_quoted_reply_inside_a_forward_is_not_followed():
    text = (
        "Begin forwarded message:\n\n> From: Shop <orders@shop.example>\n> Subject: Your order\n"
        "> Date: 7 March 2024 at 14:05:09 GMT+1\n> To: alice@example.org\n>\n> Hello\n>\n"
        "> From: Bob <bob@example.net>\n> Sent: Monday, 4 March 2024 10:00\n> To: Shop\n"
        "> Subject: Re: question\n>\n> old text\n"
    )
    mail = unwrap(text.encode())
    assert mail.original.from_addr == "orders@shop.example"


def test_outlook_block_without_an_address_gives_the_name():
    html = (
        "<html><body><p>FYI</p><div style='border-top:solid #B5C4DF 1.0pt'><p class=MsoNormal>"
        "<b>From:</b> John Doe<br><b>Sent:</b> Wednesday, July 09, 2014 10:27 AM<br>"
        "<b>To:</b> Foo Bar<br><b>Subject:</b> The subject!</p></div><p>Hi Foo,</p></body></html>"
    )
    mail = unwrap(html.encode())
    assert mail.forwarded is True
    assert (mail.original.from_addr, mail.original.from_name) == (None, "John Doe")
    assert mail.original.subject == "The subject!"
    assert mail.body_text == "Hi Foo,"
    assert run(html.encode()).to_json()["original"]["from"] == "John Doe"


def test_bare_body_opening_with_a_forward_block():
    """A .txt body that starts with an Outlook block parses as headers; it is a forward."""
    for text in ("From: John Doe <john@acme.example>\nDate: Thursday, 28 October 2021 at 12:46\n"
                 "To: bob@acme.example\nSubject: Hello\nBody text\n",
                 "Von: John Doe <john@acme.example>\nDatum: Donnerstag, 28. Oktober 2021 um 12:46\n"
                 "An: bob@acme.example\nBetreff: Hello\nBody text\n",
                 "From: John Doe [mailto:john@acme.example]\nSent: 25 October 2021 11:17\n"
                 "To: bob@acme.example\nSubject: Hello\n\nBody text\n"):  # fmt: skip
        mail = unwrap(text.encode())
        assert mail.forwarded is True, text
        assert mail.original.from_addr == "john@acme.example"
        assert mail.original.subject == "Hello"
        assert mail.original.date.date().isoformat() in ("2021-10-28", "2021-10-25")
        assert mail.plain_text == "Body text"


@pytest.mark.parametrize(
    ("line", "subject"),
    [
        ("   ----- Message transmis ----- De : John <john@acme.example>À : \"b@acme.example\" <b@acme.example>"
         "Envoyé : mardi 2 novembre 2021, 09:26:50 UTC+1Objet : Ta commande", "Ta commande"),
        ("----- Forwarded Message ----- From: John <john@acme.example>To: b@acme.example"
         "Sent: Tuesday, November 2, 2021, 09:26:50 AM GMT+1Subject: Your order", "Your order"),
        ("----- Messaggio inoltrato ----- Da: John <john@acme.example>A: b@acme.itInviato: "
         "martedì 2 novembre 2021 09:26:50 UTC+1Oggetto: Il tuo ordine", "Il tuo ordine"),
    ],
)
def test_yahoo_one_line_block(line, subject):
    mail = unwrap(f"{line}\n Body\n".encode())
    assert mail.original.from_addr == "john@acme.example"
    assert mail.original.subject == subject
    assert mail.original.date.replace(tzinfo=None) == datetime(2021, 11, 2, 9, 26, 50)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Thu, Jun 1, 2023 at 8:47 AM", "2023-06-01T08:47:00"),
        ("mer. 27 oct. 2021 à 09:31", "2021-10-27T09:31:00"),
        ("Mi., 27. Okt. 2021 um 09:31 Uhr", "2021-10-27T09:31:00"),
        ("26. Oktober 2021 um 14:25:08 OESZ", "2021-10-26T14:25:08+03:00"),
        ("17. Mai 2023 um 22:36:20 MESZ", "2023-05-17T22:36:20+02:00"),
        ("mié, 27 oct 2021 a las 9:31", "2021-10-27T09:31:00"),
        ("mer 27 ott 2021 alle ore 09:31", "2021-10-27T09:31:00"),
        ("9 giugno 2017 09:44:46 CEST", "2017-06-09T09:44:46+02:00"),
        ("17 août 2022 à 09:06:24 UTC+2", "2022-08-17T09:06:24+02:00"),
    ],
)
def test_client_dates(text, expected):
    assert parse_loose_datetime(text).isoformat() == expected


def test_raw_original_pasted_into_the_body():
    wrapper = (b"From: Me <me@example.org>\r\nTo: hook@example.net\r\nSubject: fwd\r\n"
               b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
    pasted = quopri.encodestring(ORIGINAL.replace(b"Message-ID", b"Received: by mx.example; Thu, 7 Mar 2024\r\nMessage-ID"))
    mail = unwrap(wrapper + pasted)
    assert (mail.forwarded, mail.forwarded_by) == (True, "me@example.org")
    assert mail.original.from_addr == "orders@acme-outdoor.example"


def test_malformed_wrapper_base64_labelled_quoted_printable():
    """Leading blank lines, CR CR LF line ends, says quoted-printable, carries base64 of
    the original (itself quoted-printable-encoded once more): amazon-us/lunchmoney_wrapped."""
    inner = ORIGINAL.replace(b"MIME-Version", b"ARC-Seal: i=1; a=rsa-sha256; cv=none\r\nMIME-Version")
    inner = b"Delivered-To: me@example.org\r\nReceived: by mx.example; Thu, 7 Mar 2024\r\n" + inner
    body = base64.encodebytes(quopri.encodestring(inner)).replace(b"\n", b"\r\n")
    head = (b"Date: Wed, 9 Jul 2025 14:39:10 -0700\r\r\nFrom: me@example.org\r\r\nTo: hook@example.net\r\r\n"
            b"Subject: Your Acme Outdoor order A-12345\r\r\nMIME-Version: 1.0\r\r\n"
            b"Content-Type: text/plain; charset=\"UTF-8\"\r\r\nContent-Transfer-Encoding: quoted-printable\r\r\n\r\r\n")
    mail = unwrap(b"\r\n\r\n" + head + body)
    assert (mail.forwarded, mail.forwarded_by) == (True, "me@example.org")
    assert mail.original.from_addr == "orders@acme-outdoor.example"
    assert mail.original.date == SENT


def test_attachments_nested_50_deep_are_capped():
    raw = nest_attachments(ORIGINAL, FORWARDER, 50)
    started = time.perf_counter()
    result = run(raw)
    assert time.perf_counter() - started < 10
    assert result.status != "error"
    assert result.forwarded is True and result.forwarded_by == FORWARDER
    assert any("nested deeper" in w for w in result.warnings)


def test_inline_forwards_nested_50_deep_are_capped():
    raw = ORIGINAL
    for level in range(50):
        raw = wrap(raw, "gmail", FORWARDER if level == 49 else f"level{level}@example.net")
    started = time.perf_counter()
    result = run(raw)
    assert time.perf_counter() - started < 10
    assert result.status != "error"
    assert result.forwarded_by == FORWARDER
    assert any("nested deeper" in w for w in result.warnings)


def test_nested_within_the_cap_reaches_the_innermost():
    raw = ORIGINAL
    for level in range(MAX_DEPTH - 1):
        raw = wrap(raw, "gmail" if level % 2 else "apple", f"level{level}@example.net")
    mail = unwrap(wrap(raw, "outlook", FORWARDER))
    assert mail.original.from_addr == "orders@acme-outdoor.example"
    assert not mail.warnings


def test_html_parsed_once(monkeypatch):
    calls = []
    real = parsers.message._html_tree

    def counting(html):
        calls.append(1)
        return real(html)

    monkeypatch.setattr(parsers.message, "_html_tree", counting)
    mail = unwrap(wrap(ORIGINAL, "gmail_of_apple", FORWARDER))
    assert mail.tree is not None and mail.body_text and mail.language
    assert len(calls) == 1
