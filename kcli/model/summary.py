"""A built model described as data, Keras's `model.summary()` as a dataclass: its layers (shapes, parameter
counts, a functional graph's connections, what is frozen) and variables, plus Keras's drawing of it to a file.

One of three "summaries": this module describes (no Rich); kcli.output.display draws the description as the table
every `kcli train` prints; the `kcli summary` command (kcli.cli) builds a model and asks for both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import keras

from kcli.errors import ConfigError


@dataclass
class LayerRow:
    """One line of the model summary."""

    name: str
    kind: str
    output_shape: str
    params: int
    connected: str = ""   # a functional graph's inbound layers, as Keras's summary shows them
    frozen: str = ""      # "frozen", "partly (N of M)" or "" (every weight trains)


@dataclass
class ModelSummary:
    """A built model's layers, parameter counts and variables (what Keras's `model.summary()` prints)."""

    name: str
    rows: list[LayerRow]
    trainable: int
    non_trainable: int
    variables: list[tuple[str, tuple[int, ...], bool]]

    @property
    def total(self) -> int:
        """All parameters."""
        return self.trainable + self.non_trainable


def describe(model: keras.Model) -> ModelSummary:
    """The model's layer rows, parameter counts and variables, counted as Keras's `model.summary()` counts them."""
    graph = type(model).__name__ == "Functional"
    rows = [LayerRow(layer.name, type(layer).__name__, _output_shape(layer), layer.count_params()
                     if layer.built else 0, _connections(layer) if graph else "", _frozen(layer))
            for layer in model.layers]
    count = lambda ws: sum(math.prod(w.shape) for w in ws)  # noqa: E731
    variables = [(v.path, tuple(v.shape), v.trainable) for v in model.weights]
    return ModelSummary(model.name, rows, count(model.trainable_weights), count(model.non_trainable_weights),
                        variables)


def _frozen(layer: keras.layers.Layer) -> str:
    """Whether `fit` leaves a layer's weights alone: "frozen", "partly (...)" for a backbone frozen up to one of
    its layers, or "" (it trains)."""
    if not layer.weights:
        return ""
    if not layer.trainable:
        return "frozen"
    inner = [sub for sub in getattr(layer, "layers", []) if sub.weights] if isinstance(layer, keras.Model) else []
    fixed = [sub for sub in inner if not sub.trainable]
    return f"partly ({len(fixed)} of {len(inner)} layers frozen)" if fixed else ""


def _connections(layer: keras.layers.Layer) -> str:
    """`h1[0][0], h2[0][0]`: the layers (call index, output index) whose outputs each call of `layer` takes."""
    names = []
    for node in layer._inbound_nodes:   # Keras's own summary reads the same private attribute
        for tensor in node.input_tensors:
            history = tensor._keras_history
            names.append(f"{history.operation.name}[{history.node_index}][{history.tensor_index}]")
    return ", ".join(names)


def check_plot_tools(path: Path) -> None:
    """Drawing the model (`kcli summary --plot`) needs pydot and Graphviz's `dot`: say how to get them before
    building anything."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("pydot") is None:
        raise ConfigError("drawing needs pydot and Graphviz: pip install pydot (or the extra: pip install "
                          "'kcli-keras[plot]'), and Graphviz's dot (apt-get install graphviz)", key="--plot")
    if shutil.which("dot") is None:
        raise ConfigError("drawing needs Graphviz's `dot` program: apt-get install graphviz (brew install "
                          "graphviz on macOS)", key="--plot")
    if not path.parent.is_dir():
        raise ConfigError(f"the folder {path.parent} does not exist; create it first", key="--plot")


def plot_model(model: keras.Model, path: Path) -> None:
    """Keras's own drawing of the model (layers, shapes, connections) as .png, .svg, .pdf or .dot."""
    keras.utils.plot_model(model, to_file=str(path), show_shapes=True, show_layer_names=True)


def _output_shape(layer: keras.layers.Layer) -> str:
    try:
        return str(tuple(layer.output.shape))
    except (AttributeError, ValueError):
        return "?"  # layers of a subclassed model are never called symbolically one by one
