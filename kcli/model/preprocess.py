"""Keras preprocessing layers that learn from the data: a `Normalization` layer in the model is adapted on the
training split (only), as a hand-written script calls `norm.adapt(x_train)` before `fit`.

The layer's mean and variance are model weights, so they travel in every saved format and `kcli predict` feeds
raw features. A Normalization given its own `mean`/`variance` is left as it is. kcli adapts a Normalization that
sees a model input directly (the first layer of a stack, or a graph node on an input); one deeper in the model
would need the features as they arrive there, so it must be given mean and variance. (The Normalization of a
table's numbers is kcli.model.table_inputs's: it adapts it, and passes its name here in `done`.)
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from kcli.config.model_io import Ports
from kcli.errors import ConfigError

ADAPTED = (keras.layers.Normalization,)


def adapt(model: keras.Model, train: Any, ports: Ports, done: tuple[str, ...] = (),
          moments: tuple[np.ndarray, np.ndarray] | None = None) -> list[str]:
    """Adapt every unadapted Normalization (but those named in `done`) on the training features; returns the
    adapted layers' names. `moments`: the per-feature mean and variance of a streamed one-input table, known from
    its pass before training, taken instead of reading the stream again."""
    adapted = []
    for layer in model.layers:
        if not isinstance(layer, ADAPTED) or layer.input_mean is not None or layer.name in done:
            continue
        features = _features_of(layer, model, train, ports)
        if moments is not None and tuple(layer.adapt_mean.shape) == moments[0].shape:
            layer.adapt_mean.assign(moments[0].astype(np.float32))
            layer.adapt_variance.assign(moments[1].astype(np.float32))
            layer.finalize_state()
        else:
            layer.adapt(features)
        adapted.append(layer.name)
    return adapted


def standardizes(model: keras.Model) -> bool:
    """Whether the model scales its features itself (a Normalization or BatchNormalization layer anywhere)."""
    return any(isinstance(layer, (keras.layers.Normalization, keras.layers.BatchNormalization))
               for layer in model.layers)


def _features_of(layer: keras.layers.Layer, model: keras.Model, train: Any, ports: Ports) -> Any:
    """What the layer sees: the training features of the model input it is applied to."""
    x = _training_features(train)
    if isinstance(model, keras.Sequential):
        if model.layers and model.layers[0] is layer:
            return x
        raise _deep(layer, f"model.layers[{model.layers.index(layer)}]")
    inputs = {id(t): t for t in model.inputs}
    nodes = getattr(layer, "_inbound_nodes", [])
    tensors = nodes[0].input_tensors if nodes else []
    if len(tensors) != 1 or id(tensors[0]) not in inputs:
        raise _deep(layer, "model.graph")
    if isinstance(x, dict):
        name = _input_name(tensors[0], model, ports)
        return x[name] if not hasattr(x, "map") else x.map(lambda d: d[name])
    return x


def _training_features(train: Any) -> Any:
    """In-memory features, or (source python) the features of the dataset's batches."""
    dataset = getattr(train, "dataset", None)
    if dataset is not None:
        return dataset.map(lambda *batch: batch[0])
    return train.x


def _input_name(tensor: Any, model: keras.Model, ports: Ports) -> str:
    """The named input a tensor is (kcli names each keras.Input after its port)."""
    names = [p.name for p in ports.inputs]
    if tensor.name in names:
        return str(tensor.name)
    return names[[id(t) for t in model.inputs].index(id(tensor))]


def _deep(layer: keras.layers.Layer, key: str) -> ConfigError:
    return ConfigError(f"the Normalization layer {layer.name!r} does not see a model input, so kcli cannot adapt it "
                       "on the training data: put it first (or on an input of a graph), or give it `mean` and "
                       "`variance`", key=key)
