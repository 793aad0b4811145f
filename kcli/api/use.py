"""A finished run from Python: evaluate it, predict with it, export it, load its model. No Rich: progress and
results are events for `listener` (kcli.events; the CLI passes its Display), errors the CLI's KcliError types.

`run` is a run folder (str or Path), a run name under `runs_dir`, `latest`, or anything with a `.path` (the Run
that `kcli.api.train` returns).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kcli import events

if TYPE_CHECKING:
    import keras

    from kcli.run.find import FinishedRun

RUNS_DIR = Path("runs")


def _ref(run: Any) -> str:
    """A run reference as the commands take it: a Run's folder, or the str/Path given."""
    return str(getattr(run, "path", run))


def evaluate(run: Any, split: str | None = None, data: str | Path | None = None, label: str | None = None, *,
             runs_dir: str | Path = RUNS_DIR, trust_code: bool = False,
             listener: events.Listener = events.ignore) -> dict[str, Any]:
    """Loss and metrics of a run on its own split (`split`, default test, else validation) or on a `data` file,
    as `kcli evaluate`: writes RUN/eval-<split or file stem>.json (and its pictures) and returns `metrics`
    ({name: float}), `examples`, `data`, `per_class` and `confusion_matrix` (classifiers), `scores` (ROC AUC,
    average precision, calibration, thresholds; MAE/RMSE/R2: as the JSON holds them) and `path` (the file
    written)."""
    from kcli.use.evaluate import evaluate as evaluate_run

    report = evaluate_run(_ref(run), Path(runs_dir), split, Path(data) if data is not None else None, label,
                          listener, trust_code)
    shown = {"data", "examples", "per_class", "confusion_matrix", "scores", "path"}
    return {"metrics": {k: v for k, v in report.items() if k not in shown},
            **{k: v for k, v in report.items() if k in shown}}


def predict(run: Any, inputs: str | Path | np.ndarray | dict[str, Any], output: str | Path | None = None, *,
            batch_size: int | None = None, label: str | None = None, runs_dir: str | Path = RUNS_DIR,
            overwrite: bool = False, trust_code: bool = False, keep: bool = True,
            listener: events.Listener = events.ignore) -> dict[str, Any]:
    """The run's predictions of `inputs` (a file as `kcli predict --input` takes, an array, or a dict of arrays by
    input name / table column), the numbers `kcli predict` writes: `outputs` (raw, float32, as its .npy), and for
    a classifier `predicted` (class name or id) and `probability`; `label` (a carried label column), `file`
    (images); for a table model `unseen`: {rows, empty_rows, columns: {column: {unknown, empty, example}}}, the
    rows holding category values training never saw or empty cells (filled), as `kcli predict` warns. With
    `output`, also writes it as `kcli predict --output` does; `keep=False` streams a large file through in
    bounded memory and returns only `unseen` (the CLI)."""
    from kcli.use.predict import predict as predict_run

    source = Path(inputs) if isinstance(inputs, str) else inputs
    return predict_run(_ref(run), Path(runs_dir), source, Path(output) if output is not None else None,
                       batch_size, label, listener, overwrite, trust_code, gather=keep)


def export(run: Any, format: str, out: str | Path | None = None, *, serving_dir: str | Path | None = None,
           runs_dir: str | Path = RUNS_DIR, trust_code: bool = False,
           listener: events.Listener = events.ignore) -> Path:
    """Write the run's model as `format` (savedmodel, keras, h5, weights, onnx, tflite) to `out` (default
    RUN/export/<file>), reloaded and checked against the model as `kcli export` does; returns the path."""
    from kcli.use.export import export as export_run

    return export_run(_ref(run), Path(runs_dir), format, Path(out) if out is not None else None, listener,
                      trust_code, Path(serving_dir) if serving_dir is not None else None)


def load_run(run: Any, *, runs_dir: str | Path = RUNS_DIR, trust_code: bool = False) -> tuple[FinishedRun, keras.Model]:
    """The run's record (config, ports, run.json) and its Keras model, opened with the trust rules of every
    command (the run's own code runs only if trusted)."""
    from kcli.model.load import load_model
    from kcli.run import find

    finished = find.open_run(_ref(run), Path(runs_dir), trust_code)
    return finished, load_model(finished)


def load(run: Any, *, runs_dir: str | Path = RUNS_DIR, trust_code: bool = False) -> keras.Model:
    """The run's Keras model (model.keras, or rebuilt from config.yaml + weights as the commands do)."""
    return load_run(run, runs_dir=runs_dir, trust_code=trust_code)[1]
