"""Redaction patterns: the same answers as the plain patterns they replace, and linear on hostile
text. An item name of a few thousand "x" used to hang a web process in the masked-card pattern
(nested quantifiers backtracking), so anyone able to get such a name onto a public page could
stall the site."""

from __future__ import annotations

import random
import re
import subprocess
import sys

from purchaseshare.redact import EMAIL, MASKED_CARD

# The previous (backtracking) patterns: the reference the new ones must agree with on short text.
REFERENCE = {
    "email": (re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE), EMAIL),
    "masked_card": (re.compile(r"(?:[*xX•]{2,}[\s-]?){1,4}\d{2,4}|\b(?:ending|endet|finissant|terminant)\s+"
                               r"(?:in|mit|par|en)\s+\d{2,4}\b", re.IGNORECASE), MASKED_CARD),
}
ALPHABET = "xX*• -.+'()@ab_é0123456789"
WORDS = ["ending in ", "endet mit ", "**** ", "xxxx-", "bob@example.org", ".co.uk", "+44 20 ", "Order "]


def samples(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        parts = [rng.choice(WORDS) if rng.random() < 0.3 else "".join(rng.choices(ALPHABET, k=rng.randint(1, 6)))
                 for _ in range(rng.randint(1, 6))]
        out.append("".join(parts))
    return out


def test_patterns_agree_with_the_reference_on_random_text():
    for text in samples(4000, seed=20261123):
        for name, (old, new) in REFERENCE.items():
            assert new.sub("[hidden]", text) == old.sub("[hidden]", text), (name, text)


def test_hostile_text_is_redacted_in_linear_time():
    # In a child process with a generous limit: the old patterns ran for hours on these (the
    # limit only catches a hang; speed itself is measured in bench/, not here).
    hostile = ["x" * 6000, "*" * 6000 + " 12", "x" * 6000 + "1", "xx " * 3000 + "z", "1" * 60000 + "a",
               "a" * 60000, "a." * 30000, "9 " * 30000 + "x"]
    code = ("import sys, json\nfrom purchaseshare.redact import redact\n"
            "for text in json.load(sys.stdin): redact(text)\nprint('done')")
    import json

    result = subprocess.run([sys.executable, "-c", code], input=json.dumps(hostile), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"


def test_what_is_hidden_stays_hidden():
    from purchaseshare.redact import redact

    for text in ["card **** 1234", "paid with xxxx-4242", "**** **** **** 4242", "card ending in 9876",
                 "write to ada.quill+shop@example.co.uk", "call +44 20 7946 0958", "ref 4111 1111 1111 1111"]:
        assert "[hidden]" in redact(text), text
    for text in ["XXL 12 pack", "Box 1234", "Size XL", "2 x 12 mugs"]:
        assert redact(text) == text


def test_an_ascii_texts_view_is_the_character_by_character_one() -> None:
    """The ASCII fast path (one translate, stretches worked out on demand) maps every character
    exactly as the general path does: the same text, the same stretches of the original."""
    from purchaseshare import redact as module

    rng = random.Random(17)
    alphabet = [chr(code) for code in range(128)]
    samples = ["", " ", "Order #ORD-2026/004571 for Jane Doe", "4111 1111 1111 1111", "a@b.test\t\r\n\x0b\x1f"]
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(300)]
    for fold in (module._fold_char, module._light_char):
        for text in samples:
            view, slow = module._view(text, fold), module._view_by_character(text, fold)
            assert (view.text, view.starts, view.ends) == (slow.text, slow.starts, slow.ends), (fold.__name__, text)
