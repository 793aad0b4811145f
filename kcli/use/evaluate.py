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
from kcli.files import remote
from kcli.model import outputs as outputs_mod
from kcli.model.load import load_model
from kcli.run import artifacts, find, layout, pictures, records
from kcli.use import scores
from kcli.use.head import Head, is_regression

SPLITS = ("test", "validation", "train")
MAX_CLASS_CURVES = 10   # more classes than this: the ROC and PR pictures draw the micro-average only


def evaluate(ref: str, runs_dir: Path, split: str | None, data_file: Path | str | None, label: str | None,
             listener: events.Listener = events.ignore, trust_code: bool = False) -> dict[str, Any]:
    """Evaluate the run's model, report the metrics and write RUN/eval-<split or file stem>.json; returns what
    the file holds (metrics at the top level, examples, data, per_class, confusion_matrix, scores) and its
    `path`. `data_file` may be an object-store URL (read from a local copy, recorded as the URL)."""
    run = find.open_run(ref, runs_dir, trust_code)
    if data_file is not None and split is not None:
        raise DataError("give --split or --data, not both", key="--data")
    shown = str(data_file) if data_file is not None else None
    with remote.named_as_urls():
        local = remote.local_copy(str(data_file), "--data") if remote.is_url(data_file) else data_file
        model, arrays, label = _model_and_data(run, split, Path(local) if local is not None else None, label,
                                               listener)
    _note_fallback(run, listener)
    outputs_mod.check_labels(Splits(arrays), model, model.loss, run.ports)
    metrics, tally, examples = _measure(run, model, arrays)
    out = run.path / f"eval-{label}.json"
    report: dict[str, Any] = {"data": shown or label, "examples": examples, **metrics}
    if tally.matrix is not None:
        report["confusion_matrix"] = tally.matrix.tolist()   # rows: true class, columns: predicted class
        report["per_class"] = per_class(tally.matrix, run.record.get("classes"))
    scored = tally.scores(run.record.get("classes"))
    if tally.non_finite:
        listener(events.Warn(f"{tally.non_finite} rows of {label} have NaN or infinite outputs: left out of the "
                             f"scores (a model that diverged, or inputs out of range)"))
    if scored is not None:
        report["scores"] = scored.numbers
    records.write_json(out, report)
    listener(events.Note(f"{run.path} on {label} ({examples} examples)"))
    listener(events.Metrics("Evaluation", metrics))
    title = f"{run.path.name} on {label}"
    if tally.matrix is not None:
        listener(events.PerClass(report["per_class"]))
        picture = layout.eval_picture(run.path, label, "confusion")
        pictures.confusion(tally.matrix, picture, f"{title}: confusion matrix", run.record.get("classes"))
        listener(events.Note(f"written: {picture}"))
    if scored is not None:
        listener(events.Metrics("Scores", scores.headline(scored.numbers)))
        undefined = _undefined_curves(scored, label) if tally.matrix is not None else None
        if undefined:
            listener(events.Warn(undefined))
        for picture in _draw(run, label, title, scored, tally):
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
    changed = [f for f in fingerprint.changed_files(run.record.get("data_files") or {})
               if remote.is_url(f) or Path(f).exists()]
    if changed:
        listener(events.Warn(f"the data differs from what {run.path.name} was trained on: {', '.join(changed)} "
                             "changed since training; the splits are re-created from the current contents"))
    model = load_model(run)   # first: it checks that the run's own code may run (trust)
    arrays, name = _split(run, split)
    return model, arrays, name


def _measure(run: find.FinishedRun, model: Any, arrays: Arrays | Stream) -> tuple[dict[str, float], _Tally, int]:
    """(metrics, the confusion matrix and scored rows, examples) of the model on the rows."""
    tally = _Tally(run)
    if isinstance(arrays, Stream):   # a streamed table: metrics and counts batch by batch, never all rows at once
        with stream_mod.reader_errors(arrays):
            metrics = outputs_mod.evaluate(model, arrays.dataset, None, None)
            for batch in arrays.dataset:
                tally.add(model.predict_on_batch(batch[0]), batch[1])
            return metrics, tally, arrays.epoch_setter.reader.rows
    metrics = outputs_mod.evaluate(model, arrays.x, arrays.y, run.config.data.batch_size, arrays.w)
    tally.add(model.predict(outputs_mod.keras_inputs(arrays.x), batch_size=1024, verbose=0), arrays.y)
    return metrics, tally, len(arrays)


class _Tally:
    """What evaluate gathers from the model's outputs, batch by batch: a classifier's confusion matrix and a
    bounded sample of (class id, class probabilities) rows, or a regression's (true, predicted) rows."""

    def __init__(self, run: find.FinishedRun) -> None:
        self.run = run
        self.matrix: np.ndarray | None = None
        self.sample = scores.Sample()
        self.usable = True   # False: not a one-output classifier or regression (no matrix, no scores)
        self.non_finite = 0   # rows left out of the scores: the model's outputs were NaN or infinite

    def add(self, raw: Any, y: Any) -> None:
        """Count one batch: the model's outputs `raw` on rows labelled `y`."""
        if not self.usable:
            return
        if isinstance(y, dict) or isinstance(raw, (list, tuple, dict)):   # several outputs: neither
            self.usable = False
            return
        raw = np.asarray(raw)
        classes = _classes(self.run, raw, y)
        if classes is not None:
            true, predicted, probabilities = classes
            counts = confusion_matrix(true, predicted, probabilities.shape[1])
            self.matrix = counts if self.matrix is None else self.matrix + counts
            self.sample.add(true, probabilities)
            return
        values = _values(self.run, raw, y)
        if values is None or self.matrix is not None:
            self.usable, self.matrix = False, None
            return
        self.sample.add(*values)

    def scores(self, names: list[str] | None) -> scores.Scores | None:
        """The scores of the gathered rows (a sample of them beyond scores.MAX_VALUES numbers), else None."""
        columns = self.sample.columns() if self.usable else ()
        if not columns or not len(columns[0]):
            return None
        columns, self.non_finite = scores.finite_rows(*columns)
        if not len(columns[0]):
            return None
        result = (scores.classifier(*columns, names) if self.matrix is not None
                  else scores.regression_scores(*columns))
        if self.non_finite:
            result.numbers["non_finite_rows"] = self.non_finite
        if self.sample.sampled:
            result.numbers["sampled_from"] = self.sample.seen
        return result


def _classes(run: find.FinishedRun, raw: np.ndarray, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(true class ids, predicted class ids, class probabilities) for a one-output classifier's outputs `raw`
    on rows labelled `y`, else None."""
    if isinstance(y, dict):
        return None
    width = int(np.prod(raw.shape[1:]))
    head = Head.of(run, width)
    classified = head.classify(raw)
    if classified is None:
        return None
    y = np.asarray(y).reshape(len(raw), -1)
    true = np.argmax(y, axis=1) if y.shape[1] > 1 else np.rint(y[:, 0]).astype(np.int64)
    probabilities = head.probabilities(raw)
    if true.min() < 0 or true.max() >= probabilities.shape[1]:
        return None
    return true, classified[0].astype(np.int64), probabilities


def _values(run: find.FinishedRun, raw: np.ndarray, y: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(true values, predicted values), each (rows, outputs), of a one-output regression model, else None."""
    if isinstance(y, dict) or not is_regression(run):
        return None
    predicted = raw.reshape(len(raw), -1)
    true = np.asarray(y, dtype=np.float64).reshape(len(raw), -1)
    return (true, predicted) if true.shape == predicted.shape else None


def _draw(run: find.FinishedRun, label: str, title: str, scored: scores.Scores, tally: _Tally) -> list[Path]:
    """Draw the scores' pictures beside eval-<label>.json; returns the files written."""
    path = {kind: layout.eval_picture(run.path, label, kind) for kind in layout.EVAL_PICTURES}
    if tally.matrix is None:   # regression
        true, predicted = tally.sample.columns()
        pictures.predicted_vs_true(true, predicted, path["predicted"], f"{title}: predicted vs true")
        pictures.residuals(true, predicted, path["residuals"], f"{title}: residuals")
        return [path["predicted"], path["residuals"]]
    roc, pr = scored.roc, scored.precision_recall
    if len(scored.numbers.get("per_class", ())) > MAX_CLASS_CURVES:   # too many to tell apart: the micro-average
        roc, pr = [c for c in roc if c.name == scores.MICRO], [c for c in pr if c.name == scores.MICRO]
    drawn = []
    for kind, curves, draw, what in (("roc", roc, pictures.roc, "ROC"),
                                     ("pr", pr, pictures.precision_recall, "precision-recall")):
        if curves:
            draw([(c.name, c.x, c.y, c.area) for c in curves], path[kind], f"{title}: {what}")
            drawn.append(path[kind])
        else:   # undefined on these rows (see _undefined_curves): an earlier evaluation's picture would mislead
            path[kind].unlink(missing_ok=True)
    calibration = scored.numbers["calibration"]
    pictures.reliability(calibration["table"], calibration["ece"], path["calibration"], f"{title}: reliability",
                         calibration["of"])
    return [*drawn, path["calibration"]]


def _undefined_curves(scored: scores.Scores, label: str) -> str | None:
    """The warning when a classifier's ROC or precision-recall curve is undefined (the rows hold one class)."""
    missing = [what for what, curves in (("ROC", scored.roc), ("precision-recall", scored.precision_recall))
               if not curves]
    if not missing:
        return None
    return (f"no {' or '.join(missing)} curve on {label}: its rows hold only one class (a curve needs rows "
            f"of the class and rows of others)")


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
