"""Time the whole extraction pipeline per email against a floor measured in the same run.

    python -m bench.parse CORPUS_DIR [--rounds 5] [--top 15] [--profile 40]

Pipeline: `purchaseshare.pipeline.run(raw)` (unwrap, classify, parser chain, normalize).
Floor: what any reader of the email must pay at least - the stdlib parse
(`email.message_from_bytes(raw, policy=email.policy.default)`) plus one `lxml.html`
parse of the first text/html part found by walking the message (none: no HTML parse).

Every file under CORPUS_DIR (recursive; MANIFEST.tsv and README.md skipped) is run once
to warm up (imports, lazy caches), then both measures are taken in each of several
rounds, interleaved per email so that load from other processes hits both alike. A
round's figure is the sum over all emails; the median round is reported, and per email
the median of its rounds. Prints a table of the slowest emails, then as the LAST line
one JSON object: {"emails", "rounds", "pipeline_s_per_email", "floor_s_per_email",
"ratio", "emails_per_second", ...}.

--profile N: instead, run the pipeline over the corpus under cProfile (after the warm-up)
and print the N costliest functions, by cumulative and by own time: where to look next.

--adversarial: instead, build crafted emails (bench/adversarial.py: a 300 000-row item table,
a 46 MB HTML body, nested tables, 5 000 MIME parts...) and parse each in a fresh subprocess:
per shape its size, seconds, peak RSS growth over a small email's and that growth / size;
last line JSON with "worst_s" and "worst_rss_ratio" (targets: < 2 s, <= 3x).
"""

from __future__ import annotations

import argparse
import email
import email.message
import email.policy
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import lxml.html
from lxml import etree

SKIP_NAMES = frozenset({"MANIFEST.tsv", "README.md"})
_FLOOR_HTML_PARSER = lxml.html.HTMLParser(encoding="utf-8")


@dataclass
class Sample:
    path: Path
    raw: bytes
    pipeline: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    status: str = ""

    @property
    def pipeline_s(self) -> float:
        return statistics.median(self.pipeline)

    @property
    def floor_s(self) -> float:
        return statistics.median(self.floor)


def corpus_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and p.name not in SKIP_NAMES and not p.name.startswith("."))


def first_html(message: email.message.Message) -> str | None:
    for part in message.walk():
        if part.get_content_type() != "text/html" or part.is_multipart():
            continue
        try:
            content = part.get_content()
        except (LookupError, ValueError, AssertionError):
            data = part.get_payload(decode=True) or b""
            content = data.decode("utf-8", errors="replace")
        return content if isinstance(content, str) else None
    return None


def floor(raw: bytes) -> None:
    """The floor: stdlib parse + one lxml parse of the HTML part (when there is one)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    html = first_html(message)
    if html and html.strip():
        try:
            lxml.html.document_fromstring(html.encode("utf-8", "surrogatepass"), parser=_FLOOR_HTML_PARSER)
        except (etree.ParserError, ValueError):
            pass


def measure(samples: list[Sample], rounds: int) -> tuple[list[float], list[float]]:
    from purchaseshare.pipeline import run

    for sample in samples:  # warm-up: imports, lazy caches (dateparser, babel, tldextract)
        sample.status = run(sample.raw, source=str(sample.path)).status
        floor(sample.raw)
    clock = time.perf_counter
    pipeline_rounds, floor_rounds = [], []
    for index in range(rounds):
        order = samples if index % 2 == 0 else samples[::-1]
        for sample in order:
            start = clock()
            floor(sample.raw)
            middle = clock()
            run(sample.raw, source=str(sample.path))
            end = clock()
            sample.floor.append(middle - start)
            sample.pipeline.append(end - middle)
        pipeline_rounds.append(sum(s.pipeline[-1] for s in samples))
        floor_rounds.append(sum(s.floor[-1] for s in samples))
    return pipeline_rounds, floor_rounds


def profile(samples: list[Sample], rounds: int, top: int) -> None:
    """cProfile over `rounds` pipeline runs of every email (after one warm-up run)."""
    import cProfile
    import pstats

    from purchaseshare.pipeline import run

    for sample in samples:
        run(sample.raw, source=str(sample.path))
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(rounds):
        for sample in samples:
            run(sample.raw, source=str(sample.path))
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs()
    for order in ("cumulative", "tottime"):
        stats.sort_stats(order).print_stats(top)


def table(samples: list[Sample], root: Path, top: int) -> str:
    rows = sorted(samples, key=lambda s: s.pipeline_s, reverse=True)[:top]
    width = max([len(str(s.path.relative_to(root))) for s in rows] + [5])
    lines = [f"{'email':<{width}}  {'KB':>7}  {'pipeline ms':>11}  {'floor ms':>8}  {'ratio':>6}  status",
             "-" * (width + 54)]
    for s in rows:
        ratio = s.pipeline_s / s.floor_s if s.floor_s else float("inf")
        lines.append(f"{s.path.relative_to(root)!s:<{width}}  {len(s.raw) / 1024:>7.1f}  "
                     f"{s.pipeline_s * 1000:>11.2f}  {s.floor_s * 1000:>8.2f}  {ratio:>6.2f}  {s.status}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    default_corpus = os.environ.get("PURCHASESHARE_CORPUS", str(Path(__file__).resolve().parent.parent.parent
                                                                 / "shared" / "corpus"))
    parser = argparse.ArgumentParser(prog="python -m bench.parse", description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", nargs="?", default=default_corpus, help="directory of raw emails (recursive)")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds after one warm-up (default 5)")
    parser.add_argument("--top", type=int, default=15, help="rows in the table of slowest emails")
    parser.add_argument("--profile", type=int, metavar="N", default=0,
                        help="profile the pipeline instead (cProfile) and print its N costliest functions")
    parser.add_argument("--adversarial", action="store_true",
                        help="time crafted worst-case emails instead, each in a fresh subprocess")
    parser.add_argument("--shapes", default="", help="with --adversarial: comma-separated shape names (default all)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="with --adversarial: seconds before a shape's subprocess is killed")
    args = parser.parse_args(argv)
    if args.adversarial:
        from bench.adversarial import run_all

        return run_all([name for name in args.shapes.split(",") if name] or None, args.timeout)

    root = Path(args.corpus)
    if not root.is_dir():
        parser.error(f"not a directory: {root}")
    samples = [Sample(path=p, raw=p.read_bytes()) for p in corpus_files(root)]
    if not samples:
        parser.error(f"no email files under {root}")
    rounds = max(1, args.rounds)
    if args.profile:
        profile(samples, rounds, args.profile)
        return 0
    pipeline_rounds, floor_rounds = measure(samples, rounds)

    count = len(samples)
    pipeline_total = statistics.median(pipeline_rounds)
    floor_total = statistics.median(floor_rounds)
    per_email_ratios = [s.pipeline_s / s.floor_s for s in samples if s.floor_s > 0]
    print(f"{count} emails from {root}, {rounds} rounds (median round reported)\n")
    print(table(samples, root, args.top))
    print(f"\npipeline {pipeline_total / count * 1000:.2f} ms/email, floor {floor_total / count * 1000:.2f} ms/email, "
          f"ratio {pipeline_total / floor_total:.2f}\n")
    summary = {
        "emails": count,
        "rounds": rounds,
        "bytes": sum(len(s.raw) for s in samples),
        "pipeline_s_per_email": round(pipeline_total / count, 6),
        "floor_s_per_email": round(floor_total / count, 6),
        "ratio": round(pipeline_total / floor_total, 3),
        "emails_per_second": round(count / pipeline_total, 1),
        "median_email_ratio": round(statistics.median(per_email_ratios), 3) if per_email_ratios else None,
        "slowest_email_s": round(max(s.pipeline_s for s in samples), 6),
    }
    sys.stdout.flush()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
