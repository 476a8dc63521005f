"""Shared test helpers: where things are, and how goldens are compared."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "emails"
CORPUS = Path(os.environ.get("PURCHASESHARE_CORPUS", ROOT.parent / "shared" / "corpus"))
CORPUS_EXPECTED = ROOT / "tests" / "corpus" / "expected"
UPDATE_GOLDENS = os.environ.get("PURCHASESHARE_UPDATE_GOLDENS") == "1"
IN_CI = os.environ.get("CI", "").lower() == "true"


def fixture_emails() -> list[Path]:
    return sorted(p for p in FIXTURES.glob("*/*") if p.suffix in (".eml", ".html", ".txt"))


def golden_path(email_path: Path) -> Path:
    return email_path.with_suffix(".json")


def manifest() -> list[dict[str, str]]:
    with open(CORPUS / "MANIFEST.tsv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def mismatches(expected: Any, actual: Any, where: str = "") -> list[str]:
    """Field-by-field differences; dict keys missing from `expected` are not compared."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        problems = []
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{where}.{key}: missing")
            else:
                problems += mismatches(value, actual[key], f"{where}.{key}")
        return problems
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{where}: expected {len(expected)} entries, got {len(actual)}: {actual!r}"]
        return [p for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                for p in mismatches(e, a, f"{where}[{i}]")]
    return [] if expected == actual else [f"{where}: expected {expected!r}, got {actual!r}"]


def run_async(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run(main()) in a thread of its own: once the browser tests have started Playwright's
    sync API, the main thread counts as inside a running event loop and asyncio.run refuses."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()
