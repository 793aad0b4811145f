"""`kcli predict RUN --input FILE`: a finished run's predictions, streamed in chunks.

Inputs are read a chunk at a time (predict_input.py) and outputs written as they come, so a CSV with millions
of rows predicts in bounded memory.
"""

from __future__ import annotations

import zipfile
from collections import Counter
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kcli import events
from kcli.config import model_io as ports_mod
from kcli.errors import DataError
from kcli.files import atomic
from kcli.model import outputs as outputs_mod
from kcli.model.load import load_model
from kcli.run import find
from kcli.use import predict_images
from kcli.use.head import Head
from kcli.use.predict_input import InputFile, open_input
from kcli.use.unseen import Unseen

# Rows per model call when --batch-size is not given. Inference results do not depend on it (beyond float
# rounding) and 1024 is ~10x faster than Keras's predict default of 32 on a small MLP.
PREDICT_BATCH = 1024
PREVIEW_ROWS = 10
OUTPUT_SUFFIXES = (".csv", ".npy", ".npz")


@dataclass
class Collected:
    """What the terminal shows: the first rows and the count of each predicted class (and, for the API, every
    row's answers)."""

    preview: list[tuple[Any, Any, Any, np.ndarray]] = field(default_factory=list)
    counts: Counter[int] = field(default_factory=Counter)
    rows: int = 0
    gathered: dict[str, list[np.ndarray]] | None = None   # None: streamed, not kept (the CLI)

    def result(self) -> dict[str, np.ndarray]:
        """Every row's answers, joined: `outputs` (as .npy holds them), `predicted` and `probability` (a
        classifier), `label` (a carried label column)."""
        return {k: np.concatenate(v) for k, v in (self.gathered or {}).items() if v}


def predict(ref: str, runs_dir: Path, inputs: Path | Any, output: Path | None, batch_size: int | None,
            label: str | None, listener: events.Listener = events.ignore, overwrite: bool = False,
            trust_code: bool = False, gather: bool = False) -> dict[str, Any]:
    """Predict every row of `inputs` (a file, or arrays given in Python); write `output` (.csv / .npy / .npz) or
    show a preview. Returns every row's answers when `gather` (else {}: a large file streams through), and for a
    table model `unseen`: the cells training never showed it (Unseen.result)."""
    if output is not None and output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise DataError(f"{output}: the output must end in .csv, .npy or .npz", key="--output")
    _check_output(output, overwrite)
    run = find.open_run(ref, runs_dir, trust_code)
    batch = batch_size or PREDICT_BATCH
    if run.config.data.source == "images":   # a folder or image files in; file, class name, probability out
        if not isinstance(inputs, (str, Path)):
            raise DataError("an image model predicts from image files: give a folder or an image file",
                            key="--input")
        return predict_images.predict(run, Path(inputs), output, batch, listener, gather)
    source = open_input(Path(inputs), run, label) if isinstance(inputs, (str, Path)) else _arrays_input(inputs, run)
    model = load_model(run)
    shapes = [tuple(s[1:]) for s in outputs_mod.output_shapes(model, run.ports)]
    columns = _output_columns(run.ports.outputs, shapes)
    out_shape = shapes[0] if len(shapes) == 1 else (len(columns),)
    head = Head.of(run, int(np.prod(out_shape)))
    collected = Collected(gathered={"outputs": [], "predicted": [], "probability": [], "label": []} if gather
                          else None)
    unseen = Unseen.of(run.config.data.columns or {}) if run.ports.tabular else None
    with ExitStack() as stack:
        writer = _writer(stack, output, source, head, out_shape, columns) if output is not None else None
        for x, labels in source.chunks:
            if unseen is not None:
                unseen.add(x)
            raw = ports_mod.flat_outputs(model.predict(outputs_mod.keras_inputs(x), batch_size=batch, verbose=0))
            classified = head.classify(raw)
            if writer is not None:
                writer.write(raw, classified, labels)
            _collect(collected, raw, classified if not head.class_names or classified is None else
                     (head.name_of(classified[0]), classified[1]), labels)
            _gather(collected, head, raw.astype(np.float32).reshape(len(raw), *out_shape), labels)
        if writer is not None:
            writer.close(collected.rows)
    if unseen is not None and unseen.line():
        listener(events.Warn(str(unseen.line())))
    listener(events.Predictions(collected.preview, collected.counts, collected.rows, head.note, source.label,
                                output, show_rows=output is None))
    return {**collected.result(), **({"unseen": unseen.result()} if unseen is not None else {})}


def _gather(collected: Collected, head: Head, raw: np.ndarray, labels: np.ndarray | None) -> None:
    """Keep one chunk's answers (the API's result); nothing when streaming."""
    if collected.gathered is None:
        return
    collected.gathered["outputs"].append(raw)
    for name, values in head.answers(raw).items():
        collected.gathered[name].append(values)
    if labels is not None:
        collected.gathered["label"].append(labels.reshape(len(raw)))


def _arrays_input(x: Any, run: find.FinishedRun) -> InputFile:
    """Arrays given in Python (the API), checked and scaled as an input file's: one array for a one-input model;
    a dict by input name for named inputs, by column for a table model (raw cells: the model encodes them)."""
    from kcli.data.checks import check_inputs
    from kcli.data.prepare import scale_features
    from kcli.use import predict_input

    ports, data = run.ports, run.config.data
    if not isinstance(x, Mapping):
        if ports.named:
            raise DataError(f"the model takes named inputs ({', '.join(p.name for p in ports.inputs)}): pass a "
                            "dict of arrays", key="--input")
        return predict_input.array_input(np.asarray(x), None, None, run)
    if ports.tabular:
        import pyarrow as pa

        from kcli.data import tables

        table = pa.table({str(k): np.asarray(v) for k, v in x.items()})
        x = tables.read_split(table, data.columns or {}, Path("inputs"), "--input", None).x
    else:
        if not ports.named:
            raise DataError("the model takes one array, not a dict of arrays", key="--input")
        missing = [p.name for p in ports.inputs if p.name not in x]
        if missing:
            raise DataError(f"the inputs lack {', '.join(missing)}; the model takes: "
                            f"{', '.join(p.name for p in ports.inputs)}", key="--input")
        x = {p.name: np.asarray(x[p.name]) for p in ports.inputs}
        check_inputs(x, ports, "the input's features", "--input")
        x = {p.name: scale_features(x[p.name], data.scale, p.dtype, f"input {p.name!r}", "--input", 1)
             for p in ports.inputs}
    return InputFile(ports_mod.rows(x), None, iter([(x, None)]))


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
    atomic.writable_folder(output.parent, "--output", DataError)


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
    tmp = stack.enter_context(atomic.target(output, replace=True))
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
