"""Tables larger than memory: CSV / Parquet files (one file, a folder of them, or a glob of shards) read in blocks
by pyarrow and fed to `fit` as a tf.data dataset, so memory holds a shuffle window, not the table.

kcli streams a table by itself when its files are large (`data.stream: auto`, the default: more than
STREAM_ABOVE bytes, or more than a quarter of the memory available); `stream: true` / `false` force either way.
Before training, one pass over the training files learns what the model needs (column kinds from the first
block, vocabularies, fill values, the mean and variance of the standardized numbers, class names, the row count).

The order of epoch e depends only on (seed, e): the files in a permutation drawn from numpy's
`default_rng([seed, e])`, then the rows of every window of WINDOW_ROWS rows permuted by the same generator
(`shuffle: false`: file order). So a run resumed at epoch e sees the very batches an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kcli.config.model_io import Ports, input_name
from kcli.config.models import ColumnConfig, DataConfig
from kcli.data import tables
from kcli.data.checks import _file_key
from kcli.data.python_source import Stream
from kcli.data.splits import Arrays
from kcli.data.stream_cache import Cache, cached_blocks
from kcli.errors import DataError
from kcli.files import readable

STREAM_ABOVE = 512 << 20     # bytes of files above which `stream: auto` streams
WINDOW_ROWS = 65536          # rows shuffled together (a shuffle buffer; memory: this many rows)
WINDOWS_AHEAD = 2            # windows read ahead of training
BLOCK_BYTES = tables.CSV_BLOCK_BYTES   # bytes of CSV parsed per block (larger blocks: more memory, no faster)
PARQUET_ROWS = 65536         # rows per Parquet batch
SUFFIXES = {"csv": (".csv",), "parquet": (".parquet", ".pq"), "tfrecord": (".tfrecord", ".tfrecords", ".tfrec")}


def table_files(path: str, source: str, key: str) -> list[Path]:
    """The files of `path`: a file, a folder (its .csv / .parquet files) or a glob, sorted by name."""
    p = Path(path)
    if readable.is_pattern(path):
        files = readable.glob_files(path, _file_key(key))
        if not files:
            raise DataError(f"no file matches {path}", key=_file_key(key))
        return files
    if p.is_dir():
        files = readable.files_under(p, _file_key(key), SUFFIXES[source], recursive=False)
        if not files:
            raise DataError(f"the folder {p} holds no {' / '.join(SUFFIXES[source])} files", key=_file_key(key))
        return files
    if not readable.present(p, _file_key(key)):   # a FIFO, a device or a link loop is one line, never opened
        raise DataError(f"data file not found: {p}", key=_file_key(key))
    return [p]


def should_stream(files: list[Path], data: DataConfig) -> bool:
    """`data.stream`, or for auto (None): whether the files are too large to read whole comfortably."""
    if data.stream is not None and data.stream != "auto":
        return bool(data.stream)
    size = sum(f.stat().st_size for f in files)
    return size > min(STREAM_ABOVE, _available_memory() // 4)


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def blocks(path: Path, source: str, key: str, features: dict[str, str] | None = None) -> Iterator[Any]:
    """The file as pyarrow Tables of a few MB each, in file order (TFRecord: records parsed with `features`)."""
    import pyarrow as pa

    if source == "tfrecord":
        from kcli.data import tfrecords

        yield from tfrecords.blocks(path, features, key)
        return
    read = rows = 0
    try:
        if source == "parquet":
            import pyarrow.parquet as pq

            batches: Any = pq.ParquetFile(path).iter_batches(batch_size=PARQUET_ROWS)
        else:
            from pyarrow import csv

            batches = csv.open_csv(path, read_options=csv.ReadOptions(block_size=BLOCK_BYTES, use_threads=True),
                                   convert_options=tables.csv_options())
        for batch in batches:
            table = pa.Table.from_batches([batch])
            if source == "csv":
                tables.check_text(table, path, key, rows)
            yield table
            read, rows = read + 1, rows + table.num_rows
    except FileNotFoundError:
        raise DataError(f"{path} is gone (it was there when the run began)", key=_file_key(key)) from None
    except (pa.ArrowException, OSError) as exc:
        located = _located(path, batches.schema, exc) if read and source == "csv" else None
        raise DataError(located or f"cannot read {path} as {source}: {tables.arrow_problem(exc)}",
                        key=_file_key(key)) from None


def _located(path: Path, schema: Any, exc: BaseException) -> str | None:
    """pyarrow's complaint about a later block of a streamed CSV with the data row (and column) it is about: its
    threaded reader names no row, so the file is read again unthreaded, with the kinds of its first block."""
    import pyarrow as pa
    from pyarrow import csv

    options = csv.ConvertOptions(column_types=dict(zip(schema.names, schema.types)), strings_can_be_null=True)
    try:
        for _ in csv.open_csv(path, read_options=csv.ReadOptions(block_size=BLOCK_BYTES, use_threads=False),
                              convert_options=options):
            pass
    except (pa.ArrowException, OSError) as again:
        text = " ".join(str(again).split())
    else:
        return None
    found = re.search(r"In CSV column #(\d+): Row #(\d+): CSV conversion error to (\w+): invalid value '(.*)'$", text)
    if found is not None:   # a kind the first block decided: the one case where blocks are the cause
        column, row, kind, value = int(found[1]), int(found[2]) - 1, found[3], found[4]
        what = {"int64": "a whole number", "double": "a number"}.get(kind, f"a {kind}")
        return (f"{path}: data row {row}, column {schema.names[column]!r} is {value!r}, not {what} as in its first "
                "rows (a streamed table takes each column's kind from its first block of rows: fix the cell, or "
                "set data.stream: false to read the table whole)")
    return tables.located(path, schema.names, text)


def split_pass(files: list[Path], data: DataConfig, key: str, label: str | None, weights: bool,
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
        raise DataError(f"{files[0]} has a header but no rows", key=_file_key(key))
    return rows


@dataclass
class ClassIds:
    """The smallest and largest class id among a split's labels (whole numbers) and the data row of each."""

    low: int | None = None
    high: int | None = None
    low_at: str = ""
    high_at: str = ""

    def add(self, y: np.ndarray, path: Path, first_row: int) -> None:
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
    stats: dict[str, tables.ColumnStats]
    rows: int
    class_names: list[str] | None
    labels: str = "ids"   # ids | names | values
    largest_id: int = 0   # the largest class id among the labels (ids)
    ids: ClassIds | None = None   # the range of the class ids and where they are


def learn(files: list[Path], data: DataConfig, cache: Cache | None = None) -> Learned:
    """One pass over the training files: kinds (from the first block), statistics, class names, rows (and the
    rows as read into `cache`)."""
    columns: dict[str, ColumnConfig] | None = None
    stats: dict[str, tables.ColumnStats] = {}
    names: set[str] = set()
    labels = "ids"
    rows = largest = 0
    ids = ClassIds()
    for path in files:
        first_row = 0
        writer = cache.writer(path) if cache is not None else None
        for block in blocks(path, data.source, "data", data.features):
            if columns is None:
                columns = tables.infer(block, data, path)
                stats = {n: tables.ColumnStats() for n, c in columns.items() if c.kind != "ignore"}
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
    if columns is None or rows == 0:
        raise DataError(f"{files[0]} has a header but no rows", key="data.path")
    return Learned(columns, stats, rows, sorted(names) if names else None, labels, largest, ids)


@dataclass
class TableReader:
    """The batches of one split's files, epoch by epoch (the epoch is set by EpochSetter before each epoch)."""

    files: list[Path]
    data: DataConfig
    ports: Ports
    key: str
    seed: int
    shuffle: bool
    label: str | None
    class_ids: dict[str, int] | None
    classes: int | None = None   # one_hot: the class count
    epoch: int = 0
    weights: bool = False
    rows: int = 0            # 0: unknown (validation / test files are not counted ahead)
    labels: str = "ids"      # ids | names | values (regression)
    cache: Cache | None = None
    failure: DataError | None = None   # what stopped the last pass (tf.data hands fit only its text)

    def batches(self) -> Iterator[tuple[Any, ...]]:
        """Batches of data.batch_size rows (the last one partial) in epoch `self.epoch`'s order."""
        for group in self.groups():
            yield from (_structure(group, i) for i in range(len(group[1])))

    def groups(self) -> Iterator[tuple[Any, ...]]:
        """The batches of epoch `self.epoch`, a window at a time: arrays of shape (batches, batch_size, ...)
        (tf.data unbatches them in C++: one Python call per window instead of one per batch). A file that
        vanishes or breaks during training is kept in `failure` (see `reader_errors`)."""
        try:
            yield from self._groups()
        except DataError as exc:
            self.failure = exc
            raise
        except OSError as exc:   # the cache removed under the run, a read error
            self.failure = DataError(f"cannot read {exc.filename or 'the data'} during training: {exc.strerror or exc}",
                                     key=_file_key(self.key))
            raise

    def _groups(self) -> Iterator[tuple[Any, ...]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.files)) if self.shuffle else np.arange(len(self.files))
        pending: list[Arrays] = []
        held = 0
        for i in order:
            for arrays in self._blocks(self.files[int(i)]):
                pending.append(arrays)
                held += len(arrays)
                if held >= WINDOW_ROWS:
                    rest = yield from self._emit(_join(pending), rng, last=False)
                    pending, held = ([rest], len(rest)) if rest is not None else ([], 0)
        if pending:
            yield from self._emit(_join(pending), rng, last=True)

    def _blocks(self, path: Path) -> Iterator[Arrays]:
        """The rows of one file as read: from the cache when it holds the file, else parsed again."""
        cached = self.cache.files.get(path) if self.cache is not None else None
        if cached is not None and cached.exists():
            yield from cached_blocks(cached)
            return
        first_row = 0
        for block in blocks(path, self.data.source, self.key, self.data.features):
            yield tables.read_split(block, self.data.columns or {}, path, self.key, self.label,
                                    self.data.sample_weight if self.weights else None, first_row)
            first_row += block.num_rows

    def _emit(self, window: Arrays, rng: np.random.Generator, last: bool) -> Iterator[tuple[Any, ...]]:
        """The window's rows (permuted when shuffling) as full batches; the rows left over are returned to go
        into the next window (or, for the last window, a final partial batch)."""
        if self.shuffle:
            window = window.take(rng.permutation(len(window)))
        size = self.data.batch_size
        full = len(window) // size * size
        if full:
            yield self._group(window.take(slice(0, full)), full // size, size)
        if full == len(window):
            return None
        rest = window.take(slice(full, len(window)))
        if last:
            yield self._group(rest, 1, len(rest))
            return None
        return rest

    def _group(self, arrays: Arrays, count: int, size: int) -> tuple[Any, ...]:
        """`count` batches of `size` rows as arrays of shape (count, size, ...)."""
        y = np.asarray(arrays.y)
        if self.class_ids is not None:
            y = self._ids(y)
        if self.classes:
            y = np.eye(self.classes, dtype=np.float32)[y]
        elif y.dtype.kind == "f":
            y = y.astype(np.float32)
        assert isinstance(arrays.x, dict)
        shaped = lambda a: a.reshape(count, size, *a.shape[1:])  # noqa: E731
        x = {p.name: shaped(arrays.x[p.name]) for p in self.ports.inputs}
        return (x, shaped(y)) if arrays.w is None else (x, shaped(y), shaped(arrays.w))

    def _ids(self, names: np.ndarray) -> np.ndarray:
        assert self.class_ids is not None
        try:
            return np.array([self.class_ids[n] for n in names.tolist()], dtype=np.int64)
        except KeyError as exc:
            raise DataError(f"the {self.key.removeprefix('data.') if '.' in self.key else 'training'} labels hold "
                            f"class {exc.args[0]!r}, which the training files do not have",
                            key=self.key) from None


def _structure(group: tuple[Any, ...], i: int) -> tuple[Any, ...]:
    """Batch i of a group."""
    return ({k: v[i] for k, v in group[0].items()}, *(part[i] for part in group[1:]))


def _join(parts: list[Arrays]) -> Arrays:
    if len(parts) == 1:
        return parts[0]
    x = {k: np.concatenate([p.x[k] for p in parts]) for k in parts[0].x}  # type: ignore[union-attr]
    y = np.concatenate([np.asarray(p.y) for p in parts])
    w = np.concatenate([p.w for p in parts]) if parts[0].w is not None else None  # type: ignore[misc]
    return Arrays(x, y, None, w)


def stream(reader: TableReader) -> Stream:
    """The reader as a tf.data dataset of batches (with its known number of batches) and the callback that
    tells it the epoch."""
    import tensorflow as tf

    specs = {p.name: tf.TensorSpec((None, None, 1), tf.string if p.dtype == "string" else tf.as_dtype(p.dtype))
             for p in reader.ports.inputs}
    if reader.classes:
        label = tf.TensorSpec((None, None, reader.classes), tf.float32)
    else:
        label = tf.TensorSpec((None, None), tf.float32 if reader.labels == "values" else tf.int64)
    signature: tuple[Any, ...] = (specs, label)
    if reader.weights:
        signature = (*signature, tf.TensorSpec((None, None), tf.float32))
    # groups of batches (one Python call per window), split into batches in C++; the next windows are read
    # (from the disk: the cache may have left the page cache) while the model trains on this one
    windows = tf.data.Dataset.from_generator(reader.groups, output_signature=signature)
    dataset = windows.prefetch(WINDOWS_AHEAD).unbatch()
    steps = math.ceil(reader.rows / reader.data.batch_size) if reader.rows else None
    if steps is not None:
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps))
    return Stream(dataset.prefetch(tf.data.AUTOTUNE), steps, epoch_setter=EpochSetter(reader))


@contextlib.contextmanager
def reader_errors(*streams: Any) -> Iterator[None]:
    """Inside, fit / evaluate over `streams` (Streams or None): when a streamed table's reader stopped (a file
    that vanished or changed), its own DataError instead of tf.data's wrapping of it."""
    try:
        yield
    except DataError:
        raise
    except Exception:
        for item in streams:
            setter = getattr(item, "epoch_setter", None)
            if isinstance(setter, EpochSetter) and setter.reader.failure is not None:
                raise setter.reader.failure from None
        raise


class EpochSetter:
    """Tells a TableReader which epoch begins (Keras's on_epoch_begin; absolute after a resume)."""

    def __init__(self, reader: TableReader) -> None:
        self.reader = reader

    def callback(self) -> Any:
        import keras

        reader = self.reader

        class _SetEpoch(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                reader.epoch = epoch

        return _SetEpoch()

