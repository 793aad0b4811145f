"""Tables larger than memory: CSV / Parquet files (one file, a folder of them, or a glob of shards) read in blocks
by pyarrow and fed to `fit` as a tf.data dataset, so memory holds a shuffle window, not the table.

kcli streams a table by itself when its files are large (table_files.should_stream); before training, one pass
over the files learns what the model needs and caches the rows as read (stream_pass.py, stream_cache.py). The
same reader feeds either path: one input per column, or (`matrix`, model.input_shape) the number columns stacked
into one float32 matrix, as the in-memory read makes it.

The order of epoch e depends only on (seed, e): the files in a permutation drawn from numpy's
`default_rng([seed, e])`, then the rows of every window of WINDOW_ROWS rows permuted by the same generator
(`shuffle: false`: file order). So a run resumed at epoch e sees the very batches an uninterrupted one would.
On several workers each reads its own part of the rows (stream_shard.py).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from kcli.config.model_io import Ports
from kcli.config.models import DataConfig
from kcli.data import csv_reader, tables
from kcli.data.checks import file_key
from kcli.data.prepare import scale_features
from kcli.data.python_source import Stream
from kcli.data.splits import Arrays
from kcli.data.stream_cache import Cache, cached_blocks
from kcli.data.stream_shard import Part, Shard
from kcli.data.table_files import TableFile
from kcli.errors import DataError
from kcli.files import remote

WINDOW_ROWS = 65536          # rows shuffled together (a shuffle buffer; memory: this many rows)
WINDOWS_AHEAD = 2            # windows read ahead of training
BLOCK_BYTES = csv_reader.CSV_BLOCK_BYTES   # bytes of CSV parsed per block (larger blocks: more memory, no faster)
PARQUET_ROWS = 65536         # rows per Parquet batch


def blocks(path: TableFile, source: str, key: str, features: dict[str, str] | None = None) -> Iterator[Any]:
    """The file as pyarrow Tables of a few MB each, in file order (TFRecord: records parsed with `features`); an
    object is read straight from the store, again after a store error (files/remote.py's read_retried)."""
    if isinstance(path, remote.Info):
        yield from remote.read_retried(path, file_key(key), lambda: _blocks(path, source, key, features))
        return
    yield from _blocks(path, source, key, features)


def _blocks(path: TableFile, source: str, key: str, features: dict[str, str] | None) -> Iterator[Any]:
    import pyarrow as pa

    if source == "tfrecord":
        from kcli.data import tfrecords

        yield from tfrecords.blocks(path, features, key)  # type: ignore[arg-type]   # always a local file
        return
    read = rows = 0
    try:
        with contextlib.ExitStack() as stack:
            opened: Any = path
            if isinstance(path, remote.Info):
                opened = stack.enter_context(remote.open_input(path, random_access=source == "parquet"))
            if source == "parquet":
                import pyarrow.parquet as pq

                batches: Any = pq.ParquetFile(opened).iter_batches(batch_size=PARQUET_ROWS)
            else:
                batches = csv_reader.open_blocks(opened, BLOCK_BYTES)
            for batch in batches:
                table = pa.Table.from_batches([batch])
                if source == "csv":
                    tables.check_text(table, path, key, rows)  # type: ignore[arg-type]
                yield table
                read, rows = read + 1, rows + table.num_rows
    except FileNotFoundError:
        raise DataError(f"{path} is gone (it was there when the run began)", key=file_key(key)) from None
    except (pa.ArrowException, OSError) as exc:
        if isinstance(path, remote.Info) and isinstance(exc, OSError):
            raise   # the store failed: read again by read_retried
        located = csv_reader.relocated(path, batches.schema, BLOCK_BYTES) if read and source == "csv" else None
        raise DataError(located or f"cannot read {path} as {source}: {csv_reader.arrow_problem(exc)}",
                        key=file_key(key)) from None


@dataclass
class TableReader:
    """The batches of one split's files, epoch by epoch (the epoch is set by EpochSetter before each epoch)."""

    files: list[TableFile]
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
    # model.input_shape: the input names of the number columns stacked, in this order, into the one input (None: one
    # input per column)
    matrix: tuple[str, ...] | None = None
    shard: Shard | None = None   # on several workers: this worker's place, and
    part: Part | None = None     # the rows it reads (its batches: data.batch_size / workers rows)

    def batches(self) -> Iterator[tuple[Any, ...]]:
        """Batches of data.batch_size rows (the last one partial) in epoch `self.epoch`'s order."""
        for group in self.groups():
            yield from (_take(group, i) for i in range(len(group[1])))

    def groups(self) -> Iterator[tuple[Any, ...]]:
        """The batches of epoch `self.epoch`, a window at a time: arrays of shape (batches, batch_size, ...)
        (tf.data unbatches them in C++: one Python call per window instead of one per batch). A file that
        vanishes or breaks during training is kept in `failure` (see `reader_errors`)."""
        try:
            yield from (self._groups() if self.part is None else _capped(self._groups(), self.part.batches))
        except DataError as exc:
            self.failure = exc
            raise
        except OSError as exc:   # the cache removed under the run, a read error
            self.failure = DataError(f"cannot read {exc.filename or 'the data'} during training: {exc.strerror or exc}",
                                     key=file_key(self.key))
            raise

    def _groups(self) -> Iterator[tuple[Any, ...]]:
        rng = np.random.default_rng([self.seed, self.epoch] if self.shard is None else
                                    [self.seed, self.epoch, self.shard.index])
        pending: list[Arrays] = []
        held = 0
        for path, start, stop in self._pieces(rng):
            for arrays in self._rows(path, start, stop):
                pending.append(arrays)
                held += len(arrays)
                if held >= WINDOW_ROWS:
                    rest = yield from self._emit(_join(pending), rng, last=False)
                    pending, held = ([rest], len(rest)) if rest is not None else ([], 0)
        if pending:
            yield from self._emit(_join(pending), rng, last=True)

    def _pieces(self, rng: np.random.Generator) -> list[tuple[TableFile, int, int | None]]:
        """The files (or on several workers: this worker's pieces of them) in this epoch's order."""
        if self.part is None:
            order = rng.permutation(len(self.files)) if self.shuffle else np.arange(len(self.files))
            return [(self.files[int(i)], 0, None) for i in order]
        pieces = self.part.pieces
        order = rng.permutation(len(pieces)) if self.shuffle else np.arange(len(pieces))
        return [(self.files[pieces[int(i)].file], pieces[int(i)].start, pieces[int(i)].stop) for i in order]

    def _rows(self, path: TableFile, start: int, stop: int | None) -> Iterator[Arrays]:
        """Rows start..stop of one file (stop None: to its end), a block at a time."""
        offset = 0
        for arrays in self._blocks(path):
            n = len(arrays)
            low, high = max(start - offset, 0), n if stop is None else min(stop - offset, n)
            offset += n
            if low < high:
                yield arrays if (low, high) == (0, n) else arrays.take(slice(low, high))
            if stop is not None and offset >= stop:
                return

    def _blocks(self, path: TableFile) -> Iterator[Arrays]:
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
        size = self.shard.batch(self.data.batch_size) if self.shard is not None else self.data.batch_size
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
        elif y.dtype.kind == "f" or self.labels == "values":   # a block of whole numbers in a regression too
            y = y.astype(np.float32)
        assert isinstance(arrays.x, dict)
        shaped = lambda a: a.reshape(count, size, *a.shape[1:])  # noqa: E731
        if self.matrix is not None:   # the float32 matrix (scaled) that the in-memory read makes of these rows
            x: Any = shaped(scale_features(np.concatenate([arrays.x[name] for name in self.matrix], axis=1),
                                           self.data.scale, what=f"the {self.key} features", key=self.key))
        else:
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


def _capped(groups: Iterator[tuple[Any, ...]], batches: int) -> Iterator[tuple[Any, ...]]:
    """The first `batches` batches of `groups` (a worker's last, one-row batch left out: stream_shard.py)."""
    for group in groups:
        if batches <= 0:
            return
        yield group if len(group[1]) <= batches else _take(group, slice(0, batches))
        batches -= len(group[1])


def _take(group: tuple[Any, ...], index: int | slice) -> tuple[Any, ...]:
    """Batch `index` (or a slice of batches) of a group: its inputs by name, or model.input_shape's one matrix."""
    x = {k: v[index] for k, v in group[0].items()} if isinstance(group[0], dict) else group[0][index]
    return (x, *(part[index] for part in group[1:]))


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

    specs: Any = {p.name: tf.TensorSpec((None, None, 1), tf.string if p.dtype == "string" else tf.as_dtype(p.dtype))
                  for p in reader.ports.inputs}
    if reader.matrix is not None:   # model.input_shape: one float32 matrix
        specs = tf.TensorSpec((None, None, len(reader.matrix)), tf.float32)
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
    steps = reader.part.batches if reader.part is not None else steps
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

