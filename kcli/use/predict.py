"""`kcli predict RUN --input FILE`: a finished run's predictions, streamed in chunks.

Inputs are read a chunk at a time (predict_input.py) and outputs written as they come, so a CSV with millions
of rows predicts in bounded memory.
"""

from __future__ import annotations

import zipfile
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from kcli.config.model_io import flat_outputs
from kcli.errors import DataError
from kcli.model import outputs as outputs_mod
from kcli.output.display import Display
from kcli.run import artifacts
from kcli.run import folder as runs
from kcli.use.predict_input import InputFile, open_input

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
    class_names: list[str] | None = None   # the run's class names by id (string labels, image folders)

    @classmethod
    def of(cls, run: runs.FinishedRun, out_dim: int) -> Head:
        """Decide from the run's loss (and its from_logits) and the output width (several outputs: values)."""
        loss = run.config.compile.loss
        if isinstance(loss, dict):
            return cls("values", False)
        name = loss.name.rsplit(":", 1)[-1].replace("_", "").lower()
        from_logits = bool(loss.args.get("from_logits", False))
        names = run.record.get("classes") or None
        if "categorical" in name and out_dim > 1:
            return cls("multiclass", from_logits, names)
        if "binary" in name and out_dim == 1:
            return cls("binary", from_logits, names)
        return cls("values", False)

    def name_of(self, ids: np.ndarray) -> np.ndarray:
        """Predicted class ids as the run's class names (ids when it has none)."""
        if not self.class_names:
            return ids
        return np.asarray(self.class_names, dtype=object)[ids.astype(np.int64)]

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
class Collected:
    """What the terminal shows: the first rows and the count of each predicted class."""

    preview: list[tuple[Any, Any, Any, np.ndarray]] = field(default_factory=list)
    counts: Counter[int] = field(default_factory=Counter)
    rows: int = 0


def predict(ref: str, runs_dir: Path, input_path: Path, output: Path | None, batch_size: int | None,
            label: str | None, display: Display, overwrite: bool = False, trust_code: bool = False) -> Collected:
    """Predict every row of `input_path`; write `output` (.csv / .npy / .npz) or show a preview."""
    if output is not None and output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise DataError(f"{output}: the output must end in .csv, .npy or .npz", key="--output")
    _check_output(output, overwrite)
    run = runs.open_run(ref, runs_dir, trust_code)
    if run.config.data.source == "images":   # a folder or image files in; file, class name, probability out
        from kcli.use import predict_images

        predict_images.predict(run, input_path, output, batch_size or PREDICT_BATCH, display)
        return Collected()
    source = open_input(input_path, run, label)
    model = artifacts.load_model(run)
    shapes = [tuple(s[1:]) for s in outputs_mod.output_shapes(model, run.ports)]
    columns = _output_columns(run.ports.outputs, shapes)
    out_shape = shapes[0] if len(shapes) == 1 else (len(columns),)
    head = Head.of(run, int(np.prod(out_shape)))
    batch = batch_size or PREDICT_BATCH
    collected = Collected()
    with ExitStack() as stack:
        writer = _writer(stack, output, source, head, out_shape, columns) if output is not None else None
        for x, labels in source.chunks:
            raw = flat_outputs(model.predict(outputs_mod.keras_inputs(x), batch_size=batch, verbose=0))
            classified = head.classify(raw)
            if writer is not None:
                writer.write(raw, classified, labels)
            _collect(collected, raw, classified if not head.class_names or classified is None else
                     (head.name_of(classified[0]), classified[1]), labels)
        if writer is not None:
            writer.close(collected.rows)
    display.predictions(collected.preview, collected.counts, collected.rows, head.note, source.label,
                        output, show_rows=output is None)
    return collected


def _output_columns(outputs: tuple[str, ...], shapes: list[tuple[int, ...]]) -> list[str] | None:
    """CSV column names for several outputs, side by side in `model.output` order: `price`, `kind_0`, ..."""
    if len(outputs) < 2:
        return None
    names = []
    for out, shape in zip(outputs, shapes):
        width = int(np.prod(shape))
        names += [out] if width == 1 else [f"{out}_{j}" for j in range(width)]
    return names


def _check_output(output: Path | None, overwrite: bool) -> None:
    """An existing output is only replaced with --overwrite; its folder must exist."""
    if output is None:
        return
    if output.exists() and not overwrite:
        raise DataError(f"{output} already exists; pass --overwrite to replace it", key="--output")
    if output.is_dir():
        raise DataError(f"{output} is a directory", key="--output")
    runs.writable_folder(output.parent, "--output", DataError)


def _collect(collected: Collected, raw: np.ndarray, classified: tuple[np.ndarray, np.ndarray] | None,
             labels: np.ndarray | None) -> None:
    room = PREVIEW_ROWS - len(collected.preview)
    for i in range(min(room, len(raw))):
        cls, prob = (classified[0][i], float(classified[1][i])) if classified is not None else (None, None)
        cls = int(cls) if isinstance(cls, np.integer) else cls
        label = labels[i].item() if labels is not None else None
        collected.preview.append((label, cls, prob, raw[i].reshape(-1)))
    if classified is not None:
        collected.counts.update(classified[0].tolist())
    collected.rows += len(raw)


def _writer(stack: ExitStack, output: Path, source: InputFile, head: Head, out_shape: tuple[int, ...],
            columns: list[str] | None) -> Any:
    tmp = stack.enter_context(runs.atomic_target(output, replace=True))
    suffix = output.suffix.lower()
    if suffix == ".csv":
        return _CsvWriter(stack.enter_context(tmp.open("w", encoding="utf-8")), head, out_shape, source.label,
                          columns)
    if suffix == ".npy":
        return _NpyWriter(tmp, source.rows, out_shape)
    writer = _NpzWriter(tmp, source.rows, out_shape)
    stack.callback(writer.npy_path.unlink, missing_ok=True)  # also when predicting fails midway
    return writer


class _CsvWriter:
    """One row per example: [label,] predicted, probability, then the raw outputs."""

    def __init__(self, fh: Any, head: Head, out_shape: tuple[int, ...], label: str | None,
                 names: list[str] | None = None) -> None:
        self.fh = fh
        raw_name = "logit" if head.from_logits else "output"
        columns = [label] if label is not None else []
        columns += ["predicted", "probability"] if head.kind != "values" else []
        columns += names or [f"{raw_name}_{i}" for i in range(int(np.prod(out_shape)))]
        fh.write(",".join(columns) + "\n")
        self.classifier = head.kind != "values"
        self.head = head

    def write(self, raw: np.ndarray, classified: tuple[np.ndarray, np.ndarray] | None,
              labels: np.ndarray | None) -> None:
        """Formatted by TensorFlow's string ops (3x faster than np.savetxt, and they release the GIL for the
        parsing threads): floats with 9 significant digits, which round-trip float32 exactly."""
        import tensorflow as tf

        columns = []
        if labels is not None:
            columns.append(_label_text(labels.reshape(len(raw))))
        if classified is not None:
            predicted = (tf.constant(self.head.name_of(classified[0]).astype(str)) if self.head.class_names else
                         tf.strings.as_string(classified[0].astype(np.int64)))
            columns += [predicted, _float_text(classified[1])]
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
    """Labels as read: class names as they are, integers as integers, other numbers with up to 10 significant
    digits."""
    import tensorflow as tf

    if labels.dtype.kind in "UO":
        return tf.constant(labels.astype(str))
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
