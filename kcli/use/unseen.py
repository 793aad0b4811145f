"""What `kcli predict` feeds a table model that training never showed it: category values outside the column's
vocabulary (the model maps them to its out-of-vocabulary bucket) and empty cells (the model fills them), counted
chunk by chunk per column, so a file of any size is counted in memory of a few numbers per column."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kcli.config.model_io import input_name
from kcli.config.models import ColumnConfig
from kcli.data.column_stats import MISSING_CODE

SHOWN_CHARACTERS = 40   # an example value longer than this is cut in the line


@dataclass
class _Column:
    """One feature column's vocabulary and counts."""

    kind: str
    vocabulary: Any = None   # a pyarrow array of strings, or an int64 numpy array
    unknown: int = 0
    empty: int = 0
    example: Any = None   # the first unknown value met


@dataclass
class Unseen:
    """Counts of unknown categories and empty cells per feature column, and of the rows holding any of them."""

    columns: dict[str, _Column]
    rows: int = 0        # rows with at least one unknown value or empty cell
    empty_rows: int = 0  # rows whose every feature cell is empty
    total: int = 0       # rows counted
    names: dict[str, str] = field(default_factory=dict)   # input name -> column name

    @classmethod
    def of(cls, columns: dict[str, ColumnConfig]) -> Unseen:
        """The counters for a run's `data.columns` (ignored columns are no features)."""
        import pyarrow as pa

        made: dict[str, _Column] = {}
        for name, spec in columns.items():
            if spec.kind in ("ignore", "text") or spec.kind is None:   # text: unknown words and empty text are
                continue                                                  # valid (the OOV token, no tokens)
            column = _Column(spec.kind)
            vocab = spec.vocabulary or []
            if spec.kind == "category":
                column.vocabulary = np.asarray(vocab, dtype=np.int64) if vocab and isinstance(vocab[0], int) \
                    else pa.array([str(v) for v in vocab], pa.string())
            made[name] = column
        return cls(made, names={input_name(n): n for n in made})

    def add(self, x: dict[str, np.ndarray]) -> None:
        """Count one chunk of feature arrays ((n, 1) per input name, as tables.read_split makes them)."""
        flags = []
        for key, values in x.items():
            name = self.names.get(key)
            if name is None:   # e.g. an indicator input: not a column of the file
                continue
            unknown, empty = _flags(self.columns[name], values[:, 0])
            column = self.columns[name]
            column.unknown += int(unknown.sum())
            column.empty += int(empty.sum())
            if column.example is None and unknown.any():
                column.example = values[int(np.argmax(unknown)), 0]
            flags.append((unknown, empty))
        if not flags:
            return
        self.total += len(flags[0][0])
        self.rows += int(np.logical_or.reduce([u | e for u, e in flags]).sum())
        self.empty_rows += int(np.logical_and.reduce([e for _, e in flags]).sum())

    def result(self) -> dict[str, Any]:
        """As kcli.api.predict returns it: rows, empty_rows and, per column with any, unknown / empty / example."""
        shown = {name: {"unknown": c.unknown, "empty": c.empty, "example": _plain(c.example)}
                 for name, c in self.columns.items() if c.unknown or c.empty}
        return {"rows": self.rows, "empty_rows": self.empty_rows, "columns": shown}

    def line(self) -> str | None:
        """One line for the user, None when every cell was seen in training."""
        if not self.rows:
            return None
        parts = []
        for name, c in self.columns.items():
            said = []
            if c.unknown:
                said.append(f"{_count(c.unknown, 'row')} (e.g. {_shown(c.example)})")
            if c.empty:
                said.append(_count(c.empty, "empty cell"))
            if said:
                parts.append(f"{name} {' and '.join(said)}")
        rows = f"; {_count(self.empty_rows, 'empty row')}" if self.empty_rows else ""
        return f"unseen values in {self.rows} of {self.total} rows: {', '.join(parts)}{rows}"


def _flags(column: _Column, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unknown, empty) per row of one column's chunk."""
    if column.kind == "number":
        empty = np.isnan(values.astype(np.float64))
        return np.zeros(len(values), bool), empty
    if isinstance(column.vocabulary, np.ndarray):   # whole-number codes; an empty cell was read as MISSING_CODE
        empty = values == MISSING_CODE
        return ~empty & ~np.isin(values, column.vocabulary), empty
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = pa.array(values, pa.string())   # in C: no Python loop over the rows
    empty = pc.equal(texts, "").to_numpy(zero_copy_only=False)
    known = pc.is_in(texts, value_set=column.vocabulary).to_numpy(zero_copy_only=False)
    return ~empty & ~known, empty


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _shown(value: Any) -> str:
    text = repr(_plain(value))
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS - 1] + "\u2026"
