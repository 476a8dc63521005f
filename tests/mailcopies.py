"""Distinct copies of a test email: the same message with some header fields rewritten.

Corpus and fixture emails share (redacted) Message-IDs and were addressed to someone else, so the
IMAP tests, the worker fault tests and bench/ingest.py give every delivery its own Message-ID and
our plus-address, as real mail has. Standard library only: the dramatiq workers the tests start
and the bench import it too.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping


def with_headers(raw: bytes, fields: Mapping[str, str], *, keep: Collection[str] = ()) -> bytes:
    """The raw email with `fields` (name -> value) put first, in the order given, and every
    existing field of the same name removed (folded continuation lines included), except the
    names in `keep`: those stay below the new ones, as an MX puts its Delivered-To on top of older
    ones. Everything else (other fields, the body, the line endings) is kept byte for byte.
    Names match case-insensitively; values are written as given (a Message-ID needs its <>).

        with_headers(raw, {"Delivered-To": address, "Message-ID": make_msgid()})
    """
    newline = b"\r\n" if b"\r\n" in raw[:2000] else b"\n"
    head, sep, body = raw.partition(newline + newline)
    kept_names = {name.lower() for name in keep}
    dropped = {name.lower() for name in fields} - kept_names
    kept: list[bytes] = []
    skipping = False  # inside a dropped field: its continuation lines go too
    for line in head.split(newline):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        skipping = line.split(b":", 1)[0].strip().lower().decode("latin-1") in dropped
        if not skipping:
            kept.append(line)
    new = [f"{name}: {value}".encode() for name, value in fields.items()]
    return newline.join(new + kept) + sep + body
