"""What `kcli predict` reads: .npy, .npz and .csv inputs in chunks, checked and laid out as the run was trained.

CSV blocks are parsed by the one CSV reader (data/csv_reader.py: pyarrow, and a row-naming fallback where it refuses
a block) on background threads while the model predicts, so a file of millions of rows streams in bounded memory.
A first line of numbers is data (no header); rows with NaN or inf, or that are not numbers, are errors naming the
data row and column. (An .npz input is read whole: numpy cannot
map compressed members.)
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kcli.config import model_io as ports_mod
from kcli.data import checks, csv_files, csv_reader, tables
from kcli.data.load import read_table_file
from kcli.data.npz_files import read_npz_arrays
from kcli.data.prepare import scale_features
from kcli.errors import DataError
from kcli.files import readable
from kcli.run import find

CHUNK_ROWS = 8192                # rows per chunk of an .npy/.npz input
BLOCK_ROWS = 32768               # rows per block of a CSV input (sized in bytes from the average line)
MAX_LINE_BYTES = 16 << 20        # a longer CSV line is refused (and no block grows past a few of these)
# The CPUs this process may run on (inside a container os.cpu_count() is the host's), capped: more threads
# only hold more blocks in memory once the model is the bottleneck.
PARSE_THREADS = min(8, max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2))


@dataclass
class InputFile:
    """A prediction input: its row count, label column name (if any), and a chunk iterator."""

    rows: int
    label: str | None
    chunks: Iterator[tuple[np.ndarray, np.ndarray | None]]


def open_input(path: Path, run: find.FinishedRun, label: str | None) -> InputFile:
    """Open .npy / .npz / .csv input with the run's feature layout; checks the feature shape up front."""
    if not readable.present(path, "--input"):   # a FIFO, a device or a link loop: said as such
        raise DataError(f"input file not found: {path}", key="--input")
    suffix = path.suffix.lower()
    if run.ports.tabular:
        return _table_input(path, run, label)
    if run.ports.named:
        return _named_input(path, run, label)
    if suffix == ".npy":
        return array_input(_load_npy(path), None, None, run, str(path))
    if suffix == ".npz":
        return _npz_input(path, run)
    if suffix == ".csv":
        return _csv_input(path, run, label)
    if suffix in (".parquet", ".pq"):
        return _parquet_input(path, run, label)
    raise DataError(f"{path}: expected a .csv, .parquet, .npy or .npz file", key="--input")


def _load_npy(path: Path) -> np.ndarray:
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # numpy raises OSError/ValueError/EOFError for empty or damaged files
        raise DataError(f"cannot read {path} as .npy: {checks.reason(exc)}", key="--input") from None
    return x


def _npz_input(path: Path, run: find.FinishedRun) -> InputFile:
    data = run.config.data
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises OSError/ValueError/BadZipFile/EOFError for damaged files
        raise DataError(f"cannot read {path} as .npz: {checks.reason(exc)}", key="--input") from None
    if not hasattr(npz, "files"):
        raise DataError(f"{path} is a single .npy array, not an .npz archive; name it .npy", key="--input")
    with npz:
        keys = [k for k in dict.fromkeys((data.x_key or "x", "x")) if k in npz.files]
        if not keys:
            raise DataError(f"{path} has no array {data.x_key or 'x'!r}; it has: {', '.join(npz.files)}",
                            key="--input")
        try:
            x = npz[keys[0]]
            y_key = data.y_key or "y"
            labels = npz[y_key] if y_key in npz.files and npz[y_key].shape[:1] == x.shape[:1] else None
        except Exception as exc:  # a truncated or corrupt member
            raise DataError(f"cannot read {path} (damaged or truncated?): {checks.reason(exc)}",
                            key="--input") from None
    if x.dtype.kind not in "biuf" or x.ndim == 0:
        raise DataError(f"{path}: array {keys[0]!r} holds {x.dtype}; expected numbers", key="--input")
    return array_input(x, labels, y_key if labels is not None else None, run)


def _table_input(path: Path, run: find.FinishedRun, label: str | None) -> InputFile:
    """Raw rows of the columns the run was trained on (.csv or .parquet, any column order, the label column
    optional): read whole, predicted in chunks; the model encodes them itself."""
    arrays, found = read_table_file(path, run.config.data, "--input", label or run.config.data.label)
    x = arrays.x
    assert isinstance(x, dict)
    labels = np.asarray(arrays.y) if found else None

    def chunks() -> Iterator[tuple[Any, np.ndarray | None]]:
        for start in range(0, ports_mod.rows(x), CHUNK_ROWS):
            end = start + CHUNK_ROWS
            yield {k: v[start:end] for k, v in x.items()}, labels[start:end] if labels is not None else None

    return InputFile(ports_mod.rows(x), found, chunks())


def _named_input(path: Path, run: find.FinishedRun, label: str | None) -> InputFile:
    """Several named inputs: an .npz with one array per input (the array the run trained on, or the input's
    name), or a CSV with a header holding each input's columns; read whole, predicted in chunks."""
    ports, data = run.ports, run.config.data
    suffix = path.suffix.lower()
    labels = None
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            names = {p.name: p.array if p.array in npz.files else p.name for p in ports.inputs}
        found = read_npz_arrays(path, list(names.values()), "--input")
        x = {p.name: found[names[p.name]] for p in ports.inputs}
    elif suffix == ".csv":
        header = csv_reader.csv_header(path, "--input")
        label = label or (data.label if data.label in header else None)
        wanted = [c for p in ports.inputs for c in p.columns or ()] + ([label] if label else [])
        missing = [c for c in wanted if c not in header]
        if missing:
            raise DataError(f"{path} lacks the column(s) {', '.join(missing)} that the model's inputs take; it has: "
                            f"{', '.join(header)}", key="--input")
        table = csv_files.csv_table(path, header, "--input")
        x = {p.name: table[:, [header.index(c) for c in p.columns or ()]] for p in ports.inputs}
        labels = table[:, header.index(label)] if label else None
    else:
        raise DataError(f"{path}: a model with named inputs predicts from an .npz (one array per input) or a "
                        ".csv with the input columns", key="--input")
    checks.check_inputs(x, ports, "the input's features", "--input")
    dtypes = {p.name: p.dtype for p in ports.inputs}

    def chunks() -> Iterator[tuple[Any, np.ndarray | None]]:
        for start in range(0, ports_mod.rows(x), CHUNK_ROWS):
            end = start + CHUNK_ROWS
            yield ({k: scale_features(v[start:end], data.scale, dtypes[k], f"{path}: input {k!r}",
                                               "--input", start + 1) for k, v in x.items()},
                   labels[start:end] if labels is not None else None)

    return InputFile(ports_mod.rows(x), label if labels is not None else None, chunks())


def _label_ids(labels: np.ndarray | None) -> np.ndarray | None:
    """Labels as one value per row: (N, 1) flattened, one-hot rows as their class id."""
    if labels is None or labels.ndim <= 1:
        return labels
    flat = labels.reshape(len(labels), -1)
    return flat[:, 0] if flat.shape[1] == 1 else np.argmax(flat, axis=1)


def _check_finite(x: np.ndarray, first_row: int, path: str, columns: list[str] | None = None) -> None:
    """NaN or inf in an input row is an error naming the row (1-based, as editors count)."""
    found = checks.first_non_finite(x)
    if found is not None:
        row, col, value, _ = found
        raise DataError(f"{path}: data row {first_row + row}, {checks.column_of(col, columns)} is {value}; the model "
                        "cannot predict rows with NaN or infinite values (remove or fill them)", key="--input")


def array_features(block: np.ndarray, scale: float | None, first_row: int, where: str,
                   dtype: str | None = None) -> np.ndarray:
    """Rows of features as the model takes them: checked finite, float32 (or `dtype`), scaled."""
    _check_finite(block, first_row, where)
    return scale_features(block, scale, dtype, where, "--input", first_row)


def array_input(x: np.ndarray, labels: np.ndarray | None, label: str | None, run: find.FinishedRun,
                what: str = "the input") -> InputFile:
    """One array of feature rows (an .npy or .npz file, or an array given in Python), checked and chunked."""
    if x.dtype.kind not in "biuf" or x.ndim == 0:   # text, objects or a scalar: not rows of numbers
        raise DataError(f"{what} holds {x.dtype} {'scalar' if x.ndim == 0 else 'values'}; expected an array of "
                        "numbers with one row per example", key="--input")
    checks.check_shape(x, run.input_shape, "the input's features", "--input")
    scale = run.config.data.scale

    if len(x) == 0:
        raise DataError("the input has 0 rows", key="--input")
    labels = _label_ids(labels)

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        for start in range(0, len(x), CHUNK_ROWS):
            end = start + CHUNK_ROWS
            yield array_features(np.asarray(x[start:end]), scale, start + 1, "the input"), \
                (labels[start:end] if labels is not None else None)

    return InputFile(len(x), label, chunks())


def _parquet_input(path: Path, run: find.FinishedRun, label: str | None) -> InputFile:
    """A Parquet table for a run of one input (model.input_shape): the number columns it was trained on, by name
    in any order, the label column optional; read whole, as the run read it."""
    data = run.config.data
    table = tables.read_tables([path], "parquet", "--input")
    names = [str(n) for n in table.column_names]
    if label is not None and label not in names:
        raise DataError(f"{path} has no column {label!r}; columns: {', '.join(names)}", key="--label")
    found = label or (data.label if data.label in names else None)
    trained_on = run.record.get("features")
    missing = [c for c in trained_on or [] if c not in names]
    if missing:
        raise DataError(f"{path} lacks the feature columns the model was trained on: {', '.join(missing)}",
                        key="--input")
    arrays = tables.matrix(table, data, path, "--input", found, trained_on)
    assert isinstance(arrays.x, np.ndarray)
    return array_input(arrays.x, np.asarray(arrays.y) if found else None, found, run, str(path))


def _csv_input(path: Path, run: find.FinishedRun, label: str | None) -> InputFile:
    first = csv_reader.csv_header(path, "--input")
    has_header = not all(checks.is_number(f) for f in first)   # a first line of numbers is data, not names
    trained_on = run.record.get("features")  # CSV column names the model was trained on
    if has_header:
        header = first
        label = label or (run.config.data.label if run.config.data.label in header else None)
        if label is not None and label not in header:
            raise DataError(f"{path} has no column {label!r}; columns: {', '.join(header)}", key="--label")
        if trained_on:
            missing = [c for c in trained_on if c not in header]
            if missing:
                raise DataError(f"{path} lacks the feature columns the model was trained on: {', '.join(missing)}",
                                key="--input")
            features = [header.index(c) for c in trained_on]
        else:
            features = [i for i, h in enumerate(header) if h != label]
    else:
        if label is not None:
            raise DataError(f"{path} has no header line, so no column can be named {label!r}; add a header line",
                            key="--label")
        header, features = [f"column {i + 1}" for i in range(len(first))], list(range(len(first)))
    _check_width(path, len(features), run.input_shape, has_header)
    rows = _count_rows(path, has_header)
    if rows == 0:
        raise DataError(f"{path} has no data rows", key="--input")
    label_index = header.index(label) if label is not None else None
    block_bytes = min(max(1 << 16, math.ceil(path.stat().st_size / max(rows, 1)) * BLOCK_ROWS), MAX_LINE_BYTES)
    names = [header[i] for i in features]
    return InputFile(rows, label, _csv_chunks(path, has_header, features, names, label_index, len(header),
                                              run.config.data.scale, block_bytes))


def _check_width(path: Path, width: int, input_shape: tuple[int | None, ...], has_header: bool) -> None:
    if checks.shape_fits((width,), input_shape):
        return
    hint = ""
    if input_shape and input_shape[-1] is not None and width == input_shape[-1] + 1:
        hint = ("; if one column is the label, name it with --label COLUMN to carry it along" if has_header else
                "; if one column is the label, add a header line and name it with --label COLUMN")
    raise DataError(f"{path} has {width} feature columns, the model takes input_shape {list(input_shape)}{hint}",
                    key="--input")


def _count_rows(path: Path, has_header: bool) -> int:
    with path.open("rb") as fh:
        if has_header:
            fh.readline(MAX_LINE_BYTES)
        return sum(1 for block in _line_blocks(fh, 1 << 20, path) for line in block.split(b"\n") if line.strip())


def _csv_chunks(path: Path, has_header: bool, features: list[int], names: list[str], label_index: int | None,
                width: int, scale: float | None, block_bytes: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Blocks of ~BLOCK_ROWS whole lines, parsed by pyarrow on PARSE_THREADS threads (one each: it releases the
    GIL), at most PARSE_THREADS + 1 blocks in memory."""
    parse = _parse(width)
    layout = _Layout(path, features, names, label_index, width, scale)
    with path.open("rb") as fh, ThreadPoolExecutor(PARSE_THREADS) as pool:
        if has_header:
            fh.readline()
        pending: deque[tuple[int, Future[np.ndarray]]] = deque()
        first_row = 1
        for block in _line_blocks(fh, block_bytes, path):
            pending.append((first_row, pool.submit(parse, block)))
            first_row += sum(1 for line in block.split(b"\n") if line.strip())
            if len(pending) > PARSE_THREADS:
                yield layout.chunk(*pending.popleft())
        while pending:
            yield layout.chunk(*pending.popleft())


@dataclass
class _Layout:
    """Which parsed CSV columns are features (and their names) and which is the label."""

    path: Path
    features: list[int]
    names: list[str]
    label_index: int | None
    width: int
    scale: float | None

    def chunk(self, first_row: int, parsed: Future[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """Features (scaled, checked finite) and labels of one parsed block."""
        try:
            table = parsed.result()
        except csv_reader.BadRow as bad:
            raise DataError(f"{self.path}: data row {first_row + bad.index}: {bad.problem}; every row must hold "
                            f"{self.width} numbers", key="--input") from None
        if table.shape[1] != self.width:
            raise DataError(f"{self.path}: rows from data row {first_row} have {table.shape[1]} columns, the "
                            f"first line {self.width}", key="--input")
        x = table[:, self.features]
        _check_finite(x, first_row, str(self.path), self.names)
        labels = table[:, self.label_index] if self.label_index is not None else None
        return scale_features(x, self.scale, None, str(self.path), "--input", first_row, self.names), labels


def _line_blocks(fh: Any, size: int, path: Path) -> Iterator[bytes]:
    """The rest of a binary file in blocks of about `size` bytes that end at a line break; a line longer than
    MAX_LINE_BYTES is one line naming the file (a huge cell would otherwise be read whole)."""
    rest = b""
    while True:
        block = fh.read(size)
        if not block:
            if rest.strip():
                yield rest + b"\n"
            return
        data = rest + block
        cut = data.rfind(b"\n") + 1
        longest = max(len(data) - cut, data.find(b"\n") if rest else 0)   # a line inside one block is shorter
        data, rest = data[:cut], data[cut:]
        if longest > MAX_LINE_BYTES:
            raise DataError(f"{path}: a line of it is larger than kcli's limit of {MAX_LINE_BYTES >> 20} MiB for a "
                            "CSV line: a huge cell, or a line break missing; fix the file", key="--input")
        if data:
            yield data


def _parse(width: int) -> Callable[[bytes], np.ndarray]:
    """bytes of CSV lines -> a float64 table, by the one CSV reader (pyarrow; BadRow names a bad row)."""
    return lambda block: csv_reader.numbers(block, width, threads=False)[0]
