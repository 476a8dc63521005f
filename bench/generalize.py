"""How well the pipeline reads merchants nobody wrote a parser for.

    python -m bench.generalize [CORPUS_DIR] [--emails] [--field FIELD]

Against the expected JSON in tests/corpus/expected, three runs over ../shared/corpus:
- `all parsers`: the pipeline as shipped (for context);
- `leave one out`: each merchant folder read with ITS parsers switched off (the merchant
  slugs that spoke for any of that folder's emails in the first run);
- `no merchant parsers`: every merchant parser off (schema.org + generic only) - the
  figure that counts.

Scored on the MANIFEST's order/receipt emails, field by field (each field of each email
is right or wrong, except names and prices, which score the share of items right):
status, merchant (name and domain), currency, total, subtotal/shipping/tax where the
expected JSON states a value, item count, item names, item prices. Item names match after
casefolding and collapsing spaces when they are equal or nearly so (difflib ratio >= 0.85,
so "…"-truncated names still count); an item is right when its name matches and its line
total (or unit price) equals the expected one.

Also: total precision (right / emitted) and recall (emitted / expected), candidate
recall (the true total was among the generic reader's money candidates), items F1
(pooled over items), and false purchases (emails whose expected status is not
`purchase`, of any kind, that came out as `purchase`). The last line is one JSON object:
{"accuracy", "total_precision", "items_f1", "false_purchases", ...} for the
no-merchant-parsers run.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parsers.registry import ALL_MERCHANTS
from purchaseshare.pipeline import parse_file

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = ROOT / "tests" / "corpus" / "expected"
PURCHASE_KINDS = ("order", "receipt")
BREAKDOWN = ("subtotal", "shipping", "tax")


@dataclass
class Score:
    """Right/asked per field, plus the counts behind precision, recall and F1."""

    fields: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    totals_emitted: int = 0
    totals_right: int = 0
    totals_expected: int = 0
    totals_among_candidates: int = 0
    items_expected: int = 0
    items_emitted: int = 0
    items_right: int = 0
    false_purchases: list[str] = field(default_factory=list)
    wrong_totals: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        values = [v for scores in self.fields.values() for v in scores]
        return sum(values) / len(values) if values else 0.0

    def field_accuracy(self, name: str) -> float | None:
        values = self.fields.get(name)
        return sum(values) / len(values) if values else None

    @property
    def total_precision(self) -> float:
        return self.totals_right / self.totals_emitted if self.totals_emitted else 1.0

    @property
    def total_recall(self) -> float:
        return self.totals_emitted / self.totals_expected if self.totals_expected else 1.0

    @property
    def candidate_recall(self) -> float:
        return self.totals_among_candidates / self.totals_expected if self.totals_expected else 1.0

    @property
    def items_f1(self) -> float:
        if not self.items_right:
            return 0.0
        precision = self.items_right / self.items_emitted
        recall = self.items_right / self.items_expected
        return 2 * precision * recall / (precision + recall)


def _norm(text: str | None) -> str:
    return " ".join((text or "").casefold().replace("…", " ").split())


def names_match(expected: str | None, actual: str | None) -> bool:
    a, b = _norm(expected), _norm(actual)
    if not a or not b:
        return a == b
    return a == b or difflib.SequenceMatcher(None, a, b).ratio() >= 0.85


def _merchant_key(name: str | None) -> str:
    return re.sub(r"[^a-z0-9]", "", _norm(name))


def merchant_matches(expected: dict, actual: dict) -> bool:
    if expected.get("domain") and expected["domain"] != actual.get("domain"):
        return False
    want, got = _merchant_key(expected.get("name")), _merchant_key(actual.get("name"))
    return bool(want and got) and (want in got or got in want)


def _price_right(expected: dict, actual: dict) -> bool:
    if expected.get("line_total") is not None:
        return expected["line_total"] == actual.get("line_total")
    return expected.get("unit_price") == actual.get("unit_price")


def match_items(expected: list[dict], actual: list[dict]) -> tuple[int, int]:
    """(names matched, items right): each expected item takes the first free actual one of its name."""
    free = list(actual)
    named = right = 0
    for want in expected:
        found = next((got for got in free if names_match(want.get("name"), got.get("name"))), None)
        if found is None:
            continue
        free.remove(found)
        named += 1
        right += _price_right(want, found)
    return named, right


def score_email(score: Score, name: str, expected: dict, actual: dict, candidates: set[str] | None) -> None:
    fields = score.fields
    fields["status"].append(float(actual["status"] == expected.get("status")))
    if "merchant" in expected:
        fields["merchant"].append(float(merchant_matches(expected["merchant"], actual["merchant"])))
    if "currency" in expected:
        fields["currency"].append(float(actual["currency"] == expected["currency"]))
    want_total = expected.get("total")
    if "total" in expected:
        fields["total"].append(float(actual["total"] == want_total))
    for key in BREAKDOWN:
        if expected.get(key) is not None:
            fields[key].append(float(actual.get(key) == expected[key]))
    if want_total is not None:
        score.totals_expected += 1
        if candidates is not None and want_total in candidates:
            score.totals_among_candidates += 1
    if actual["total"] is not None:
        score.totals_emitted += 1
        if actual["total"] == want_total:
            score.totals_right += 1
        else:
            score.wrong_totals.append(f"{name}: {actual['total']} (expected {want_total})")
    if "items" in expected:
        want, got = expected["items"], actual["items"]
        fields["item count"].append(float(len(want) == len(got)))
        if want or got:
            named, right = match_items(want, got)
            fields["item names"].append(named / max(len(want), len(got)))
            fields["item prices"].append(right / max(len(want), len(got)))
            score.items_expected += len(want)
            score.items_emitted += len(got)
            score.items_right += right


def _candidate_totals(path: Path) -> set[str] | None:
    """Every money amount the generic reader saw in the email (None: the reader has no such list)."""
    try:
        from parsers.generic import candidate_amounts
    except ImportError:
        return None
    from parsers.normalize import money_str
    from parsers.unwrap import unwrap

    return {money_str(amount) for amount in candidate_amounts(unwrap(path.read_bytes()))}


@dataclass
class Email:
    local_path: str
    folder: str
    kind: str
    expected: dict[str, Any]


def load(corpus: Path) -> list[Email]:
    with open(corpus / "MANIFEST.tsv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    emails = []
    for row in rows:
        path = EXPECTED / f"{row['local_path']}.json"
        if path.exists():
            emails.append(Email(row["local_path"], row["local_path"].split("/")[0], row["kind"],
                                json.loads(path.read_text(encoding="utf-8"))))
    return emails


def run(corpus: Path, emails: list[Email], disabled_for: dict[str, frozenset[str]],
        with_candidates: bool = False) -> tuple[Score, dict[str, Score], dict[str, dict]]:
    overall = Score()
    per_folder: dict[str, Score] = defaultdict(Score)
    outputs = {}
    for mail in emails:
        actual = parse_file(str(corpus / mail.local_path), disabled=disabled_for.get(mail.folder, frozenset()))
        outputs[mail.local_path] = actual_json = actual.to_json()
        if mail.expected.get("status") != "purchase" and actual_json["status"] == "purchase":
            overall.false_purchases.append(mail.local_path)
            per_folder[mail.folder].false_purchases.append(mail.local_path)
        if mail.kind not in PURCHASE_KINDS:
            continue
        candidates = _candidate_totals(corpus / mail.local_path) if with_candidates else None
        for score in (overall, per_folder[mail.folder]):
            score_email(score, mail.local_path, mail.expected, actual_json, candidates)
    return overall, per_folder, outputs


def _pct(value: float | None) -> str:
    return "   -" if value is None else f"{value:4.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", nargs="?", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--emails", action="store_true", help="list every wrong field per email (no parsers run)")
    args = parser.parse_args(argv)
    if not (args.corpus / "MANIFEST.tsv").exists():
        print(f"no corpus at {args.corpus}", file=sys.stderr)
        return 2
    emails = load(args.corpus)

    full, full_folders, full_out = run(args.corpus, emails, {})
    spoke: dict[str, set[str]] = defaultdict(set)
    for mail in emails:
        parser_name = full_out[mail.local_path].get("parser") or ""
        if parser_name.startswith("merchant:"):
            spoke[mail.folder].add(parser_name.split(":", 1)[1])
    loo, loo_folders, _ = run(args.corpus, emails, {f: frozenset(s) for f, s in spoke.items()})
    every_folder = {mail.folder: ALL_MERCHANTS for mail in emails}
    off, off_folders, off_out = run(args.corpus, emails, every_folder, with_candidates=True)

    purchases = [m for m in emails if m.kind in PURCHASE_KINDS]
    print(f"{len(purchases)} order/receipt emails of {len(emails)} with expected JSON\n")
    field_names = list(off.fields)
    print(f"{'field':<14}{'all':>7}{'loo':>7}{'off':>7}")
    for name in field_names:
        print(f"{name:<14}{_pct(full.field_accuracy(name)):>7}{_pct(loo.field_accuracy(name)):>7}"
              f"{_pct(off.field_accuracy(name)):>7}")
    print(f"{'ACCURACY':<14}{full.accuracy:7.3f}{loo.accuracy:7.3f}{off.accuracy:7.3f}\n")
    print(f"{'merchant folder':<22}{'n':>3}{'all':>7}{'loo':>7}{'off':>7}  parsers left out (loo)")
    for folder in sorted({m.folder for m in purchases}):
        count = sum(1 for m in purchases if m.folder == folder)
        print(f"{folder:<22}{count:>3}{full_folders[folder].accuracy:7.2f}{loo_folders[folder].accuracy:7.2f}"
              f"{off_folders[folder].accuracy:7.2f}  {','.join(sorted(spoke.get(folder, ()))) or '-'}")
    print()
    for label, score in (("all", full), ("loo", loo), ("off", off)):
        print(f"{label}: total precision {score.total_precision:.3f} ({score.totals_right}/{score.totals_emitted}), "
              f"recall {score.total_recall:.3f}, items F1 {score.items_f1:.3f}, "
              f"false purchases {len(score.false_purchases)}")
    print(f"off: candidate recall {off.candidate_recall:.3f}")
    for wrong in off.wrong_totals:
        print(f"  wrong total (off): {wrong}")
    for path in off.false_purchases:
        print(f"  false purchase (off): {path}")
    if args.emails:
        from tests.helpers import mismatches

        for mail in purchases:
            problems = mismatches({k: v for k, v in mail.expected.items() if k not in ("parser", "order_number",
                                                                                      "order_date", "kind")},
                                  off_out[mail.local_path])
            if problems:
                print(f"\n{mail.local_path}:")
                for problem in problems[:8]:
                    print(f"    {problem[:200]}")
    print(json.dumps({
        "emails": len(purchases),
        "accuracy": round(off.accuracy, 4),
        "total_precision": round(off.total_precision, 4),
        "total_recall": round(off.total_recall, 4),
        "candidate_recall": round(off.candidate_recall, 4),
        "items_f1": round(off.items_f1, 4),
        "false_purchases": len(off.false_purchases),
        "leave_one_out_accuracy": round(loo.accuracy, 4),
        "all_parsers_accuracy": round(full.accuracy, 4),
        "fields": {name: round(off.field_accuracy(name) or 0.0, 4) for name in field_names},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
