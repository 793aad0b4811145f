"""`kcli export RUN --format FORMAT`: write a finished run's model in another format, then prove it.

Each export goes to a temporary name, is loaded back with its own runtime, and must reproduce the
Keras model's outputs on a few inputs; only then is it renamed into place.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from kcli import runs
from kcli.config import did_you_mean
from kcli.display import Display
from kcli.errors import ExportFailed, RunError

FILE_NAMES = {"savedmodel": "saved_model", "keras": "model.keras", "h5": "model.h5",
              "weights": "model.weights.h5", "onnx": "model.onnx", "tflite": "model.tflite"}
# Keras refuses some paths: these suffixes must end the target's name.
SUFFIXES = {"keras": ".keras", "h5": ".h5", "weights": ".weights.h5", "onnx": ".onnx", "tflite": ".tflite"}
# Largest allowed |difference| to the Keras model's outputs; converted graphs reorder float operations.
TOLERANCE = {"savedmodel": 1e-5, "keras": 1e-6, "h5": 1e-6, "weights": 1e-6, "onnx": 1e-4, "tflite": 1e-4}
SAMPLES = 8


def export(ref: str, runs_dir: Path, fmt: str, output: Path | None, display: Display) -> Path:
    """Write, verify and rename into place; returns the exported path."""
    if fmt not in FILE_NAMES:
        raise RunError(f"unknown format {fmt!r}{did_you_mean(fmt, FILE_NAMES)}; "
                       f"choose one of {', '.join(FILE_NAMES)}", key="--format")
    _check_dependencies(fmt)
    run = runs.open_run(ref, runs_dir)
    target = output or run.path / "export" / FILE_NAMES[fmt]
    if fmt in SUFFIXES and not target.name.endswith(SUFFIXES[fmt]):
        raise RunError(f"{target}: a {fmt} export must end in {SUFFIXES[fmt]}", key="--output")
    if target.exists():
        raise RunError(f"{target} already exists; choose another --output or remove it", key="--output")
    model = runs.load_model(run.path, run.record)
    if fmt == "h5" and not _is_graph_model(model):
        raise RunError("h5 cannot hold a subclassed keras.Model (Keras cannot reload it); use keras, weights, "
                       "savedmodel, onnx or tflite", key="--format")
    x = _samples(run.input_shape)
    expected = np.asarray(model.predict(x, verbose=0))   # also "calls" the model, which the ONNX export needs
    target.parent.mkdir(parents=True, exist_ok=True)
    with runs.atomic_target(target) as tmp:
        _WRITE[fmt](model, tmp)
        got = np.asarray(_RUN[fmt](tmp, model, x, runs.custom_objects(run.path, run.record)))
        diff = float(np.max(np.abs(got.reshape(expected.shape) - expected)))
        if not np.isfinite(diff) or diff > TOLERANCE[fmt]:
            raise ExportFailed(f"export check failed: the {fmt} model's outputs differ from the Keras model's "
                               f"by {diff:.3g} (allowed {TOLERANCE[fmt]:g}); nothing was written")
    display.exported(fmt, target, SAMPLES, diff)
    return target


def _is_graph_model(model: keras.Model) -> bool:
    """Sequential and functional models (the ones legacy HDF5 can rebuild)."""
    return isinstance(model, keras.Sequential) or type(model).__name__ == "Functional"


def _check_dependencies(fmt: str) -> None:
    if fmt == "onnx":
        missing = [m for m in ("tf2onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
        if missing:
            raise RunError(f"ONNX export needs {' and '.join(missing)}: pip install 'kcli[onnx]'", key="--format")


def _samples(input_shape: tuple[int | None, ...]) -> np.ndarray:
    """A few seeded inputs of the model's shape (unknown dimensions become 4)."""
    shape = tuple(d if d is not None else 4 for d in input_shape)
    return np.random.default_rng(0).normal(size=(SAMPLES, *shape)).astype(np.float32)


def _write_onnx(model: keras.Model, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf2onnx's numpy-2 shims warn
        model.export(str(path), format="onnx", verbose=False)


def _write_tflite(model: keras.Model, path: Path) -> None:
    model.export(str(path), format="litert", verbose=False)


Custom = dict[str, type]


def _run_savedmodel(path: Path, model: keras.Model, x: np.ndarray, custom: Custom) -> np.ndarray:
    import tensorflow as tf
    loaded = tf.saved_model.load(str(path))  # keep a reference while calling it
    return loaded.serve(tf.constant(x)).numpy()


def _run_keras_file(path: Path, model: keras.Model, x: np.ndarray, custom: Custom) -> np.ndarray:
    return keras.models.load_model(path, custom_objects=custom).predict(x, verbose=0)


def _run_weights(path: Path, model: keras.Model, x: np.ndarray, custom: Custom) -> np.ndarray:
    fresh = keras.models.clone_model(model)
    fresh.load_weights(path)
    return fresh.predict(x, verbose=0)


def _run_onnx(path: Path, model: keras.Model, x: np.ndarray, custom: Custom) -> np.ndarray:
    import onnxruntime
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _run_tflite(path: Path, model: keras.Model, x: np.ndarray, custom: Custom) -> np.ndarray:
    import tensorflow as tf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter announces its move to ai_edge_litert
        interpreter = tf.lite.Interpreter(model_path=str(path))
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _run_artifact_writer(fmt: str) -> Callable[[keras.Model, Path], None]:
    return lambda model, path: runs.save_model_file(model, fmt, path)


_WRITE: dict[str, Callable[[keras.Model, Path], None]] = {
    **{fmt: _run_artifact_writer(fmt) for fmt in ("savedmodel", "keras", "h5", "weights")},
    "onnx": _write_onnx,
    "tflite": _write_tflite,
}
_RUN: dict[str, Callable[[Path, keras.Model, np.ndarray, Custom], np.ndarray]] = {
    "savedmodel": _run_savedmodel,
    "keras": _run_keras_file,
    "h5": _run_keras_file,
    "weights": _run_weights,
    "onnx": _run_onnx,
    "tflite": _run_tflite,
}
