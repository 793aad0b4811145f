"""A finished run from Python: evaluate it, predict with it, export it, load its model. No Rich: progress and
results are events for `listener` (kcli.events; the CLI passes its Display), errors the CLI's KcliError types.

`run` is a run folder (str or Path), a run name under `runs_dir`, `latest`, or anything with a `.path` (the Run
that `kcli.api.train` returns).
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kcli import events
from kcli.errors import DataError, KcliError, RunError
from kcli.files import remote

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

    source = data if data is None or remote.is_url(data) else Path(data)
    report = evaluate_run(_ref(run), Path(runs_dir), split, source, label, listener, trust_code)
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

    with contextlib.ExitStack() as stack:
        stack.enter_context(remote.named_as_urls())
        source = _input(inputs) if isinstance(inputs, str) else inputs
        target = _output(stack, output, "--output", overwrite, DataError, "pass --overwrite to replace it")
        return predict_run(_ref(run), Path(runs_dir), source, target, batch_size, label,
                           _showing(listener, target, output), overwrite, trust_code, gather=keep)


def export(run: Any, format: str, out: str | Path | None = None, *, serving_dir: str | Path | None = None,
           runs_dir: str | Path = RUNS_DIR, trust_code: bool = False,
           listener: events.Listener = events.ignore) -> Path | str:
    """Write the run's model as `format` (savedmodel, keras, h5, weights, onnx, tflite) to `out` (default
    RUN/export/<file>; a URL: written here, then uploaded), reloaded and checked against the model as `kcli
    export` does; returns the path (or the URL)."""
    from kcli.use.export import export as export_run

    if remote.is_url(serving_dir):
        raise RunError("--serving-dir must be a local folder (object storage: export with --output URL)",
                       key="--serving-dir")
    with contextlib.ExitStack() as stack:
        stack.enter_context(remote.named_as_urls())
        target = _output(stack, out, "--output", False, RunError, "choose another --output or remove it")
        written = export_run(_ref(run), Path(runs_dir), format, target, _showing(listener, target, out), trust_code,
                             Path(serving_dir) if serving_dir is not None else None)
    return str(out) if remote.is_url(out) else written


def _input(path: str) -> Path:
    """An input file: a local path, or the local copy of an object-store URL (files/remote.py)."""
    return remote.local_copy(path, "--input") if remote.is_url(path) else Path(path)


def _output(stack: contextlib.ExitStack, path: str | Path | None, key: str, overwrite: bool,
            error: type[KcliError], fix: str) -> Path | None:
    """Where a command writes: a local path, or for a URL a temporary local one uploaded when the command
    succeeds (an existing object is replaced only when `overwrite`)."""
    if path is None or not remote.is_url(path):
        return Path(path) if path is not None else None
    url = str(path)
    if not overwrite and remote.exists(url, key, error):
        raise error(f"{url} already exists; {fix}", key=key)
    return stack.enter_context(remote.upload_after(url, key, error))


def _showing(listener: events.Listener, local: Path | None, url: str | Path | None) -> events.Listener:
    """`listener`, told the URL wherever an event names the temporary local file written for it."""
    if local is None or not remote.is_url(url):
        return listener

    def told(event: events.Event) -> None:
        for name in ("path", "output"):
            if getattr(event, name, None) == local:
                event = dataclasses.replace(event, **{name: str(url)})   # type: ignore[type-var]
        listener(event)
    return told


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
