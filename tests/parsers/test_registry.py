"""The merchant registry: explicit, sorted, complete, and backed by fixtures.

No `gousto.py` drift: every file in parsers/merchants/ is registered, every slug is its
module's name and has fixtures, and every fixture folder belongs to a slug or to one of
the generic layers (`_schemaorg`, `_generic`).
"""

from __future__ import annotations

import re

import pytest

from parsers import registry
from parsers.base import MerchantParser
from parsers.registry import BY_DOMAIN, BY_SLUG, MERCHANTS
from tests.helpers import FIXTURES, ROOT

MERCHANT_DIR = ROOT / "parsers" / "merchants"
MODULES = sorted(p.stem for p in MERCHANT_DIR.glob("*.py") if p.stem != "__init__")
LAYER_FOLDERS = {"_schemaorg", "_generic"}


def test_every_merchant_module_is_registered():
    registered = {parser.__module__.rsplit(".", 1)[-1] for parser in MERCHANTS}
    assert sorted(set(MODULES) - registered) == [], "merchant files missing from parsers/registry.py"
    assert sorted(registered - set(MODULES)) == []


def test_registry_is_sorted_by_slug():
    slugs = [parser.slug for parser in MERCHANTS]
    assert slugs == sorted(slugs)
    assert len(slugs) == len(set(slugs))


def test_registry_imports_are_sorted_between_the_markers():
    text = (ROOT / "parsers" / "registry.py").read_text(encoding="utf-8")
    block = text[text.index("# -- imports (sorted) --"):text.index("# -- end imports --")]
    imported = re.findall(r"^from parsers\.merchants\.(\w+) import (\w+)$", block, re.MULTILINE)
    assert [slug for slug, _ in imported] == sorted(slug for slug, _ in imported)
    assert [cls for _, cls in imported] == [parser.__name__ for parser in MERCHANTS]


@pytest.mark.parametrize("parser", MERCHANTS, ids=[p.slug for p in MERCHANTS])
def test_slug_is_the_module_name(parser: type[MerchantParser]):
    assert parser.slug == parser.__module__.rsplit(".", 1)[-1]
    assert re.fullmatch(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*", parser.slug)
    assert parser.display_name
    assert parser.domains or any(m.field == "body" for m in parser.match), "a parser must be reachable"
    assert issubclass(parser, MerchantParser)


@pytest.mark.parametrize("slug", sorted(BY_SLUG))
def test_every_slug_has_a_fixture(slug: str):
    folder = FIXTURES / slug
    emails = [p for p in folder.glob(f"{slug}_*") if p.suffix in (".eml", ".html", ".txt")] if folder.is_dir() else []
    assert any(p.suffix == ".eml" for p in emails), f"fixtures/emails/{slug}/ needs at least one {slug}_<n>.eml"


def test_every_fixture_folder_is_a_slug_or_a_layer():
    folders = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()) if FIXTURES.is_dir() else []
    strays = [name for name in folders if name not in BY_SLUG and name not in LAYER_FOLDERS]
    assert strays == [], "fixture folders that are neither a merchant slug nor _schemaorg/_generic"


def test_domains_are_registrable_and_unique():
    for domain, parser in BY_DOMAIN.items():
        assert domain == domain.lower() and "@" not in domain and "/" not in domain, (parser.slug, domain)
    claimed = [d for parser in MERCHANTS for d in parser.domains]
    assert len(claimed) == len(set(claimed))


# _index() only reads MERCHANTS, so monkeypatching it cannot leak into the real registry.
def _fake(slug: str, domains: tuple[str, ...], module: str | None = None) -> type[MerchantParser]:
    cls = type(f"{slug.title().replace('_', '')}Parser", (MerchantParser,),
               {"slug": slug, "display_name": slug, "domains": domains})
    cls.__module__ = f"parsers.merchants.{module or slug}"
    return cls


def test_duplicate_slug_raises(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(registry, "MERCHANTS", (*MERCHANTS, _fake(MERCHANTS[-1].slug, ("zz-unique.example",),
                                                                   module=MERCHANTS[-1].slug)))
    with pytest.raises(ValueError, match="duplicate merchant slug"):
        registry._index()


def test_duplicate_domain_raises(monkeypatch: pytest.MonkeyPatch):
    taken = MERCHANTS[0].domains[0]
    monkeypatch.setattr(registry, "MERCHANTS", (*MERCHANTS, _fake("zzz_copycat", (taken,))))
    with pytest.raises(ValueError, match="claimed by"):
        registry._index()


def test_slug_differing_from_module_raises(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(registry, "MERCHANTS", (*MERCHANTS, _fake("zzz_one", (), module="zzz_other")))
    with pytest.raises(ValueError, match="differs from its module"):
        registry._index()


def test_unsorted_registry_raises(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(registry, "MERCHANTS", tuple(reversed(MERCHANTS)))
    with pytest.raises(ValueError, match="sorted"):
        registry._index()
