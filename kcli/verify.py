"""Proof that a saved model is the trained one: load it back with its own runtime and compare outputs.

`kcli train` checks every artifact it writes this way before a run may say "completed", and `kcli export`
checks each export before renaming it into place. Each artifact is run twice on the same inputs, so an
export that kept training-mode randomness (augmentation layers) is caught too.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from kcli.errors import ExportFailed

SAMPLES = 8
# Largest allowed |difference| to the Keras model's outputs; converted graphs reorder float operations.
TOLERANCE = {"savedmodel": 1e-5, "keras": 1e-6, "h5": 1e-6, "weights": 1e-6, "onnx": 1e-4, "tflite": 1e-4}

Rebuild = Callable[[], keras.Model]
Custom = dict[str, type]


class NotReloadable(Exception):
    """Keras cannot deserialize a .keras/.h5 file (typically a custom class without get_config)."""


def samples(input_shape: tuple[int | None, ...], real: np.ndarray | None = None) -> np.ndarray:
    """A few inputs of the model's shape: rows of real data when given, else seeded normal values
    (unknown dimensions become 4)."""
    if real is not None and len(real):
        return np.asarray(real[:SAMPLES], dtype=np.float32)
    shape = tuple(d if d is not None else 4 for d in input_shape)
    return np.random.default_rng(0).normal(size=(SAMPLES, *shape)).astype(np.float32)


def reference(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """The live model's inference outputs on `x`."""
    return infer(model, x)


def infer(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """One direct inference call: the same numbers as model.predict without building a predict function
    (~0.1 s each), which a handful of rows does not need."""
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))


def check(fmt: str, path: Path, x: np.ndarray, expected: np.ndarray, custom: Custom, rebuild: Rebuild) -> float:
    """Load `path` with its own runtime, run it twice on `x`; the largest difference to `expected`.

    Raises NotReloadable when Keras cannot deserialize a .keras/.h5 file, ExportFailed on any mismatch."""
    try:
        run = _LOAD[fmt](path, custom, rebuild)
    except NotReloadable:
        raise
    except Exception as exc:  # runtimes raise their own types (onnxruntime's InvalidGraph, ...)
        raise ExportFailed(f"{path.name}: the {fmt} runtime cannot load it ({type(exc).__name__}: "
                           f"{innermost(exc)})") from None
    first, second = np.asarray(run(x)), np.asarray(run(x))
    if not np.array_equal(first, second, equal_nan=True):
        raise ExportFailed(f"{path.name}: the {fmt} model gives different outputs on two calls with the same "
                           "input (random layers still active at inference?)")
    if first.size != expected.size:
        raise ExportFailed(f"{path.name}: the {fmt} model returns {first.size} values for {len(x)} inputs, "
                           f"the Keras model {expected.size}")
    diff = float(np.max(np.abs(first.reshape(expected.shape) - expected))) if expected.size else 0.0
    if not np.isfinite(diff) or diff > TOLERANCE[fmt]:
        raise ExportFailed(f"{path.name}: the {fmt} model's outputs differ from the Keras model's by {diff:.3g} "
                           f"(allowed {TOLERANCE[fmt]:g})")
    return diff


Runner = Callable[[np.ndarray], np.ndarray]


def _load_savedmodel(path: Path, custom: Custom, rebuild: Rebuild) -> Runner:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # the closure keeps a reference while it is called
    return lambda x: loaded.serve(tf.constant(x)).numpy()


def _load_keras_file(path: Path, custom: Custom, rebuild: Rebuild) -> Runner:
    from kcli.artifacts import quiet_absl

    try:
        with quiet_absl():
            model = keras.models.load_model(path, custom_objects=custom, safe_mode=True)
    except Exception as exc:  # Keras raises TypeError/ValueError/... when a class cannot be deserialized
        raise NotReloadable(innermost(exc)) from None
    return lambda x: infer(model, x)


def _load_weights(path: Path, custom: Custom, rebuild: Rebuild) -> Runner:
    fresh = rebuild()
    fresh.load_weights(path)
    return lambda x: infer(fresh, x)


def _load_onnx(path: Path, custom: Custom, rebuild: Rebuild) -> Runner:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {session.get_inputs()[0].name: x})[0]


def _load_tflite(path: Path, custom: Custom, rebuild: Rebuild) -> Runner:
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter announces its move to ai_edge_litert
        interpreter = tf.lite.Interpreter(model_path=str(path))

    def run(x: np.ndarray) -> np.ndarray:
        inp = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(inp["index"], x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return np.array(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))

    return run


_LOAD: dict[str, Callable[[Path, Custom, Rebuild], Runner]] = {
    "savedmodel": _load_savedmodel,
    "keras": _load_keras_file,
    "h5": _load_keras_file,
    "weights": _load_weights,
    "onnx": _load_onnx,
    "tflite": _load_tflite,
}


def innermost(exc: BaseException, limit: int = 240) -> str:
    """The most specific part of a long nested message (Keras repeats whole configs), on one short line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text.rsplit("Exception encountered: ", 1)[-1]
    return text if len(text) <= limit else text[:limit - 3] + "..."


def not_reloadable_hint(model: keras.Model, custom: Custom) -> str:
    """Which of the user's classes keep Keras from rebuilding the model, and the fix."""
    used = {type(layer) for layer in [model, *model._flatten_layers(include_self=False)]}
    suspects = sorted(cls.__name__ for cls in used if cls in custom.values() and _lacks_config(cls))
    names = ", ".join(suspects) if suspects else "a custom class"
    return (f"{names}: give __init__ a **kwargs parameter (passed to super().__init__) and a get_config() that "
            "returns the constructor arguments")


def _lacks_config(cls: type) -> bool:
    """No own get_config, or an __init__ without **kwargs: Keras cannot call cls(**config)."""
    import inspect

    own = any("get_config" in vars(k) for k in cls.__mro__ if k.__module__ == cls.__module__)
    params = inspect.signature(cls.__init__).parameters.values()
    return not own or not any(p.kind == p.VAR_KEYWORD for p in params)
