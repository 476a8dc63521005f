"""The joint choice of total and breakdown: the assignment whose arithmetic closes.

Summary candidates (parsers.candidates) are cut into runs, each a breakdown ending in a total
(or the amount charged): "Subtotal / Shipping / Tax / Total". A run closes when some of its
breakdown adds up to its total (subtotal + shipping + tax + fees - discount = total, within
rounding; VAT may already be inside). Several closed runs are several orders in one email:
their sum is what was charged. Where totals conflict and nothing closes, the selector
abstains: an emitted total must be right.

In a closed breakdown every line in the sum lands in a field, so subtotal + shipping + tax +
fees - discount = total holds for the reader: unnamed lines are items (part of the subtotal),
fees between labelled charges, or discounts when negative; a breakdown that adds up to a
"total per passenger" is counted once per passenger; "$x + Taxes $y" under a line's amount
stands for that line. Points or credit that paid everything make a total of 0 only where
"$0.00" is charged or no card and no amount follow at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from itertools import combinations

from parsers.candidates import BREAKDOWN, MONEY, Candidate, label_role

# Words of a payment made with something other than money.
REDEMPTION = frozenset(("points", "points redeemed", "rewards", "credit applied", "gift card", "punkte", "points fidélité"))

TOLERANCE = Decimal("0.02")  # rounding of per-line taxes (only where a tax line is in the sum)
MAX_COMPONENTS = 12  # the breakdown lines a run looks back on (2**12 subsets at most)
STRONG = 0.6  # a total label of its own ("Total", "Amount paid"), not a bare "Amount"
_TOTALS = ("total", "paid_with")
_COMPONENTS = (*BREAKDOWN, "partial")


@dataclass
class Run:
    """A breakdown and the total(s) that close it."""

    components: list[Candidate]
    totals: list[Candidate]
    total: Decimal | None = None
    closed: bool = False
    used: list[Candidate] = field(default_factory=list)  # the breakdown lines that add up
    charged_discount: Decimal | None = None  # total minus the smaller amount charged
    after: list[Candidate] = field(default_factory=list)  # a breakdown printed after the total
    items_subtotal: Decimal | None = None  # the items' sum, standing in for an unprinted subtotal
    note: str = ""

    @property
    def strength(self) -> float:
        return max((c.score for c in self.totals), default=0.0)


@dataclass
class Selection:
    total: Decimal | None = None
    subtotal: Decimal | None = None
    shipping: Decimal | None = None
    tax: Decimal | None = None
    fees: Decimal | None = None
    discount: Decimal | None = None
    closed: bool = False
    confidence: float = 0.0
    warnings: list[str] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    chosen: list[Run] = field(default_factory=list)


def signed(candidate: Candidate) -> Decimal:
    """A breakdown line's effect on the total: discounts subtract however they are printed."""
    return -abs(candidate.amount) if candidate.role == "discount" else candidate.amount


def closing_subset(components: Sequence[Candidate], total: Decimal,
                   items_sum: Decimal | None = None) -> list[Candidate] | None:
    """The largest set of breakdown lines that adds up to `total`, or None.

    A single line closes only when it is a subtotal (the total of a one-line breakdown)."""
    recent = list(components[-MAX_COMPONENTS:])
    # Labelled lines first (the most of them that add up); unnamed charges and per-person
    # totals only when the labelled lines alone do not close.
    labelled = [c for c in recent if c.role in BREAKDOWN]
    for pool in (labelled, recent) if len(labelled) < len(recent) else (labelled,):
        values = [signed(c) for c in pool]
        for size in range(len(pool), 0, -1):
            for chosen in combinations(range(len(pool)), size):
                if size == 1 and pool[chosen[0]].role != "subtotal":
                    continue
                if pool is recent and not any(pool[i].role in BREAKDOWN for i in chosen):
                    continue  # unnamed amounts alone adding up is a coincidence, not a breakdown
                if _equal(sum((values[i] for i in chosen), Decimal(0)), total, [pool[i] for i in chosen]):
                    return [pool[i] for i in chosen]
    if items_sum is not None and items_sum > 0:
        # The items stand in for a subtotal the email does not print.
        rest = [c for c in labelled if c.role != "subtotal"]
        for size in range(min(len(rest), 6), -1, -1):
            for chosen in combinations(rest, size):
                if _equal(items_sum + sum((signed(c) for c in chosen), Decimal(0)), total, chosen):
                    return list(chosen)
    return None


def _equal(value: Decimal, total: Decimal, lines: Sequence[Candidate]) -> bool:
    """Equal to the cent, or within TOLERANCE where a tax line may have been rounded."""
    slack = TOLERANCE if any(c.role == "tax" for c in lines) else Decimal(0)
    return abs(value - total) <= slack


def runs_of(candidates: Sequence[Candidate]) -> list[Run]:
    """Cut the summary candidates into breakdown -> total runs, in reading order."""
    runs: list[Run] = []
    pending: list[Candidate] = []
    for candidate in candidates:
        role = candidate.role
        if role in _TOTALS and candidate.amount >= 0:
            if runs and not pending:
                runs[-1].totals.append(candidate)  # "Total / Payment" or a repeated total
            else:
                runs.append(Run(components=pending, totals=[candidate]))
                pending = []
        elif role in _COMPONENTS:
            pending.append(candidate)
        elif role == "item":
            # An unnamed charge in a breakdown ("Black car fund $0.75", "Seat 12A $35.99").
            pending.append(candidate)
    if runs and pending:
        runs[-1].components.extend(c for c in pending if c.role == "discount")  # "-$300 credit" after it
        runs[-1].after = [c for c in pending if c.role != "discount"]
    return runs


def _settle(run: Run, items_sum: Decimal | None) -> None:
    """Which of the run's totals it stands for, and whether its breakdown adds up."""
    amounts = list(dict.fromkeys(c.amount for c in run.totals))
    stated = [c for c in run.totals if c.role == "total" and c.score >= STRONG and c.amount > 0]
    free = [c for c in run.totals if c.role == "paid_with" and c.amount == 0]
    if stated and free and free[-1].position > stated[0].position and _reduced(run, stated[0], free[-1]):
        # "Trip total $550 / Points redeemed / Charged to card $0.00": the points paid it all.
        run.total, run.charged_discount = Decimal(0), stated[0].amount
        run.note = f"{stated[0].amount} paid with points or credit, {free[-1].text} charged"
        return
    if len(amounts) > 1:
        amounts = [a for a in amounts if a != 0] or amounts  # "Total due $0.00" after a payment
    before = [c for c in run.components if c.position < run.totals[0].position]
    closing = {a: closing_subset(before, a, items_sum) for a in amounts}
    if len(amounts) == 1:
        run.total = amounts[0]
    else:
        # The amount charged after a total, smaller than it (points, credit, a gift card paid the rest).
        paid = [c for c in run.totals if c.role == "paid_with"]
        stated = [c for c in run.totals if c.role == "total" and c.score >= STRONG]
        if paid and stated and paid[-1].amount < stated[0].amount and paid[-1].position > stated[0].position \
                and _reduced(run, stated[0], paid[-1]):
            run.total = paid[-1].amount
            run.charged_discount = stated[0].amount - paid[-1].amount
            run.used = closing.get(stated[0].amount) or []
            run.closed = closing.get(stated[0].amount) is not None
            run.items_subtotal = _stood_in(run, stated[0].amount, items_sum)
            run.note = f"charged {run.total} of a total of {stated[0].amount}"
            return
        closes = [a for a in amounts if closing[a] is not None]
        best = max(c.score for c in run.totals)
        if len(closes) == 1 and max(c.score for c in run.totals if c.amount == closes[0]) < best:
            closes = []  # what adds up is not what the strongest label calls the total
        if len(closes) != 1:
            run.note = "conflicting totals " + ", ".join(str(a) for a in amounts)
            return
        run.total = closes[0]
    run.used = closing.get(run.total) or []
    run.closed = closing.get(run.total) is not None
    run.items_subtotal = _stood_in(run, run.total, items_sum)
    if not run.closed and run.after and len(amounts) == 1:
        # The total first, its breakdown under it ("Amount $32 / ... / Subtotal $32").
        after = closing_subset(run.after, run.total)
        if after is not None:
            run.used, run.closed = after, True
    if run.total and not any(c.role == "paid_with" for c in run.totals) and _redeemed_after(run.totals[-1]):
        # "Trip total $550 / Points redeemed 41,838 pts": what was paid is unknown. A total of 0
        # needs "$0.00" charged, in the email; an email that names no charge is not guessed at.
        run.note = f"part of {run.total} was paid with points or credit and the amount charged is not stated"
        run.total, run.closed, run.used = None, False, []


def _stood_in(run: Run, total: Decimal | None, items_sum: Decimal | None) -> Decimal | None:
    """The items' sum when it, not a printed line, made the breakdown add up to `total`."""
    if not run.closed or total is None or items_sum is None or any(c.role == "subtotal" for c in run.used):
        return None
    lines = sum((signed(c) for c in run.used), Decimal(0))
    return items_sum if not _equal(lines, total, run.used) and _equal(items_sum + lines, total, run.used) else None


def _reduced(run: Run, stated: Candidate, paid: Candidate) -> bool:
    """A credit, points or a gift card stands between a total and the smaller amount charged."""
    if any(c.role == "discount" and c.position > stated.position for c in run.components):
        return True
    layout = stated.block.layout
    if layout is None:
        return False
    # between the two, or in the few lines after the payment ("Travel credit applied -$300")
    last_row = paid.block.row + 3
    for block in layout.blocks[stated.position + 1:]:
        if block.row > last_row:
            break
        if label_role(block.text)[0] == "discount":
            return True
    return False


def _redeemed_after(total: Candidate, rows: int = 3) -> bool:
    """A points/credit line (with no money of its own) within a few lines after the total."""
    layout = total.block.layout
    if layout is None:
        return False
    last_row = total.block.row + rows
    for block in layout.blocks[total.position + 1:]:
        if block.row > last_row:
            break
        role, phrase = label_role(block.text)
        if role == "paid_with" or (MONEY.search(block.text) and role != "discount"):
            return False
        if role == "discount" and phrase in REDEMPTION:
            return True
    return False


def _with_details(candidates: Sequence[Candidate]) -> list[Candidate]:
    """A line detailed as "$87.44 + Taxes & fees $31.16" under its amount ($118.60): the
    detail's two amounts stand for it in the breakdown, so its tax is read and the line is
    not counted twice."""
    found: list[Candidate | None] = list(candidates)
    for index in range(2, len(candidates)):
        tax, base = candidates[index], candidates[index - 1]
        if tax.role != "tax" or tax.label_from != "same" or not tax.label.startswith("+"):
            continue
        if base.block is not tax.block or base.amount <= 0 or base.role not in (None, "item"):
            continue
        whole = base.amount + tax.amount
        parent = next((i for i in range(index - 2, max(index - 5, -1), -1) if candidates[i].amount == whole), None)
        if parent is None or candidates[parent].role not in (None, "item") or found[parent] is None:
            continue
        found[parent] = None
        found[index - 1] = replace(base, roles={"item": 0.3})
    return [c for c in found if c is not None]


def select(candidates: Sequence[Candidate], items_sum: Decimal | None = None,
           item_totals: Sequence[Decimal] = ()) -> Selection:
    """The total and its breakdown, or an abstention with the reason."""
    summary = [c for c in _with_details(candidates)
               if c.role in _TOTALS or c.role in _COMPONENTS or c.role == "item"]
    runs = runs_of(summary)
    selection = Selection(runs=runs)
    if not runs:
        return selection
    for run in runs:
        _settle(run, items_sum)
    conflicted = [r for r in runs if r.total is None]
    settled = _merged([r for r in runs if r.total is not None])
    closed = [r for r in settled if r.closed]
    closed_sum = sum((r.total for r in closed), Decimal(0))
    kept = []
    for run in settled:
        parts = {signed(c) for r in closed if r is not run for c in r.used}
        if run.total in parts:
            continue  # the total of one line of a larger breakdown ("Seat selection ... Total $105")
        if not run.closed and len(closed) > 1 and run.total == closed_sum:
            continue  # the grand total of several orders, each read on its own
        if not run.closed and any(r.total is not None and r.total > run.total and
                                  any(c.role == "subtotal" and c.amount == run.total for c in r.components)
                                  for r in settled if r is not run and r.totals[0].position > run.totals[0].position):
            continue  # "Total $5.99" heading what later reads "Subtotal $5.99 / Paid $6.32"
        kept.append(run)
    if conflicted and not any(r.closed for r in kept):
        # Totals that disagree somewhere, and nothing elsewhere that adds up to outweigh them.
        selection.warnings.append(f"total not read: {conflicted[0].note} and nothing adds up")
        return selection
    if len(kept) > 1:
        weak = [r for r in kept if not r.closed and r.strength < STRONG]
        strong = [r for r in kept if r not in weak]
        if all(r.closed for r in strong) and strong:
            kept = strong
    if not kept:
        return selection
    grand = _grand_total(kept)
    if grand is not None:
        grand.closed = True  # it is the sum of the others: the arithmetic closes across orders
        grand.note = "the sum of " + ", ".join(str(r.total) for r in kept if r is not grand)
        kept = [grand]
    if len(kept) > 1 and not all(r.closed for r in kept):
        amounts = ", ".join(str(r.total) for r in kept)
        selection.warnings.append(f"total not read: candidates {amounts} conflict and nothing adds up")
        return selection
    if len(kept) == 1 and not kept[0].closed:
        run = kept[0]
        if run.strength < STRONG and run.charged_discount is None:
            selection.warnings.append(f"total not read: only a weak label ({run.totals[0].label!r}) names {run.total}")
            return selection
        if len(item_totals) > 1 and run.total in item_totals and sum(item_totals) != run.total:
            selection.warnings.append(f"total not read: {run.total} is one item's price of several")
            return selection
    _fill(selection, kept)
    if len(kept) > 1:
        selection.warnings.append(f"{len(kept)} orders in one email: the total is the sum of their totals")
    return selection


def _grand_total(runs: list[Run]) -> Run | None:
    """The run whose total is the sum of all the other runs' totals ("You sent a total of
    £9.23" over three payments of £1.99, £3.75 and £3.49)."""
    if len(runs) < 3:
        return None
    whole = sum((r.total for r in runs if r.total is not None), Decimal(0))
    found = [r for r in runs if r.total is not None and r.total * 2 == whole]
    return found[0] if len(found) == 1 else None


def _merged(runs: list[Run]) -> list[Run]:
    """Runs that end in the same amount are one total said twice (a header and a summary, an
    email's mobile and desktop copies): keep one, closed if either closed, the one whose
    breakdown explains the most lines, then the strongest label."""
    by_total: dict[Decimal | None, Run] = {}
    for run in runs:
        first = by_total.setdefault(run.total, run)
        if first is run:
            continue
        # The copy that explains the most lines wins: "Total 21.66" at the top and the
        # "Subtotal 21.66 / Tax 0.00 / Total 21.66" at the bottom are one total.
        if (run.closed, len(run.used), run.strength) > (first.closed, len(first.used), first.strength):
            run.totals = [*first.totals, *run.totals]
            by_total[run.total] = run
        else:
            first.totals.extend(run.totals)
    return list(by_total.values())


_CHARGES = ("shipping", "tax", "fees")


def _counts_as(line: Candidate, run: Run) -> str | None:
    """The breakdown field a closing line goes to: an unnamed charge between labelled charges
    after the subtotal ("Trip fare / Surcharge / Black car fund $0.75 / Sales tax") is a fee,
    since it is in the sum; a negative one is a discount; any other is an item, part of the subtotal."""
    if line.role != "item" or not run.closed:
        return line.role
    if line.amount < 0:
        return "discount"  # "Campaign XYZ -€1.50": an unnamed reduction
    subtotal = [c.position for c in run.used if c.role == "subtotal"]
    charges = [c.position for c in run.used if c.role in _CHARGES]
    if subtotal and min(subtotal) < line.position and any(p < line.position for p in charges) \
            and any(p > line.position for p in charges):
        return "fees"
    return "subtotal"


def _per_unit(run: Run) -> int:
    """How many times a closed breakdown is charged: a fare and its taxes adding up to a
    "Total per passenger" that the total is a whole multiple of (two passengers: 2)."""
    parts = [c for c in run.used if c.role == "partial"]
    if not run.closed or not parts or run.total is None or len({c.amount for c in parts}) != 1:
        return 1
    unit = parts[0].amount
    lines = sum((signed(c) for c in run.used if c.role != "partial"), Decimal(0))
    if unit <= 0 or lines != unit or run.total % unit != 0:
        return 1
    return int(run.total / unit)


def _fill(selection: Selection, runs: list[Run]) -> None:
    selection.chosen = runs
    selection.total = sum((r.total for r in runs if r.total is not None), Decimal(0))
    selection.closed = all(r.closed for r in runs)
    for role in BREAKDOWN:
        values = []
        for run in runs:
            used = [c for c in run.used if _counts_as(c, run) == role]
            if not used and not run.closed:
                # Unclosed: a breakdown line counts only when it is the one line of its kind.
                distinct = {c.amount for c in run.components if c.role == role}
                used = [c for c in run.components if c.role == role][:1] if len(distinct) == 1 else []
            # A closed run's tax line outside the sum is VAT inside the total ("dont TVA"): not
            # reported, since subtotal + shipping + tax - discount = total is what a reader checks.
            times = _per_unit(run)
            values.extend((abs(c.amount) if role == "discount" else c.amount) * times for c in used)
            if role == "subtotal" and run.items_subtotal is not None and len(runs) == 1 and run.used:
                values.append(run.items_subtotal)  # subtotal + shipping + tax - discount = total holds
        if role == "discount":
            values.extend(r.charged_discount for r in runs
                          if r.charged_discount and not any(_counts_as(c, r) == "discount" for c in r.used))
        if values:
            setattr(selection, role, sum(values, Decimal(0)))
    # What was paid with points or credit, said where the amount charged is smaller than the total.
    selection.warnings.extend(r.note for r in runs if r.note and r.charged_discount)
    if selection.closed:
        selection.confidence = 0.8
    else:
        selection.confidence = 0.5 if all(r.strength >= STRONG for r in runs) else 0.4
        parts = ", ".join(f"{c.label or c.role} {c.amount}" for r in runs for c in r.components[-6:])
        selection.warnings.append(f"did not add up: {parts or 'no breakdown'} -> total {selection.total}")
