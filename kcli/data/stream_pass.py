"""The pass over a streamed table's files before training: what the model needs from the training files
(column kinds from the first block, statistics, class names, the row count) and the rows of the validation and
test files, each file's rows cached as read (stream_cache.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kcli.config.model_io import input_name
from kcli.config.models import ColumnConfig, DataConfig
from kcli.data import column_stats, tables
from kcli.data.checks import file_key
from kcli.data.column_stats import ColumnStats
from kcli.data.stream import blocks
from kcli.data.stream_cache import Cache
from kcli.data.table_files import TableFile
from kcli.errors import DataError


def split_pass(files: list[TableFile], data: DataConfig, key: str, label: str | None, weights: bool,
               cache: Cache | None = None, ids: ClassIds | None = None) -> int:
    """One pass over a validation / test split's files: its rows (so that Keras knows the number of batches;
    with an unknown number Keras 3.15 warns that the input "ran out of data" after every validation), cached;
    its class ids counted into `ids`."""
    ids = ids if ids is not None else ClassIds()
    rows = 0
    for path in files:
        writer = cache.writer(path) if cache is not None else None
        first_row = 0
        for block in blocks(path, data.source, key, data.features):
            if writer is not None:
                arrays = tables.read_split(block, data.columns or {}, path, key, label,
                                           data.sample_weight if weights else None, first_row)
                writer.write(arrays)
                ids.add(np.asarray(arrays.y), path, first_row)
            else:
                ids.add(tables.read_labels(block, path, key, label, first_row), path, first_row)
            first_row += block.num_rows
        if writer is not None:
            writer.close()
        rows += first_row
    if rows == 0:
        raise DataError(f"{files[0]} has a header but no rows", key=file_key(key))
    return rows


@dataclass
class ClassIds:
    """The smallest and largest class id among a split's labels (whole numbers) and the data row of each."""

    low: int | None = None
    high: int | None = None
    low_at: str = ""
    high_at: str = ""

    def add(self, y: np.ndarray, path: TableFile, first_row: int) -> None:
        """Count one block's labels (class names or other numbers are not ids: ignored)."""
        if y.dtype.kind not in "iu" or not len(y):
            return
        low, high = int(y.min()), int(y.max())
        if self.low is None or low < self.low:
            self.low, self.low_at = low, f"{path}: data row {first_row + int(np.argmin(y)) + 1}"
        if self.high is None or high > self.high:
            self.high, self.high_at = high, f"{path}: data row {first_row + int(np.argmax(y)) + 1}"

    def outside(self, classes: int) -> str | None:
        """Where a class id outside 0..classes-1 is (`FILE: data row N holds ID`), or None."""
        if self.low is not None and self.low < 0:
            return f"{self.low_at} holds {self.low}"
        if self.high is not None and self.high >= classes:
            return f"{self.high_at} holds {self.high}"
        return None


@dataclass
class Learned:
    """What one pass over the training files found."""

    columns: dict[str, ColumnConfig]
    stats: dict[str, ColumnStats]
    rows: int
    class_names: list[str] | None
    labels: str = "ids"   # ids | names | values
    largest_id: int = 0   # the largest class id among the labels (ids)
    ids: ClassIds | None = None   # the range of the class ids and where they are
    file_rows: list[int] | None = None   # the rows of each file (to split the table among workers)


def learn(files: list[TableFile], data: DataConfig, cache: Cache | None = None, numbers_only: bool = False) -> Learned:
    """One pass over the training files: kinds (from the first block), statistics, class names, rows (and the
    rows as read into `cache`). `numbers_only` (model.input_shape): a text column is one line from the first
    block."""
    columns: dict[str, ColumnConfig] | None = None
    stats: dict[str, ColumnStats] = {}
    names: set[str] = set()
    labels = "ids"
    rows = largest = 0
    ids = ClassIds()
    file_rows: list[int] = []
    for path in files:
        first_row = 0
        writer = cache.writer(path) if cache is not None else None
        for block in blocks(path, data.source, "data", data.features):
            if columns is None:
                columns = tables.infer(block, data, path)
                if numbers_only:
                    tables.only_numbers(block, columns, path, "data")
                stats = column_stats.new_stats(columns)
            arrays = tables.read_split(block, columns, path, "data", data.label, data.sample_weight, first_row)
            assert isinstance(arrays.x, dict)
            if writer is not None:
                writer.write(arrays)
            for name, column in stats.items():
                column.add(arrays.x[input_name(name)], columns[name].kind)
            y = np.asarray(arrays.y)
            if y.dtype.kind == "U":
                names.update(y.tolist())
                labels = "names"
            elif y.dtype.kind == "f":
                labels = "values"
            elif len(y):
                largest = max(largest, int(y.max()))
            ids.add(y, path, first_row)
            first_row += block.num_rows
        if writer is not None:
            writer.close()
        rows += first_row
        file_rows.append(first_row)
    if columns is None or rows == 0:
        raise DataError(f"{files[0]} has a header but no rows", key="data.path")
    return Learned(columns, stats, rows, sorted(names) if names else None, labels, largest, ids, file_rows)
