"""`model.graph` -> a functional keras.Model: each node's layer constructed and called on earlier nodes' outputs,
as a hand-written `x = Dense(16)(inputs)` script does (the same random draws)."""

from __future__ import annotations

from typing import Any

import keras

from kcli.config import keras_rules
from kcli.config import model_io as ports_mod
from kcli.config.code import Registry
from kcli.config.model_io import Ports
from kcli.config.models import GRAPH_INPUT, Config
from kcli.errors import ConfigError, first_line
from kcli.model import table_inputs as tabular
from kcli.model.layers import float32_output, make_layer


def build_graph(cfg: Config, registry: Registry) -> keras.Model:
    """The graph's functional model. Named `inputs` make a dict of keras.Input; several outputs a list, in the
    order `output` names them."""
    assert cfg.model.graph is not None
    ports = ports_mod.of(cfg.model, cfg.data)
    if ports.tabular:   # the graph's `input` is the encoded columns
        assert cfg.data.columns is not None
        column_inputs, features = tabular.inputs_and_features(cfg.data.columns, ports, registry)
        tensors: dict[str, Any] = {GRAPH_INPUT: features}
    else:
        tensors = {p.name: keras.Input(shape=p.shape, name=p.name, dtype=p.dtype) for p in ports.inputs}
    previous = _call_nodes(cfg, registry, ports, tensors)
    if ports.tabular:
        inputs: Any = column_inputs
    else:
        inputs = {p.name: tensors[p.name] for p in ports.inputs} if ports.named else tensors[GRAPH_INPUT]
    if ports.several_outputs:
        return keras.Model(inputs, [tensors[o] for o in ports.outputs], name="functional")
    output = cfg.model.output
    output = tensors[(output[0] if isinstance(output, list) else output) or previous]
    if cfg.compile.precision != "float32":
        output = float32_output()(output)
    return keras.Model(inputs, output, name="functional")


def _call_nodes(cfg: Config, registry: Registry, ports: Ports, tensors: dict[str, Any]) -> str:
    """Each node's output added to `tensors` (a layer without a `name` gets its node's); returns the last node's
    name."""
    assert cfg.model.graph is not None
    layers: dict[str, keras.layers.Layer] = {}
    outputs = set(ports.outputs)
    mixed = cfg.compile.precision != "float32"
    previous = GRAPH_INPUT if ports.tabular else ports.inputs[0].name
    for i, node in enumerate(cfg.model.graph):
        names = node.inputs or [previous]
        args = [tensors[n] for n in names]
        if node.layer is not None:
            # several outputs under a mixed policy: the output layers compute in float32 (names stay the outputs')
            extra = {"dtype": "float32"} if mixed and node.name in outputs and "dtype" not in node.layer.args else {}
            layer = make_layer(keras_rules.node_spec(node, extra), keras_rules.node_key(i, node.layer.name), registry,
                               tuple(args[0].shape[1:]))
        else:
            layer = layers[node.share or ""]
        try:
            tensors[node.name] = layer(args[0] if len(args) == 1 else args)
        except Exception as exc:  # Keras raises ValueError/TypeError/... for shape problems
            shapes = ", ".join(f"{n} {tuple(tensors[n].shape)}" for n in names)
            raise ConfigError(f"{first_line(exc)} (its inputs: {shapes})", key=f"model.graph[{i}]") from None
        layers[node.name], previous = layer, node.name
    return previous
