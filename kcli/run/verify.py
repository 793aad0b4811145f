"""Proof that a saved model is the trained one: load it back with its own runtime and compare outputs.

`kcli train` checks every artifact it writes this way before a run may say "completed", and `kcli export`
checks each export before renaming it into place. Each artifact is run twice on the same inputs, so an
export that kept training-mode randomness (augmentation layers) is caught too.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kcli.config import model_io as ports_mod
from kcli.config.model_io import Ports, Tree
from kcli.errors import ExportFailed, cut

SAMPLES = 8
# Largest allowed |difference| to the Keras model's outputs; converted graphs reorder float operations.
TOLERANCE = {"savedmodel": 1e-5, "keras": 1e-6, "h5": 1e-6, "weights": 1e-6, "onnx": 1e-4, "tflite": 1e-4}
# Unit roundoff (half the relative step) of the 16-bit types a mixed precision policy computes in. How a CPU computes
# them differs (oneDNN runs bf16 matmuls natively on CPUs with avx512_bf16 and fuses bias adds in traced graphs, so
# a value is rounded once instead of twice): two correct runs of one mixed model can differ by a few roundings.
ROUNDOFF = {"float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}
# How many roundings of the largest output a 16-bit model's artifact may differ by. A wrong export (other weights,
# active dropout, lost preprocessing) differs by the outputs' own scale; 16 roundings are 0.8% (float16's 0.05%).
MIXED_ROUNDINGS = 16

Rebuild = Callable[[], keras.Model]
Custom = dict[str, type]


class NotReloadable(Exception):
    """Keras cannot deserialize a .keras/.h5 file (typically a custom class without get_config)."""


def samples(ports: Ports, real: Tree | None = None) -> Tree:
    """A few inputs of the model's shape (a dict by name for named inputs): rows of real data when given, else
    seeded values (normal for float inputs, zeros for integer ones, "" for text; unknown dimensions become 4)."""
    if real is not None and ports_mod.rows(real):
        return ports_mod.tmap(lambda _, a: np.asarray(a[:SAMPLES], dtype=a.dtype if ports.named else np.float32),
                              real)
    rng = np.random.default_rng(0)
    made = {}
    for port in ports.inputs:
        shape = (SAMPLES, *(d if d is not None else 4 for d in port.shape))
        if port.dtype == "string":
            made[port.name] = np.full(shape, "", dtype=object)
            continue
        made[port.name] = (rng.normal(size=shape) if port.dtype.startswith("float") else np.zeros(shape)
                           ).astype(port.dtype)
    return made if ports.named else made[ports.inputs[0].name]


def reference(model: keras.Model, x: Tree) -> np.ndarray:
    """The live model's inference outputs on `x` (several outputs side by side)."""
    return infer(model, x)


def infer(model: keras.Model, x: Tree) -> np.ndarray:
    """One direct inference call: the same numbers as model.predict without building a predict function
    (~0.1 s each), which a handful of rows does not need."""
    out = model(x, training=False)
    return ports_mod.flat_outputs(keras.tree.map_structure(keras.ops.convert_to_numpy, out))


def compute_dtype(model: keras.Model) -> str:
    """The narrowest type any of the model's layers computes in ("float32" unless a mixed policy is in use)."""
    found = {str(getattr(layer.dtype_policy, "compute_dtype", "float32"))
             for layer in model._flatten_layers(include_self=True)}
    return next((d for d in ROUNDOFF if d in found), "float32")


def allowed(fmt: str, expected: np.ndarray, compute: str = "float32") -> float:
    """The largest difference an artifact of `fmt` may show: the format's own tolerance, or for a model that
    computes in 16 bits what that type can promise (MIXED_ROUNDINGS roundings at the largest output's scale)."""
    roundoff = ROUNDOFF.get(compute)
    if roundoff is None or not expected.size:
        return TOLERANCE[fmt]
    scale = max(1.0, float(np.max(np.abs(expected))))
    return max(TOLERANCE[fmt], MIXED_ROUNDINGS * roundoff * scale)


def check(fmt: str, path: Path, x: Tree, expected: np.ndarray, custom: Custom, rebuild: Rebuild,
          compute: str = "float32") -> float:
    """Load `path` with its own runtime, run it twice on `x`; the largest difference to `expected`, which may be
    at most `allowed(fmt, expected, compute)` (`compute`: the model's narrowest compute dtype).

    Raises NotReloadable when Keras cannot deserialize a .keras/.h5 file, ExportFailed on any mismatch."""
    try:
        run = _LOAD[fmt](path, custom, rebuild)
    except NotReloadable:
        raise
    except Exception as exc:  # runtimes raise their own types (onnxruntime's InvalidGraph, ...)
        raise ExportFailed(f"{path.name}: the {fmt} runtime cannot load it ({type(exc).__name__}: "
                           f"{innermost(exc)})") from None
    first, second = ports_mod.flat_outputs(run(x)), ports_mod.flat_outputs(run(x))
    if not np.array_equal(first, second, equal_nan=True):
        raise ExportFailed(f"{path.name}: the {fmt} model gives different outputs on two calls with the same "
                           "input (random layers still active at inference?)")
    if first.size != expected.size:
        raise ExportFailed(f"{path.name}: the {fmt} model returns {first.size} values for {ports_mod.rows(x)} inputs, "
                           f"the Keras model {expected.size}")
    diff = float(np.max(np.abs(first.reshape(expected.shape) - expected))) if expected.size else 0.0
    limit = allowed(fmt, expected, compute)
    if not np.isfinite(diff) or diff > limit:
        dtype = f" for a model computing in {compute}" if compute in ROUNDOFF else ""
        raise ExportFailed(f"{path.name}: the {fmt} model's outputs differ from the Keras model's by {diff:.3g} "
                           f"(allowed {limit:.3g}{dtype})")
    return diff


Runner = Callable[[Tree], Any]


def _load_savedmodel(path: Path, custom: Custom, rebuild: Rebuild) -> Runner:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # the closure keeps a reference while it is called
    return lambda x: tf.nest.map_structure(lambda t: t.numpy(), loaded.serve(tf.nest.map_structure(tf.constant, x)))


def _load_keras_file(path: Path, custom: Custom, rebuild: Rebuild) -> Runner:
    from kcli.run.artifacts import quiet_absl

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

    def run(x: Tree) -> Any:
        names = [i.name for i in session.get_inputs()]
        feed = {n: x[n] for n in names} if isinstance(x, dict) else {names[0]: x}
        out = session.run(None, feed)
        return out if len(out) > 1 else out[0]

    return run


def _load_tflite(path: Path, custom: Custom, rebuild: Rebuild) -> Runner:
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter announces its move to ai_edge_litert
        interpreter = tf.lite.Interpreter(model_path=str(path))

    def run(x: Tree) -> Any:
        runner = interpreter.get_signature_runner()
        feed = x if isinstance(x, dict) else {runner.get_input_details().popitem()[0]: x}
        out = runner(**feed)
        return [np.array(out[k]) for k in sorted(out, key=_output_order)] if len(out) > 1 else \
            np.array(next(iter(out.values())))

    return run


_LOAD: dict[str, Callable[[Path, Custom, Rebuild], Runner]] = {
    "savedmodel": _load_savedmodel,
    "keras": _load_keras_file,
    "h5": _load_keras_file,
    "weights": _load_weights,
    "onnx": _load_onnx,
    "tflite": _load_tflite,
}


def _output_order(name: str) -> tuple[int, str]:
    """LiteRT names a signature's outputs output_0, output_1, ... in the model's output order."""
    tail = name.rsplit("_", 1)[-1]
    return (int(tail), name) if tail.isdigit() else (0, name)


def innermost(exc: BaseException, limit: int = 240) -> str:
    """The most specific part of a long nested message (Keras repeats whole configs), on one short line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text.rsplit("Exception encountered: ", 1)[-1]
    return cut(text, limit)


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
