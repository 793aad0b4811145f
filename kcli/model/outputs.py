"""Where the model's outputs meet the data: each output's shape, the labels checked against it (and the loss)
before any training step, and `model.evaluate` / `predict` inputs as Keras takes them."""

from __future__ import annotations

import inspect
import math
from typing import Any

import keras
import numpy as np

from kcli.config.model_io import Ports
from kcli.data.splits import Splits
from kcli.errors import DataError


def evaluate(model: keras.Model, x: Any, y: Any, batch_size: int | None,
             sample_weight: np.ndarray | None = None) -> dict[str, float]:
    """model.evaluate as a {metric: value} dict (weighted by data.sample_weight's column when the run has one)."""
    result = model.evaluate(keras_inputs(x), y, batch_size=batch_size, verbose=0, return_dict=True,
                            sample_weight=sample_weight)
    return {k: float(v) for k, v in result.items()}


def keras_inputs(x: Any) -> Any:
    """Features as model.predict / evaluate take them: text columns (numpy object arrays, which Keras's array
    input refuses) as string tensors."""
    if isinstance(x, dict) and any(v.dtype == object for v in x.values()):
        import tensorflow as tf

        return {k: tf.constant(v, tf.string) if v.dtype == object else v for k, v in x.items()}
    return x


def output_shape(model: keras.Model, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
    """The model's output shape including the batch dimension (a one-output model)."""
    if isinstance(model, keras.Sequential):
        return tuple(model.output_shape)
    return tuple(model.compute_output_spec(keras.KerasTensor((None, *input_shape))).shape)


def output_shapes(model: keras.Model, ports: Ports) -> list[tuple[int | None, ...]]:
    """Each output's shape including the batch dimension, in the model's output order."""
    if ports.named or ports.several_outputs:
        return [tuple(t.shape) for t in model.outputs]
    return [output_shape(model, ports.single_shape)]


def check_labels(splits: Splits, model: keras.Model, loss: Any, ports: Ports) -> None:
    """Labels must fit the loss and the model's output(s), checked before any training step."""
    outs = output_shapes(model, ports)
    names = list(ports.outputs) or [None]
    losses = loss if isinstance(loss, dict) else {None: loss}
    for split, arrays in (("data", splits.train), ("data.validation", splits.validation), ("data.test", splits.test)):
        ids = getattr(arrays, "class_ids", None)   # a streamed table: the range of its class ids, and their rows
        if arrays is None or not (hasattr(arrays, "y") or ids is not None):   # a Stream: Keras checks its batches
            continue
        for name, out in zip(names, outs):
            if ids is not None:
                y: Any = np.array([ids.low, ids.high]) if ids.low is not None else np.zeros(0, np.int64)
            else:
                y = arrays.y[name] if isinstance(arrays.y, dict) and name is not None else arrays.y
            fn = losses.get(name)
            if fn is None or not len(y):
                continue
            loss_name = (getattr(fn, "name", None) or getattr(fn, "__name__", "") or "").replace("_", "").lower()
            problem = _label_problem(np.asarray(y), out, loss_name)
            if problem:
                what = f"the {split} labels" + (f" of output {name!r}" if name else "")
                shown = type(fn).__name__ if not inspect.isfunction(fn) else fn.__name__
                where = ids.outside(out[-1]) if ids is not None and out[-1] is not None else None
                raise DataError(f"{what} (shape {list(np.shape(y)[1:])} per example) do not fit loss {shown} with "
                                f"model output {out}: {problem}" + (f" ({where})" if where else ""),
                                key=f"compile.loss.{name}" if name else "compile.loss")


def _label_problem(y: np.ndarray, out: tuple[int | None, ...], loss_name: str) -> str | None:
    per_example, out_rest = tuple(y.shape[1:]), tuple(out[1:])
    if "sparsecategorical" in loss_name:
        if per_example not in ((), (1,)) or not np.all(np.mod(y, 1) == 0):
            return "sparse losses take one integer class id per example (set data.one_hot: false)"
        if out_rest and out_rest[-1] is not None and (y.min() < 0 or y.max() >= out_rest[-1]):
            return f"class ids must lie in 0..{out_rest[-1] - 1}, found {int(y.min())}..{int(y.max())}"
        return None
    if per_example == out_rest or (per_example == () and out_rest == (1,)):
        return None
    if all(o is None or p == o for p, o in zip(per_example, out_rest)) and len(per_example) == len(out_rest):
        return None
    if per_example == () and out_rest and math.prod(d or 1 for d in out_rest) > 1:
        return ("integer labels need data.one_hot: true, or a sparse loss such as "
                "SparseCategoricalCrossentropy")
    return "the label shape must equal the output shape"
