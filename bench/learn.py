"""How well one correction teaches a sender's layout.

    python -m bench.learn [CORPUS_DIR]

For each corpus sender (merchant folder) with two or more order/receipt emails of one template
(layout signatures that match, parsers/signature.py), every merchant parser off: teach the first
email from our expected JSON (tests/corpus/expected) with parsers.templates.learn - the call the
web form's correction makes - then parse the others with only that template learned. Prints
field accuracy on the taught-from-one emails per sender (scored as bench.generalize scores),
the same emails without the template (the generic reader alone) for comparison, templates
learned, mis-applications (the learned layer read an email and got its total wrong) and
learning time per correction. Last line: JSON {"accuracy", "misapplied", "learn_ms", ...}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from bench.generalize import PURCHASE_KINDS, ROOT, Email, Score, load, score_email
from parsers.layout import layout_of
from parsers.model import Item
from parsers.registry import ALL_MERCHANTS
from parsers.signature import same_template, signature
from parsers.templates import Correction, Template, learn
from parsers.unwrap import unwrap
from purchaseshare.pipeline import run


def correction_from(expected: dict) -> Correction:
    """The owner's correction, as the expected JSON states the purchase."""
    def money(key: str) -> Decimal | None:
        value = expected.get(key)
        return Decimal(value) if value is not None else None

    items = [Item(name=i["name"], quantity=i.get("quantity") or 1,
                  unit_price=Decimal(i["unit_price"]) if i.get("unit_price") is not None else None,
                  line_total=Decimal(i["line_total"]) if i.get("line_total") is not None else None)
             for i in expected.get("items", [])]
    return Correction(total=money("total"), subtotal=money("subtotal"), shipping=money("shipping"),
                      tax=money("tax"), discount=money("discount"), items=items)


def groups(corpus: Path, emails: list[Email]) -> list[list[tuple[Email, bytes, str]]]:
    """Per sender, the purchase emails grouped by template (signature matched to the group's first)."""
    by_folder: dict[str, list[list[tuple[Email, bytes, str]]]] = defaultdict(list)
    for mail in emails:
        if mail.kind not in PURCHASE_KINDS or mail.expected.get("status") != "purchase":
            continue
        raw = (corpus / mail.local_path).read_bytes()
        own = signature(layout_of(unwrap(raw)))
        for group in by_folder[mail.folder]:
            if same_template(group[0][2], own):
                group.append((mail, raw, own))
                break
        else:
            by_folder[mail.folder].append([(mail, raw, own)])
    return [group for folder in sorted(by_folder) for group in by_folder[folder] if len(group) >= 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", nargs="?", type=Path, default=ROOT.parent / "shared" / "corpus")
    args = parser.parse_args(argv)
    if not (args.corpus / "MANIFEST.tsv").exists():
        print(f"no corpus at {args.corpus}", file=sys.stderr)
        return 2
    taught, untaught = Score(), Score()
    learned = misapplied = spoke = 0
    learn_seconds: list[float] = []
    print(f"{'sender / template':<44}{'n':>3}{'taught':>8}{'alone':>8}  unplaced")
    for group in groups(args.corpus, load(args.corpus)):
        first, raw, _ = group[0]
        start = time.perf_counter()
        mail = unwrap(raw)
        lesson = learn(mail, correction_from(first.expected), mail.sender_domain or first.folder)
        learn_seconds.append(time.perf_counter() - start)
        templates: list[Template] = [lesson.template] if lesson.template else []
        learned += bool(templates)
        with_score, without_score = Score(), Score()
        for mail, other_raw, _ in group[1:]:
            result = run(other_raw, source=mail.local_path, disabled=ALL_MERCHANTS, templates=templates)
            alone = run(other_raw, source=mail.local_path, disabled=ALL_MERCHANTS)
            if result.parser and result.parser.startswith("learned:"):
                spoke += 1
                if mail.expected.get("total") is not None and str(result.total) != mail.expected["total"] \
                        and result.total != Decimal(mail.expected["total"]):
                    misapplied += 1
            for score in (with_score, taught):
                score_email(score, mail.local_path, mail.expected, result.to_json(), None)
            for score in (without_score, untaught):
                score_email(score, mail.local_path, mail.expected, alone.to_json(), None)
        print(f"{first.local_path[:43]:<44}{len(group):>3}{with_score.accuracy:8.2f}{without_score.accuracy:8.2f}"
              f"  {','.join(lesson.unplaced) or '-'}")
    learn_ms = 1000 * sum(learn_seconds) / len(learn_seconds) if learn_seconds else 0.0
    print(f"\ntaught-from-one accuracy {taught.accuracy:.3f} (generic reader alone {untaught.accuracy:.3f}); "
          f"templates learned {learned}; learned layer read {spoke} emails; misapplied {misapplied}; "
          f"learning {learn_ms:.1f} ms per correction")
    print(json.dumps({"accuracy": round(taught.accuracy, 4), "alone_accuracy": round(untaught.accuracy, 4),
                      "templates": learned, "learned_reads": spoke, "misapplied": misapplied,
                      "learn_ms": round(learn_ms, 2),
                      "fields": {name: round(taught.field_accuracy(name) or 0.0, 4) for name in taught.fields}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
