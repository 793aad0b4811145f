"""summary.txt: a model summary as plain ASCII tables (the layers, the parameter counts, the trainable variables).

The same text Rich drew for it before (ASCII boxes on a 100-column page, Rich's way of narrowing and wrapping a
table that is wider), as plain string formatting, so training writes it without the terminal's drawing code
(tests/model/test_summary_text.py compares the two). Cut points assume one column per character: only a name
of wide (East Asian) characters in a table wider than the page may be cut elsewhere than Rich cut it. Names are
data: control characters show as their escapes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kcli.errors import visible

if TYPE_CHECKING:   # keras stays unloaded: the text needs the summary's fields only
    from kcli.model.summary import ModelSummary

WIDTH = 100   # the page summary.txt is laid out for


def as_text(summary: ModelSummary) -> str:
    """The summary of summary.txt: the layer table, the parameter totals, the trainable variables."""
    graph = any(row.connected for row in summary.rows)
    frozen = any(row.frozen for row in summary.rows)
    header = ["Layer (type)", "Output Shape", "Param #", *(["Connected to"] if graph else []),
              *(["Trainable"] if frozen else [])]
    rows = [[f"{row.name} ({row.kind})", row.output_shape, f"{row.params:,}",
             *([row.connected or "-"] if graph else []), *([row.frozen or "yes"] if frozen else [])]
            for row in summary.rows]
    layers = _table(f'Model: "{summary.name}"', header, rows, right={2})
    totals = (f" Total params: {summary.total:,}\n Trainable params: {summary.trainable:,}\n"
              f" Non-trainable params: {summary.non_trainable:,}\n")
    variables = _table("Trainable variables", ["Variable", "Shape"],
                       [[path, str(shape)] for path, shape, trainable in summary.variables if trainable])
    return layers + totals + variables


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int] = frozenset()) -> str:
    """An ASCII-boxed table under a left-aligned title, each column as wide as its widest cell; a table wider than
    the page has its widest columns narrowed and their cells wrapped (a word too long for its column is cut
    with "…"), as Rich lays out tables."""
    cells = [[visible(c) for c in row] for row in [header, *rows]]
    widths = _column_widths([[_width(row[i]) for row in cells] for i in range(len(header))])
    inner = sum(w + 2 for w in widths) + len(widths) - 1

    def lines(row: Sequence[str]) -> list[str]:
        wrapped = [_wrap(c, w, i in right, fold=False) for i, (c, w) in enumerate(zip(row, widths))]
        height = max(len(cell) for cell in wrapped)
        wrapped = [cell + [" " * w] * (height - len(cell)) for cell, w in zip(wrapped, widths)]
        return ["| " + " | ".join(parts) + " |" for parts in zip(*wrapped)]

    out = [*_wrap(visible(title), inner + 2, False, fold=True), f"+{'-' * inner}+", *lines(cells[0]),
           "|" + "+".join("-" * (w + 2) for w in widths) + "|", *(ln for row in cells[1:] for ln in lines(row)),
           f"+{'-' * inner}+"]
    return "\n".join(out) + "\n"


def _column_widths(columns: list[list[int]]) -> list[int]:
    """The text width of each column: its widest cell, or less when the table would be wider than WIDTH (the
    widest columns give up room first, then all alike)."""
    room = WIDTH - len(columns) - 1   # inside the box's edges
    widths = [min(max(cells) + 2, room) for cells in columns]   # with a space of padding on either side
    natural = list(widths)
    if sum(widths) > room:
        widths = _narrowed(widths, room)
        if sum(widths) > room:
            widths = _reduce(sum(widths) - room, [1] * len(widths), widths, widths)
        widths = [min(w, n) for w, n in zip(widths, natural)]
    return [w - 2 for w in widths]


def _narrowed(widths: list[int], room: int) -> list[int]:
    """Narrow the widest columns to the next widest, and so on, until the table fits in `room`."""
    excess = sum(widths) - room
    while sum(widths) and excess > 0:
        widest = max(widths)
        second = max(w if w != widest else 0 for w in widths)
        if not widest - second:
            break
        ratios = [1 if w == widest else 0 for w in widths]
        widths = _reduce(excess, ratios, [min(excess, widest - second)] * len(widths), widths)
        excess = sum(widths) - room
    return widths


def _reduce(total: int, ratios: list[int], maximums: list[int], values: list[int]) -> list[int]:
    """Take `total` off `values` in proportion to `ratios`, at most `maximums` each (rounding as Rich does)."""
    ratios = [r if m else 0 for r, m in zip(ratios, maximums)]
    left, share, result = total, sum(ratios), []
    for ratio, maximum, value in zip(ratios, maximums, values):
        if ratio and share > 0:
            taken = min(maximum, round(ratio * left / share))
            result.append(value - taken)
            left, share = left - taken, share - ratio
        else:
            result.append(value)
    return result


def _wrap(text: str, width: int, right: bool, fold: bool) -> list[str]:
    """`text` word-wrapped into lines of exactly `width` columns; a word longer than a line is cut into pieces
    (`fold`) or cut short with "…"."""
    breaks = _breaks(text, width, fold)
    lines = []
    for line in (text[a:b] for a, b in zip([0, *breaks], [*breaks, len(text)])):
        if len(line) > width:   # spaces that end a line beyond its width go
            line = line[:len(line) - min(len(line) - len(line.rstrip()), len(line) - width)]
        line = _cut(line.rstrip() if right else line, width, fold)
        gap = " " * (width - _width(line))
        lines.append(gap + line if right else line + gap)
    return lines


def _breaks(text: str, width: int, fold: bool) -> list[int]:
    """Where lines of at most `width` columns begin: at words, and inside a word too long for a line (`fold`)."""
    breaks: list[int] = []
    used = 0
    for match in re.finditer(r"\s*\S+\s*", text):
        start, word = match.start(), match.group()
        length = _width(word.rstrip())
        if width - used >= length:
            used += _width(word)
        elif length > width:
            pieces = [word[i:i + width] for i in range(0, len(word), width)] if fold else [word]
            for piece in pieces:
                if start:
                    breaks.append(start)
                start += len(piece)
            used = _width(pieces[-1])
        elif used and start:
            breaks.append(start)
            used = _width(word)
    return breaks


def _cut(line: str, width: int, fold: bool) -> str:
    if _width(line) <= width:
        return line
    return line[:width] if fold else line[:width - 1] + "…"


def _width(text: str) -> int:
    """Terminal columns: wide East Asian characters take two, combining marks none."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)
