"""The visible email as blocks in reading order: the one layout model the generic reader uses.

A block is one table cell or one run of text between block tags; a row is one visual line
(a table row, or one line of a plain-text body). Labels sit beside their value (same row) or
above it (the previous row), so `Layout` answers both: `same_row(b)`, `above(b)`, `below(b)`.
Built once per email from the lxml tree we already have (cached in `mail.cache["layout"]`),
or from text lines (plain-text bodies, a PDF's text layer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

from parsers.bounded import Cut
from parsers.message import Email, unquote_text

# The same tag sets as parsers.message.visible_text, so rows are html_text's lines.
_BLOCK_TAGS = frozenset((
    "br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table",
    "section", "article", "header", "footer", "blockquote", "pre", "ul", "ol", "hr",
))  # fmt: skip
_CELL_TAGS = frozenset(("td", "th"))
_DROP_TAGS = frozenset(("script", "style", "head", "title", "noscript", "template"))
_EMPHASIS_TAGS = frozenset(("b", "strong", "h1", "h2", "h3", "h4", "th"))
_BOLD_STYLE = re.compile(r"font-weight\s*:\s*(?:bold|[6-9]00)|font-size\s*:\s*(?:1[6-9]|[2-9]\d)px", re.I)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|max-height\s*:\s*0(?:px)?\s*(?:;|$)", re.I)
# Plain-text columns: a tab, two or more spaces, a dotted leader, or html_text's cell bar.
_COLUMNS = re.compile(r"\s*(?:\t|\s{2,}|\.{3,}|…{2,}|\s\|\s)\s*")
_PATH_DEPTH = 8  # the last tags of a block's DOM path are what repeated structure shares
# Bounds far beyond any receipt (corpus: 3 584 characters in a block, 17 135 in a layout): a
# longer block keeps its head and tail, a longer layout its first and last rows, with a warning.
MAX_BLOCK_CHARS = 10_000
MAX_LAYOUT_CHARS = 200_000
_MAX_LINE_CHARS = 4 * MAX_BLOCK_CHARS  # a text line's columns are blocks: room for a few whole ones


@dataclass(slots=True, eq=False)
class Block:
    """One cell or one line of visible text."""

    index: int  # reading order
    text: str
    row: int  # the visual line it sits on
    cell: int  # its position in that line (0: first)
    path: str = ""  # the DOM tags above it, "table/tr/td"
    emphasis: bool = False  # bold, strong, heading, a larger font
    layout: Layout | None = field(default=None, repr=False)

    @property
    def next(self) -> Block | None:
        return self.layout.block(self.index + 1) if self.layout else None

    @property
    def previous(self) -> Block | None:
        return self.layout.block(self.index - 1) if self.layout else None


@dataclass
class Layout:
    blocks: list[Block] = field(default_factory=list)
    rows: list[list[Block]] = field(default_factory=list)
    chars: int = 0  # characters of its blocks' text (the MAX_LAYOUT_CHARS bound)

    def block(self, index: int) -> Block | None:
        return self.blocks[index] if 0 <= index < len(self.blocks) else None

    def same_row(self, block: Block) -> list[Block]:
        """The other blocks of its line, left to right."""
        return [b for b in self.rows[block.row] if b is not block]

    def left_of(self, block: Block) -> list[Block]:
        """Blocks before it on its line, nearest first."""
        return [b for b in reversed(self.rows[block.row]) if b.cell < block.cell]

    def above(self, block: Block) -> Block | None:
        """The block that heads it: the same column of the line above when both lines are
        table rows of the same width, else the last block of the line above."""
        row = self.rows[block.row]
        for number in range(block.row - 1, max(block.row - 3, -1), -1):
            previous = self.rows[number]
            if not any(ch.isalnum() for b in previous for ch in b.text):
                continue  # a rule of dashes or stars between a label and its amount
            if len(row) > 1 and len(previous) == len(row):
                return previous[row.index(block)]
            return previous[-1]
        return None

    def below(self, block: Block) -> Block | None:
        """The first block of the next line."""
        return self.rows[block.row + 1][0] if block.row + 1 < len(self.rows) else None

    @property
    def lines(self) -> list[str]:
        return [" | ".join(b.text for b in row) for row in self.rows]

    def add(self, text: str, row_open: bool, path: str = "", emphasis: bool = False) -> None:
        """Append a block; `row_open` False starts a new line."""
        if len(text) > MAX_BLOCK_CHARS:
            text = f"{text[:MAX_BLOCK_CHARS * 3 // 4]} … {text[-(MAX_BLOCK_CHARS // 4):]}"
        self.chars += len(text)
        if not row_open or not self.rows:
            self.rows.append([])
        row = self.rows[-1]
        block = Block(len(self.blocks), text, len(self.rows) - 1, len(row), path, emphasis, self)
        row.append(block)
        self.blocks.append(block)


def layout_of(mail: Email) -> Layout:
    """The email's layout, built once: from the HTML tree when there is one, else the text."""
    cached = mail.cache.get("layout")
    if isinstance(cached, Layout):
        return cached
    layout = layout_from_tree(mail.tree) if mail.tree is not None and not mail.prefers_text else None
    if layout is None or not layout.blocks:
        # Not normalize_lines: its collapsed spaces are the columns of a plain-text receipt.
        text = unquote_text(mail.text).replace("\r", "").replace("\xa0", " ")
        layout = layout_from_lines([line for line in text.split("\n") if line.strip()])
    layout, cut = bounded(layout)
    if cut:
        mail.warnings.append(cut)
    mail.cache["layout"] = layout
    return layout


def bounded(layout: Layout) -> tuple[Layout, str | None]:
    """The layout within MAX_LAYOUT_CHARS: its first rows (three quarters of it) and its last
    (the totals are at the end); a warning when rows were left out."""
    if layout.chars <= MAX_LAYOUT_CHARS:
        return layout, None
    sizes = [sum(len(b.text) for b in row) for row in layout.rows]
    total = layout.chars
    head = tail = 0
    used = 0
    while head < len(sizes) and used + sizes[head] <= MAX_LAYOUT_CHARS * 3 // 4:
        used += sizes[head]
        head += 1
    used = 0
    while tail < len(sizes) - head and used + sizes[-1 - tail] <= MAX_LAYOUT_CHARS // 4:
        used += sizes[-1 - tail]
        tail += 1
    kept = Layout()
    for row in [*layout.rows[:head], *layout.rows[len(sizes) - tail:]]:
        for number, block in enumerate(row):
            kept.add(block.text, number > 0, block.path, block.emphasis)
    return kept, Cut(f"visible text of {total} characters: read its first {head} and last {tail} lines "
                     f"({len(sizes) - head - tail} left out)")


def layout_from_lines(lines: list[str]) -> Layout:
    """Plain text or a PDF's text lines: each line a row, its columns the blocks."""
    layout = Layout()
    for line in lines:
        if len(line) > _MAX_LINE_CHARS:
            # Cut before splitting: a 10 MB line would become a list of every word in it first.
            line = f"{line[:_MAX_LINE_CHARS * 3 // 4]} … {line[-(_MAX_LINE_CHARS // 4):]}"
        cells = [c for c in _COLUMNS.split(line.strip()) if c]
        for number, cell in enumerate(cells):
            layout.add(" ".join(cell.split()), row_open=number > 0)
    return layout


def layout_from_tree(tree: etree._Element) -> Layout:
    """One pass over the tree (lxml's iterwalk: the walk is in C, only events reach Python)."""
    layout = Layout()
    parts: list[str] = []
    emphasis_depth = 0
    emphasised_text = False
    row_open = False
    stack: list[str] = []
    marks: list[bool] = []  # per open element: did it turn emphasis on?

    def flush(end_row: bool) -> None:
        nonlocal row_open, emphasised_text
        # A line break inside text starts a new line, as in html_text (plain text in <pre> or none).
        for number, piece in enumerate("".join(parts).split("\n") if parts else ()):
            text = " ".join(piece.split())
            if text:
                layout.add(text, row_open and number == 0, "/".join(stack[-_PATH_DEPTH:]), emphasised_text)
                row_open = True
            elif number == 0:
                continue
            else:
                row_open = False
        parts.clear()
        emphasised_text = False
        if end_row:
            row_open = False

    walker = etree.iterwalk(tree, events=("start", "end"))
    for event, element in walker:
        tag = element.tag if isinstance(element.tag, str) else ""
        if event == "start":
            style = (element.get("style") or "") if tag else ""
            if tag in _DROP_TAGS or (style and _HIDDEN_STYLE.search(style)):
                walker.skip_subtree()
                stack.append("")
                marks.append(False)
                continue
            if tag in _BLOCK_TAGS:
                flush(end_row=True)
            elif tag in _CELL_TAGS:
                flush(end_row=False)
            emphasis = tag in _EMPHASIS_TAGS or bool(style and _BOLD_STYLE.search(style))
            emphasis_depth += emphasis
            marks.append(emphasis)
            stack.append(tag)
            if element.text and tag:
                parts.append(element.text)
                emphasised_text = emphasised_text or (emphasis_depth > 0 and not element.text.isspace())
        else:
            if stack[-1] and tag in _BLOCK_TAGS:
                flush(end_row=True)
            elif stack[-1] and tag in _CELL_TAGS:
                flush(end_row=False)
            stack.pop()
            emphasis_depth -= marks.pop()
            if element.tail:
                parts.append(element.tail)
    flush(end_row=True)
    return layout
