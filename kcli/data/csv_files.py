"""CSV files with a header line: numeric feature columns and a label column (numbers or class names), read once by
pyarrow (csv_reader.py)"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kcli.data import csv_reader
from kcli.data.checks import check_numbers, file_key, first_text, text_column
from kcli.data.splits import Arrays
from kcli.errors import DataError


def read_csv(path: Path, label: str, key: str = "data") -> Arrays:
    """A CSV file with a header line: `label` is the label column, all others are numeric features."""
    header = csv_reader.csv_header(path, key)
    if label not in header:
        raise DataError(f"{path} has no column {label!r}; columns: {', '.join(header)}", key=f"{key}.label")
    return read_csv_columns(path, header, [h for h in header if h != label], label, key)


def read_csv_columns(path: Path, header: list[str], features: list[str], label: str | None,
                     key: str) -> Arrays:
    """The named feature columns (in the order given, matched by name) and label column of a CSV file."""
    _need_columns(path, header, [*features, *([label] if label else [])], key)
    table, names = _read_body(path, header, key, header.index(label) if label else None)
    x = table[:, [header.index(c) for c in features]]
    if names is not None:   # class names: the numbers are the features only
        check_numbers(x, str(path), key, features)
        return Arrays(x, names, features)
    check_numbers(table, str(path), key, header)
    y = _label_column(table[:, header.index(label)]) if label else np.zeros(len(table), np.int64)
    return Arrays(x, y, features)


def _need_columns(path: Path, header: list[str], wanted: list[str], key: str) -> None:
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataError(f"{path} lacks the column(s) {', '.join(map(repr, missing))}; it has: {', '.join(header)}",
                        key=file_key(key))


def _text_feature(path: Path, header: list[str], label: int | None, key: str) -> DataError | None:
    """A feature column that pyarrow reads as text in the file's first block, as one line naming it."""
    import pyarrow as pa

    try:
        batch = csv_reader.open_blocks(path, csv_reader.CSV_BLOCK_BYTES).read_next_batch()
    except (pa.ArrowException, OSError, StopIteration):
        return None
    for index, name in enumerate(header[:batch.num_columns]):
        if index != label and pa.types.is_string(batch.schema.field(index).type):
            found = first_text(batch.column(index).to_pylist())
            if found is not None and found[2]:
                return text_column(path, name, found[1], found[0] + 1, key)
    return None


def _label_column(y: np.ndarray) -> np.ndarray:
    """Whole-number labels as int64 (class ids), others as read."""
    return y.astype(np.int64) if np.all(y == np.round(y)) else y


def csv_table(path: Path, header: list[str], key: str) -> np.ndarray:
    """Every data row of a CSV file as float64 numbers, checked: one line naming the row and column otherwise."""
    table, _ = _read_body(path, header, key)
    check_numbers(table, str(path), key, header)
    return table


def _read_body(path: Path, header: list[str], key: str,
               label: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The data rows of a CSV file as float64 (read by pyarrow, see csv_reader) and, when column `label` holds
    class names, those names (its column of the table is then NaN); a row that is not the header's count of
    values, with numbers where numbers belong, is one line naming it."""
    try:
        table, names = csv_reader.numbers(path, len(header), label, header=True, columns=header)
    except csv_reader.BadRow as bad:
        text = _text_feature(path, header, label, key) if not key.startswith("--") else None
        if text is not None:   # a column of text, not a bad cell: say how to train on it
            raise text from None
        must = f"{len(header)} values, numbers in the features" if bad.names else f"{len(header)} numbers"
        raise DataError(f"{path}: data row {bad.index + 1}: {bad.problem}; every row must hold {must}",
                        key=file_key(key)) from None
    if table.shape[0] == 0:
        raise DataError(f"{path} has a header but no rows", key=file_key(key))
    if table.shape[1] != len(header):
        raise DataError(f"{path}: rows have {table.shape[1]} values, the header {len(header)}", key=file_key(key))
    return table, names
