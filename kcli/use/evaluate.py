"""`kcli evaluate RUN`: a finished run's metrics on its own splits or on another data file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kcli import events
from kcli.data import fingerprint, python_source
from kcli.data import stream as stream_mod
from kcli.data.checks import check_inputs
from kcli.data.load import load, load_file
from kcli.data.python_source import Stream
from kcli.data.splits import Arrays, Splits
from kcli.errors import DataError
from kcli.model import outputs as outputs_mod
from kcli.model.load import load_model
from kcli.run import artifacts, find, layout, pictures, records
from kcli.use.head import Head

SPLITS = ("test", "validation", "train")


def evaluate(ref: str, runs_dir: Path, split: str | None, data_file: Path | None, label: str | None,
             listener: events.Listener = events.ignore, trust_code: bool = False) -> dict[str, Any]:
    """Evaluate the run's model, report the metrics and write RUN/eval-<split or file stem>.json; returns what
    the file holds (metrics at the top level, examples, data, per_class, confusion_matrix) and its `path`."""
    run = find.open_run(ref, runs_dir, trust_code)
    if data_file is not None and split is not None:
        raise DataError("give --split or --data, not both", key="--data")
    model, arrays, label = _model_and_data(run, split, data_file, label, listener)
    _note_fallback(run, listener)
    outputs_mod.check_labels(Splits(arrays), model, model.loss, run.ports)
    metrics, matrix, examples = _measure(run, model, arrays)
    out = run.path / f"eval-{label}.json"
    report: dict[str, Any] = {"data": str(data_file) if data_file else label, "examples": examples, **metrics}
    if matrix is not None:
        report["confusion_matrix"] = matrix.tolist()   # rows: true class, columns: predicted class
        report["per_class"] = per_class(matrix, run.record.get("classes"))
    records.write_json(out, report)
    listener(events.Note(f"{run.path} on {label} ({examples} examples)"))
    listener(events.Metrics("Evaluation", metrics))
    if matrix is not None:
        listener(events.PerClass(report["per_class"]))
        picture = run.path / f"eval-{label}-confusion.png"
        pictures.confusion(matrix, picture, f"{run.path.name} on {label}: confusion matrix",
                           run.record.get("classes"))
        listener(events.Note(f"written: {picture}"))
    listener(events.Note(f"written: {out}"))
    return {**report, "path": out}


def _model_and_data(run: find.FinishedRun, split: str | None, data_file: Path | None, label: str | None,
                    listener: events.Listener) -> tuple[Any, Arrays | Stream, str]:
    """The run's model and the rows to evaluate it on (a --data file, or the run's own split) with their name."""
    if data_file is not None:
        arrays = load_file(data_file, run.config.data, "--data", run.ports, label,
                                    run.record.get("features"), run.record.get("classes"))
        check_inputs(arrays.x, run.ports, f"the features of {data_file}", "--data")
        return load_model(run), arrays, data_file.stem
    # (a file that is gone is reported by the read below, as "not found")
    changed = [f for f in fingerprint.changed_files(run.record.get("data_files") or {}) if Path(f).exists()]
    if changed:
        listener(events.Warn(f"the data differs from what {run.path.name} was trained on: {', '.join(changed)} "
                             "changed since training; the splits are re-created from the current contents"))
    model = load_model(run)   # first: it checks that the run's own code may run (trust)
    arrays, name = _split(run, split)
    return model, arrays, name


def _measure(run: find.FinishedRun, model: Any, arrays: Arrays | Stream) -> tuple[dict[str, float],
                                                                                 np.ndarray | None, int]:
    """(metrics, confusion matrix or None, examples) of the model on the rows."""
    if isinstance(arrays, Stream):   # a streamed table: metrics and counts batch by batch, never all rows at once
        with stream_mod.reader_errors(arrays):
            metrics = outputs_mod.evaluate(model, arrays.dataset, None, None)
            return metrics, _streamed_matrix(run, model, arrays), arrays.epoch_setter.reader.rows
    metrics = outputs_mod.evaluate(model, arrays.x, arrays.y, run.config.data.batch_size, arrays.w)
    classes = _classes(run, model, model.predict(outputs_mod.keras_inputs(arrays.x), batch_size=1024, verbose=0),
                       arrays.y)
    return metrics, (confusion_matrix(*classes) if classes else None), len(arrays)


def _streamed_matrix(run: find.FinishedRun, model: Any, stream: Stream) -> np.ndarray | None:
    """The confusion matrix of a streamed split, summed over its batches (None: not a classifier)."""
    matrix: np.ndarray | None = None
    for batch in stream.dataset:
        classes = _classes(run, model, model.predict_on_batch(batch[0]), np.asarray(batch[1]))
        if classes is None:
            return None
        counts = confusion_matrix(*classes)
        matrix = counts if matrix is None else matrix + counts
    return matrix


def _classes(run: find.FinishedRun, model: Any, raw: Any, y: Any) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(true class ids, predicted class ids, class count) for a one-output classifier's outputs `raw` on rows
    labelled `y`, else None."""
    if isinstance(y, dict):
        return None
    raw = np.asarray(raw)
    width = int(np.prod(raw.shape[1:]))
    head = Head.of(run, width)
    classified = head.classify(raw)
    if classified is None:
        return None
    y = np.asarray(y).reshape(len(raw), -1)
    true = np.argmax(y, axis=1) if y.shape[1] > 1 else np.rint(y[:, 0]).astype(np.int64)
    count = width if head.kind == "multiclass" else 2
    if true.min() < 0 or true.max() >= count:
        return None
    return true, classified[0].astype(np.int64), count


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, count: int) -> np.ndarray:
    """counts[i, j]: examples of class i predicted as class j."""
    matrix = np.zeros((count, count), dtype=np.int64)
    np.add.at(matrix, (true, predicted), 1)
    return matrix


def per_class(matrix: np.ndarray, names: list[str] | None = None) -> list[dict[str, Any]]:
    """Precision, recall and support of each class (None where nothing was predicted / present); a class is
    its name when the run learned class names, else its id."""
    out = []
    for i in range(len(matrix)):
        hit, predicted, support = int(matrix[i, i]), int(matrix[:, i].sum()), int(matrix[i].sum())
        name = names[i] if names and len(names) == len(matrix) else i
        out.append({"class": name, "precision": hit / predicted if predicted else None,
                    "recall": hit / support if support else None, "support": support})
    return out


def _split(run: find.FinishedRun, split: str | None) -> tuple[Arrays | Stream, str]:
    """The run's own split, re-created from its saved config exactly as training made it."""
    cfg = run.config
    try:   # a data function runs as the run copied it into RUN/code/ (the run's locked registry maps it there)
        splits = load(cfg.data, cfg.seed, run.ports, artifacts.run_registry(run))
    except DataError as exc:  # e.g. the training data moved: point at the run's config
        raise exc.located(run.path / layout.CONFIG) from None
    if split is None:
        split = "test" if splits.test is not None else "validation" if splits.validation is not None else None
        if split is None:
            raise DataError("the run has no test or validation data; pass --split train or --data FILE",
                            key="--split")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}", key="--split")
    arrays = getattr(splits, split)
    if arrays is None:
        raise DataError(f"the run has no {split} data", key="--split")
    if isinstance(arrays, Stream) and arrays.epoch_setter is None:   # the user's dataset: its batches, gathered
        arrays = Arrays(*python_source.to_arrays(arrays))
    return arrays, split


def _note_fallback(run: find.FinishedRun, listener: events.Listener) -> None:
    """Say so when the model came from config.yaml + weights instead of model.keras."""
    if run.loaded_from and run.loaded_from != layout.ARTIFACTS["keras"]:
        listener(events.Note(f"model.keras cannot be deserialized; the model was rebuilt from {run.loaded_from}"))
