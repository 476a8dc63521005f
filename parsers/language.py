"""The email's language, cheaply: declared (html lang, Content-Language) or by common words.

Dates and currency symbols are read with it ("3 mai 2019", "$" in fr-CA).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parsers.message import Email

_COMMON_WORDS = {
    "en": ("the", "your", "order", "and", "you", "for", "total", "thank", "with", "item"),
    "fr": ("le", "la", "les", "votre", "commande", "vous", "et", "pour", "merci", "des"),
    "de": ("der", "die", "das", "ihre", "und", "bestellung", "sie", "für", "vielen", "mit"),
    "es": ("el", "la", "su", "pedido", "gracias", "por", "los", "del", "para", "con"),
    "it": ("il", "la", "tuo", "ordine", "grazie", "per", "di", "che", "della", "con"),
    "nl": ("de", "het", "uw", "bestelling", "en", "van", "voor", "bedankt", "je", "met"),
    "pt": ("o", "seu", "pedido", "obrigado", "para", "do", "da", "com", "os", "em"),
}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_LANG_ATTR = re.compile(r"^[a-zA-Z]{2,3}(?:[-_][a-zA-Z]{2})?$")


def detect_language(mail: Email) -> str | None:
    declared = _declared(mail)
    if declared and not declared.lower().startswith("en"):
        return declared
    guessed = guess_language(f"{mail.original.subject or ''}\n{mail.body_text[:4000]}")
    if declared and (guessed is None or guessed == declared.split("-")[0].lower()):
        return declared
    return guessed or declared


def _declared(mail: Email) -> str | None:
    tree = mail.tree
    candidates = []
    if tree is not None:
        candidates.append(tree.get("lang") or tree.get("xml:lang"))
    candidates.append((mail.original.content_language or "").split(",")[0].strip())
    for value in candidates:
        if value and _LANG_ATTR.match(value.strip()):
            return value.strip().replace("_", "-")
    return None


# word -> the languages whose common words include it (one dict look-up per word)
_LANGUAGES_OF: dict[str, tuple[str, ...]] = {
    word: tuple(lang for lang, words in _COMMON_WORDS.items() if word in words)
    for word in {w for words in _COMMON_WORDS.values() for w in words}
}


def guess_language(text: str) -> str | None:
    words = _WORD.findall(text)[:800]
    if not words:
        return None
    counts = dict.fromkeys(_COMMON_WORDS, 0)
    for word, times in Counter(map(str.lower, words)).items():  # each distinct word once
        for lang in _LANGUAGES_OF.get(word, ()):
            counts[lang] += times
    best = max(counts, key=lambda lang: counts[lang])
    return best if counts[best] >= 3 else None
