"""`kcli export RUN --format FORMAT`: write a finished run's model in another format, then prove it.

Each export goes to a temporary name, is loaded back with its own runtime (kcli/run/verify.py), and must reproduce
the Keras model's outputs on a few inputs; only then is it renamed into place.
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras

from kcli import events
from kcli.config.model_io import Ports
from kcli.config.suggest import did_you_mean
from kcli.errors import ExportFailed, RunError
from kcli.files import atomic
from kcli.model import build as model_mod
from kcli.model import table_inputs as tabular
from kcli.model.load import load_model
from kcli.run import artifacts, find, verify

FILE_NAMES = {"savedmodel": "saved_model", "keras": "model.keras", "h5": "model.h5",
              "weights": "model.weights.h5", "onnx": "model.onnx", "tflite": "model.tflite"}
# Keras refuses some paths: these suffixes must end the target's name.
NO_STRING_LOOKUP = ("onnx", "tflite")   # formats that take category ids instead of raw categories
SUFFIXES = {"keras": ".keras", "h5": ".h5", "weights": ".weights.h5", "onnx": ".onnx", "tflite": ".tflite"}
INSTALL_HINT = {"onnx": "pip install 'kcli-keras[onnx]' (in a checkout: pip install -e '.[onnx]')"}


def export(ref: str, runs_dir: Path, fmt: str, output: Path | None, listener: events.Listener = events.ignore,
           trust_code: bool = False, serving_dir: Path | None = None) -> Path:
    """Write, verify and rename into place; returns the exported path."""
    if fmt not in FILE_NAMES:
        raise RunError(f"unknown format {fmt!r}{did_you_mean(fmt, FILE_NAMES)}; "
                       f"choose one of {', '.join(FILE_NAMES)}", key="--format")
    if serving_dir is not None:
        return _export_for_serving(ref, runs_dir, fmt, output, listener, trust_code, serving_dir)
    _check_dependencies(fmt)
    run = find.open_run(ref, runs_dir, trust_code)
    target = _target(run, fmt, output)
    model = load_model(run)
    if fmt == "h5" and not _is_graph_model(model):
        raise RunError("h5 cannot hold a subclassed keras.Model (Keras cannot reload it); use keras, weights, "
                       "savedmodel, onnx or tflite", key="--format")
    columns = run.config.data.columns
    x = verify.samples(run.ports, tabular.sample_rows(columns, run.ports, verify.SAMPLES) if columns else None)
    expected = verify.reference(model, x)   # also "calls" the model, which the ONNX export needs
    written, x_written = model, x
    cut = tabular.without_lookups(model) if fmt in NO_STRING_LOOKUP else None
    if cut is not None:   # the model from the category ids on; checked on the same rows, turned into ids
        written, to_ids = cut
        x_written = to_ids(x)
        verify.reference(written, x_written)   # the ONNX export needs a model that was called
    target.parent.mkdir(parents=True, exist_ok=True)
    diff = _write_checked(run, model, fmt, target, written, x_written, expected)
    listener(events.Exported(fmt, target, verify.SAMPLES, diff))
    if cut is not None:
        listener(events.Note(_cut_note(fmt, list(cut[0].input))))
    return target


def _cut_note(fmt: str, inputs: list[str]) -> str:
    """What the inputs of a model cut at its lookups and text vectorizers are."""
    ids = ", ".join(sorted(n for n in inputs if n.endswith("_id")))
    texts = ", ".join(sorted(n for n in inputs if n.endswith(tabular.TOKENS)))
    said = [f"each category as its id ({ids}: 0 = not in the vocabulary, i = the i-th value of "
            "data.columns.<column>.vocabulary in the run's config.yaml)"] if ids else []
    if texts:
        said.append(f"each text column as its TextVectorization's output ({texts}: the bag of words, or the token "
                    "ids, over the vocabulary in the run's config.yaml; the keras and savedmodel formats take text)")
    return f"{fmt} has no string lookup: this model takes {' and '.join(said)}; numbers as they are"


def _write_checked(run: find.FinishedRun, model: keras.Model, fmt: str, target: Path, written: keras.Model,
                   x: Any, expected: Any) -> float:
    """Write `written` as `fmt` under a temporary name, load it back and compare its outputs on `x` with
    `expected` (the run's model's); renamed to `target` only if they agree. Returns the largest difference."""
    custom = artifacts.custom_objects(run)
    with atomic.target(target) as tmp:
        _write(fmt, written, tmp, run.ports)
        try:
            return verify.check(fmt, tmp, x, expected, custom,
                                lambda: model_mod.rebuild(run.config, artifacts.run_registry(run)),
                                verify.compute_dtype(model))
        except verify.NotReloadable as exc:
            raise ExportFailed(f"export check failed: the {fmt} file cannot be loaded back ({exc}); "
                               f"{verify.not_reloadable_hint(model, custom)}; nothing was written") from None
        except ExportFailed as exc:
            problem = str(exc).replace(str(tmp), str(target)).replace(tmp.name, target.name)
            raise ExportFailed(f"export check failed: {problem}; nothing was written. The keras, weights and "
                               "savedmodel formats hold any Keras model") from None


def _target(run: find.FinishedRun, fmt: str, output: Path | None) -> Path:
    """Where the export goes (default RUN/export/<file>): a new file with the format's suffix, in a writable
    folder."""
    target = output or run.path / "export" / FILE_NAMES[fmt]
    if fmt in SUFFIXES and not target.name.endswith(SUFFIXES[fmt]):
        raise RunError(f"{target}: a {fmt} export must end in {SUFFIXES[fmt]}", key="--output")
    if target.exists():
        raise RunError(f"{target} already exists; choose another --output or remove it", key="--output")
    # the run's export/ folder is made below: until then, the run folder is where it must be written
    atomic.writable_folder(target.parent if output is not None or target.parent.is_dir() else run.path, "--output")
    return target


def _export_for_serving(ref: str, runs_dir: Path, fmt: str, output: Path | None, listener: events.Listener,
                        trust_code: bool, serving_dir: Path) -> Path:
    """--serving-dir: the versioned SavedModel layout TF Serving and KServe load (serving_export.py)."""
    if fmt != "savedmodel":
        raise RunError(f"--serving-dir writes a SavedModel: use --format savedmodel (not {fmt})", key="--serving-dir")
    if output is not None:
        raise RunError("--serving-dir chooses the folder itself (DIR/NAME/VERSION); leave out --output",
                       key="--output")
    from kcli.use import serving_export as serving

    run = find.open_run(ref, runs_dir, trust_code)
    target, diff = serving.write(run, load_model(run), serving_dir)
    listener(events.Exported("savedmodel for serving", target, verify.SAMPLES, diff))
    listener(events.Note(f"serve it: docker run -p 8501:8501 -v {serving_dir.resolve()}:/models -e MODEL_NAME="
                 f"{run.config.name} tensorflow/serving (request bodies as for kcli serve)"))
    return target


def _write(fmt: str, model: keras.Model, path: Path, ports: Ports) -> None:
    """Write one export; a format that cannot represent the model is one line, not a traceback."""
    try:
        _WRITE[fmt](model, path, ports)
    except Exception as exc:  # converters raise anything: say which format and why, on one line
        raise ExportFailed(f"the {fmt} format cannot represent this model ({type(exc).__name__}: "
                           f"{verify.innermost(exc)}); nothing was written. The keras, weights and savedmodel "
                           "formats hold any Keras model") from None


def _is_graph_model(model: keras.Model) -> bool:
    """Sequential and functional models (the ones legacy HDF5 can rebuild)."""
    return isinstance(model, keras.Sequential) or type(model).__name__ == "Functional"


def _check_dependencies(fmt: str) -> None:
    if fmt == "onnx":
        missing = [m for m in ("tf2onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
        if missing:
            raise RunError(f"ONNX export needs {' and '.join(missing)}: {INSTALL_HINT['onnx']}", key="--format")


def _write_onnx(model: keras.Model, path: Path, ports: Ports) -> None:
    import logging

    logging.getLogger("tf2onnx").setLevel(logging.CRITICAL)   # its conversion log; kcli reports the outcome
    # TensorFlow warns (over three lines) that a lookup table's initializer is not part of the frozen graph
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    with warnings.catch_warnings(), _normalization_as_variables(model):
        warnings.simplefilter("ignore")  # tf2onnx's numpy-2 shims warn
        model.export(str(path), format="onnx", verbose=False)


@contextlib.contextmanager
def _normalization_as_variables(model: keras.Model) -> Iterator[None]:
    """An adapted Normalization keeps its mean and variance as tensors that the traced function captures, and
    tf2onnx makes captured tensors graph inputs (the .onnx then asks for `.../Sub/y:0`); as variables they are
    frozen into constants. Restored afterwards."""
    import tensorflow as tf

    layers = [layer for layer in model._flatten_layers(include_self=False)
              if isinstance(layer, keras.layers.Normalization) and getattr(layer, "mean", None) is not None]
    saved = [(layer.mean, layer.variance) for layer in layers]
    try:
        for layer in layers:
            layer.mean = tf.Variable(layer.mean, trainable=False)
            layer.variance = tf.Variable(layer.variance, trainable=False)
        yield
    finally:
        for layer, (mean, variance) in zip(layers, saved):
            layer.mean, layer.variance = mean, variance


def _write_tflite(model: keras.Model, path: Path, ports: Ports) -> None:
    model.export(str(path), format="litert", verbose=False)


def _run_artifact_writer(fmt: str) -> Callable[[keras.Model, Path, Ports], None]:
    return lambda model, path, ports: artifacts.save_model_file(model, fmt, path, ports)


_WRITE: dict[str, Callable[[keras.Model, Path, Ports], None]] = {
    **{fmt: _run_artifact_writer(fmt) for fmt in ("savedmodel", "keras", "h5", "weights")},
    "onnx": _write_onnx,
    "tflite": _write_tflite,
}
