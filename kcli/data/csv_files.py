"""CSV files with a header line: numeric feature columns and a label column (numbers or class names)."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np

from kcli.data.checks import _file_key, check_numbers, first_bad_row, is_number
from kcli.data.splits import Arrays
from kcli.errors import DataError


def csv_header(path: Path, key: str = "data") -> list[str]:
    """The column names of a CSV file (its first line)."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), None)
    except FileNotFoundError:
        raise DataError(f"data file not found: {path}", key=_file_key(key)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}", key=_file_key(key)) from None
    except csv.Error as exc:   # "field larger than field limit (131072)": a huge cell or a quote left open
        raise DataError(f"cannot read the first line of {path}: {exc}", key=_file_key(key)) from None
    if not header:
        raise DataError(f"{path} is empty; expected a header line with column names", key=_file_key(key))
    return [h.strip() for h in header]


def read_csv(path: Path, label: str, key: str = "data") -> Arrays:
    """A CSV file with a header line: `label` is the label column, all others are numeric features."""
    header = csv_header(path, key)
    if label not in header:
        raise DataError(f"{path} has no column {label!r}; columns: {', '.join(header)}", key=f"{key}.label")
    return read_csv_columns(path, header, [h for h in header if h != label], label, key)


def read_csv_columns(path: Path, header: list[str], features: list[str], label: str | None,
                     key: str) -> Arrays:
    """The named feature columns (in the order given, matched by name) and label column of a CSV file."""
    _need_columns(path, header, [*features, *([label] if label else [])], key)
    names = _class_names_column(path, header.index(label)) if label else None
    if names is not None:   # class names: the numbers are the features only
        table = csv_table(path, header, key, [header.index(c) for c in features])
        return Arrays(table, names, features)
    table = csv_table(path, header, key)
    y = _label_column(table[:, header.index(label)]) if label else np.zeros(len(table), np.int64)
    return Arrays(table[:, [header.index(c) for c in features]], y, features)


def _class_names_column(path: Path, index: int) -> np.ndarray | None:
    """The label column as strings when it holds class names (any value that is not a number), else None."""
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        rows = csv.reader(fh)
        next(rows, None)
        values = [row[index].strip() for row in rows if row and any(v.strip() for v in row) and len(row) > index]
    if all(is_number(v) for v in values):
        return None
    return np.array(values, dtype=str)


def _need_columns(path: Path, header: list[str], wanted: list[str], key: str) -> None:
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataError(f"{path} lacks the column(s) {', '.join(map(repr, missing))}; it has: {', '.join(header)}",
                        key=_file_key(key))


def _label_column(y: np.ndarray) -> np.ndarray:
    """Whole-number labels as int64 (class ids), others as read."""
    return y.astype(np.int64) if np.all(y == np.round(y)) else y


def csv_table(path: Path, header: list[str], key: str, columns: list[int] | None = None) -> np.ndarray:
    """Every data row of a CSV file as float64 numbers (only `columns`, by index, when given), checked: one line
    naming the row and column otherwise."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)   # loadtxt warns about an empty file
            table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2, usecols=columns)
    except ValueError:
        row, problem = first_bad_row(path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[-1],
                                     len(header), header, columns)
        must = f"{len(header)} numbers" if columns is None else f"{len(header)} values, numbers in the features"
        raise DataError(f"{path}: data row {row + 1}: {problem}; every row must hold {must}",
                        key=_file_key(key)) from None
    if table.shape[0] == 0:
        raise DataError(f"{path} has a header but no rows", key=_file_key(key))
    names = header if columns is None else [header[i] for i in columns]
    if table.shape[1] != len(names):
        raise DataError(f"{path}: rows have {table.shape[1]} values, the header {len(header)}", key=_file_key(key))
    check_numbers(table, str(path), key, names)
    return table
