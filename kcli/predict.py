"""`kcli predict RUN --input FILE`: a finished run's predictions, streamed in chunks.

Inputs are read a chunk at a time and outputs written as they come, so a CSV with millions of rows
predicts in bounded memory; CSV blocks are parsed on background threads while the model predicts.
(An .npz input is read whole: numpy cannot map compressed members.)
"""

from __future__ import annotations

import io
import math
import os
import warnings
import zipfile
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from kcli import data as data_mod
from kcli import model as model_mod
from kcli import runs
from kcli.display import Display
from kcli.errors import DataError

CHUNK_ROWS = 8192                # rows per chunk of an .npy/.npz input
BLOCK_ROWS = 32768               # rows per block of a CSV input (sized in bytes from the average line)
PARSE_THREADS = max(2, os.cpu_count() or 1)
# Rows per model call when --batch-size is not given. Inference results do not depend on it (beyond float
# rounding) and 1024 is ~10x faster than Keras's predict default of 32 on a small MLP.
PREDICT_BATCH = 1024
PREVIEW_ROWS = 10
OUTPUT_SUFFIXES = (".csv", ".npy", ".npz")


@dataclass
class Head:
    """How to read the model's outputs: class scores, one binary probability, or plain values."""

    kind: Literal["multiclass", "binary", "values"]
    from_logits: bool

    @classmethod
    def of(cls, run: runs.FinishedRun, out_dim: int) -> Head:
        """Decide from the run's loss (and its from_logits) and the output width."""
        loss = run.config.compile.loss
        name = loss.name.rsplit(":", 1)[-1].replace("_", "").lower()
        from_logits = bool(loss.args.get("from_logits", False))
        if "categorical" in name and out_dim > 1:
            return cls("multiclass", from_logits)
        if "binary" in name and out_dim == 1:
            return cls("binary", from_logits)
        return cls("values", False)

    @property
    def note(self) -> str:
        """What the probability column means."""
        if self.kind == "multiclass":
            return "probability = softmax of the model's logits" if self.from_logits else \
                "probability = the model's output for the predicted class"
        if self.kind == "binary":
            return "probability = sigmoid of the model's logit" if self.from_logits else \
                "probability = the model's output"
        return "raw model outputs (not a classifier)"

    def classify(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(predicted class ids, probability of the predicted class), or None for plain values."""
        flat = raw.reshape(len(raw), -1)
        if self.kind == "multiclass":
            probs = _softmax(flat) if self.from_logits else flat
            ids = np.argmax(probs, axis=1)
            return ids, probs[np.arange(len(ids)), ids]
        if self.kind == "binary":
            p1 = 1.0 / (1.0 + np.exp(-flat[:, 0])) if self.from_logits else flat[:, 0]
            ids = (p1 >= 0.5).astype(np.int64)
            return ids, np.where(ids == 1, p1, 1.0 - p1)
        return None


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class InputFile:
    """A prediction input: its row count, label column name (if any), and a chunk iterator."""

    rows: int
    label: str | None
    chunks: Iterator[tuple[np.ndarray, np.ndarray | None]]


def open_input(path: Path, run: runs.FinishedRun, label: str | None) -> InputFile:
    """Open .npy / .npz / .csv input with the run's feature layout; checks the feature shape up front."""
    if not path.is_file():
        raise DataError(f"input file not found: {path}", key="--input")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _array_input(_load_npy(path), None, None, run)
    if suffix == ".npz":
        return _npz_input(path, run)
    if suffix == ".csv":
        return _csv_input(path, run, label)
    raise DataError(f"{path}: expected a .csv, .npy or .npz file", key="--input")


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path} as .npy: {exc}", key="--input") from None


def _npz_input(path: Path, run: runs.FinishedRun) -> InputFile:
    data = run.config.data
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path} as .npz: {exc}", key="--input") from None
    with npz:
        keys = [k for k in dict.fromkeys((data.x_key or "x", "x")) if k in npz.files]
        if not keys:
            raise DataError(f"{path} has no array {data.x_key or 'x'!r}; it has: {', '.join(npz.files)}",
                            key="--input")
        x = npz[keys[0]]
        y_key = data.y_key or "y"
        labels = npz[y_key] if y_key in npz.files and npz[y_key].shape[:1] == x.shape[:1] else None
    return _array_input(x, labels, y_key if labels is not None else None, run)


def _array_input(x: np.ndarray, labels: np.ndarray | None, label: str | None,
                 run: runs.FinishedRun) -> InputFile:
    data_mod.check_shape(x, run.input_shape, "the input's features", "--input")
    scale = run.config.data.scale

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        for start in range(0, len(x), CHUNK_ROWS):
            end = start + CHUNK_ROWS
            yield data_mod.scale_features(np.asarray(x[start:end]), scale), \
                (labels[start:end] if labels is not None else None)

    return InputFile(len(x), label, chunks())


def _csv_input(path: Path, run: runs.FinishedRun, label: str | None) -> InputFile:
    header = data_mod.csv_header(path, "--input")
    trained_on = run.record.get("features")  # CSV column names the model was trained on
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
    width = len(features)
    if not data_mod.shape_fits((width,), run.input_shape):
        raise DataError(f"{path} has {width} feature columns, the model takes input_shape "
                        f"{list(run.input_shape)}", key="--input")
    rows = _count_rows(path)
    label_index = header.index(label) if label is not None else None
    block_bytes = max(1 << 16, math.ceil(path.stat().st_size / max(rows, 1)) * BLOCK_ROWS)
    return InputFile(rows, label, _csv_chunks(path, features, label_index, len(header), run.config.data.scale,
                                              block_bytes))


def _count_rows(path: Path) -> int:
    with path.open("rb") as fh:
        next(fh, None)
        return sum(1 for line in fh if line.strip())


def _csv_chunks(path: Path, features: list[int], label_index: int | None, width: int, scale: float | None,
                block_bytes: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Blocks of ~BLOCK_ROWS whole lines, parsed by TensorFlow's CSV decoder on PARSE_THREADS threads
    (it releases the GIL: ~3x faster than np.loadtxt on 2 cores), at most PARSE_THREADS + 1 blocks in memory."""
    parse = _block_parser(width)
    with path.open("rb") as fh, ThreadPoolExecutor(PARSE_THREADS) as pool:
        fh.readline()
        pending: deque[tuple[int, Future[np.ndarray]]] = deque()
        first_row = 1
        for block in _line_blocks(fh, block_bytes):
            pending.append((first_row, pool.submit(parse, block)))
            first_row += block.count(b"\n")
            if len(pending) > PARSE_THREADS:
                yield _chunk(path, *pending.popleft(), features, label_index, width, scale)
        while pending:
            yield _chunk(path, *pending.popleft(), features, label_index, width, scale)


def _chunk(path: Path, first_row: int, parsed: Future[np.ndarray], features: list[int], label_index: int | None,
           width: int, scale: float | None) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        table = parsed.result()
    except ValueError as exc:
        raise DataError(f"{path}: {exc} (data rows from {first_row})", key="--input") from None
    if table.shape[1] != width:
        raise DataError(f"{path}: rows from data row {first_row} have {table.shape[1]} columns, the header {width}",
                        key="--input")
    labels = table[:, label_index] if label_index is not None else None
    return data_mod.scale_features(table[:, features], scale), labels


def _line_blocks(fh: Any, size: int) -> Iterator[bytes]:
    """The rest of a binary file in blocks of about `size` bytes that end at a line break."""
    rest = b""
    while True:
        block = fh.read(size)
        if not block:
            if rest.strip():
                yield rest + b"\n"
            return
        data = rest + block
        cut = data.rfind(b"\n") + 1
        data, rest = data[:cut], data[cut:]
        if data:
            yield data


def _block_parser(width: int) -> Callable[[bytes], np.ndarray]:
    """bytes of CSV lines -> a float64 table; np.loadtxt (lenient about spaces) where TensorFlow's decoder
    refuses a block, and its message (with the row) when neither can read it."""
    import tensorflow as tf

    defaults = [tf.constant([], tf.float64)] * width

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([], tf.string)])
    def decode(block: Any) -> Any:
        lines = tf.strings.split(tf.strings.regex_replace(block, "\r", ""), "\n")
        lines = tf.boolean_mask(lines, tf.strings.length(tf.strings.strip(lines)) > 0)
        return tf.stack(tf.io.decode_csv(lines, record_defaults=defaults), axis=1)

    def parse(block: bytes) -> np.ndarray:
        try:
            return decode(tf.constant(block)).numpy()
        except tf.errors.InvalidArgumentError:
            pass
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)   # loadtxt warns about empty input
            try:
                return np.loadtxt(io.BytesIO(block), delimiter=",", ndmin=2, dtype=np.float64)
            except ValueError as exc:
                raise ValueError(f"every value must be a number ({exc})") from None

    return parse


@dataclass
class Collected:
    """What the terminal shows: the first rows and the count of each predicted class."""

    preview: list[tuple[Any, Any, Any, np.ndarray]] = field(default_factory=list)
    counts: Counter[int] = field(default_factory=Counter)
    rows: int = 0


def predict(ref: str, runs_dir: Path, input_path: Path, output: Path | None, batch_size: int | None,
            label: str | None, display: Display) -> Collected:
    """Predict every row of `input_path`; write `output` (.csv / .npy / .npz) or show a preview."""
    if output is not None and output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise DataError(f"{output}: the output must end in .csv, .npy or .npz", key="--output")
    run = runs.open_run(ref, runs_dir)
    source = open_input(input_path, run, label)
    model = runs.load_model(run.path, run.record)
    out_shape = tuple(model_mod.output_shape(model, run.input_shape)[1:])
    out_dim = int(np.prod(out_shape))
    head = Head.of(run, out_dim)
    batch = batch_size or PREDICT_BATCH
    collected = Collected()
    with ExitStack() as stack:
        writer = _writer(stack, output, source, head, out_shape) if output is not None else None
        for x, labels in source.chunks:
            raw = np.asarray(model.predict(x, batch_size=batch, verbose=0))
            classified = head.classify(raw)
            if writer is not None:
                writer.write(raw, classified, labels)
            _collect(collected, raw, classified, labels)
        if writer is not None:
            writer.close(collected.rows)
    display.predictions(collected.preview, collected.counts, collected.rows, head.note, source.label,
                        output, show_rows=output is None)
    return collected


def _collect(collected: Collected, raw: np.ndarray, classified: tuple[np.ndarray, np.ndarray] | None,
             labels: np.ndarray | None) -> None:
    room = PREVIEW_ROWS - len(collected.preview)
    for i in range(min(room, len(raw))):
        cls, prob = (int(classified[0][i]), float(classified[1][i])) if classified is not None else (None, None)
        collected.preview.append((labels[i] if labels is not None else None, cls, prob, raw[i].reshape(-1)))
    if classified is not None:
        collected.counts.update(classified[0].tolist())
    collected.rows += len(raw)


def _writer(stack: ExitStack, output: Path, source: InputFile, head: Head, out_shape: tuple[int, ...]) -> Any:
    tmp = stack.enter_context(runs.atomic_target(output, replace=True))
    suffix = output.suffix.lower()
    if suffix == ".csv":
        return _CsvWriter(stack.enter_context(tmp.open("w", encoding="utf-8")), head, out_shape, source.label)
    if suffix == ".npy":
        return _NpyWriter(tmp, source.rows, out_shape)
    writer = _NpzWriter(tmp, source.rows, out_shape)
    stack.callback(writer.npy_path.unlink, missing_ok=True)  # also when predicting fails midway
    return writer


class _CsvWriter:
    """One row per example: [label,] predicted, probability, then the raw outputs."""

    def __init__(self, fh: Any, head: Head, out_shape: tuple[int, ...], label: str | None) -> None:
        self.fh = fh
        raw_name = "logit" if head.from_logits else "output"
        columns = [label] if label is not None else []
        columns += ["predicted", "probability"] if head.kind != "values" else []
        columns += [f"{raw_name}_{i}" for i in range(int(np.prod(out_shape)))]
        fh.write(",".join(columns) + "\n")
        self.classifier = head.kind != "values"

    def write(self, raw: np.ndarray, classified: tuple[np.ndarray, np.ndarray] | None,
              labels: np.ndarray | None) -> None:
        """Formatted by TensorFlow's string ops (3x faster than np.savetxt, and they release the GIL for the
        parsing threads): floats with 9 significant digits, which round-trip float32 exactly."""
        import tensorflow as tf

        columns = []
        if labels is not None:
            columns.append(_label_text(labels.reshape(len(raw))))
        if classified is not None:
            columns += [tf.strings.as_string(classified[0].astype(np.int64)), _float_text(classified[1])]
        flat = raw.reshape(len(raw), -1)
        columns += [_float_text(flat[:, i]) for i in range(flat.shape[1])]
        lines = tf.strings.reduce_join(tf.stack(columns, axis=1), axis=1, separator=",")
        self.fh.write(tf.strings.reduce_join(lines, separator="\n").numpy().decode() + "\n")

    def close(self, rows: int) -> None:
        self.fh.flush()


def _float_text(values: np.ndarray) -> Any:
    import tensorflow as tf

    return tf.strings.as_string(values.astype(np.float32), precision=8, scientific=True)


def _label_text(labels: np.ndarray) -> Any:
    """Labels as read: integers as integers, other numbers with up to 10 significant digits."""
    import tensorflow as tf

    if np.all(np.mod(labels, 1) == 0):
        return tf.strings.as_string(labels.astype(np.int64))
    return tf.constant([f"{v:.10g}" for v in labels.tolist()])


class _NpyWriter:
    """Raw outputs into a memory-mapped .npy of known length."""

    def __init__(self, path: Path, rows: int, out_shape: tuple[int, ...]) -> None:
        self.array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, *out_shape))
        self.offset = 0

    def write(self, raw: np.ndarray, classified: Any, labels: Any) -> None:
        self.array[self.offset:self.offset + len(raw)] = raw
        self.offset += len(raw)

    def close(self, rows: int) -> None:
        if self.offset != len(self.array):
            raise DataError(f"expected {len(self.array)} rows, read {self.offset}", key="--input")
        self.array.flush()
        del self.array


class _NpzWriter(_NpyWriter):
    """Raw outputs as `predictions` inside an .npz (written via a temporary .npy, streamed into the zip)."""

    def __init__(self, path: Path, rows: int, out_shape: tuple[int, ...]) -> None:
        self.npz_path = path
        self.npy_path = path.with_name(path.name + ".npy")
        super().__init__(self.npy_path, rows, out_shape)

    def close(self, rows: int) -> None:
        try:
            super().close(rows)
            with zipfile.ZipFile(self.npz_path, "w", allowZip64=True) as zf:
                zf.write(self.npy_path, arcname="predictions.npy")
        finally:
            self.npy_path.unlink(missing_ok=True)
