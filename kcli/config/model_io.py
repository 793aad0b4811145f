"""A model's inputs and outputs as the data sees them, and data that is one array or one array per name.

A Sequential stack, a Model class and a plain graph have one input (`model.input_shape`) and one output: their
features and labels are single arrays, as before. A graph with named `model.inputs` takes a dict of arrays
(one per input name), and a graph whose `model.output` lists several nodes gives a dict of labels (one per
output name): exactly what a hand-written `fit({"a": xa, "b": xb}, {"out1": y1, "out2": y2})` passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from kcli.config.models import DataConfig, ModelConfig

Tree = np.ndarray | dict[str, np.ndarray]


@dataclass(frozen=True)
class Port:
    """One input: its name, per-example shape, dtype, and the CSV columns / npz array that feed it."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"
    columns: tuple[str, ...] | None = None
    array: str | None = None
    key: str = "model.input_shape"   # the config key that declares it


@dataclass(frozen=True)
class Ports:
    """The inputs (named or the one unnamed input) and the output names (several outputs only)."""

    inputs: tuple[Port, ...]
    outputs: tuple[str, ...]
    named: bool   # features are a dict by input name
    tabular: bool = False   # one input per column of a csv / parquet table (kcli builds them)

    @property
    def several_outputs(self) -> bool:
        return len(self.outputs) > 1

    @property
    def single_shape(self) -> tuple[int | None, ...]:
        """The input shape of a one-input model."""
        return self.inputs[0].shape


def of(model: ModelConfig, data: DataConfig | None = None) -> Ports:
    """The ports a model config declares; for the columns of a table (no input_shape), one per feature column of
    `data.columns` (none yet while the columns are still to be read). Computed on demand rather than kept on the
    resolved config: a table's ports exist only once its columns are learned from the data, and this is cheap."""
    if model.inputs is None and model.input_shape is None:
        return Ports(_column_ports(data), tuple(model.outputs), named=True, tabular=True)
    if model.inputs is None:
        assert model.input_shape is not None
        return Ports((Port("input", tuple(model.input_shape)),), tuple(model.outputs), named=False)
    inputs = tuple(Port(i.name, tuple(i.shape), i.dtype, tuple(i.columns) if i.columns else None,
                        i.array or i.name, f"model.inputs[{n}]") for n, i in enumerate(model.inputs))
    return Ports(inputs, tuple(model.outputs), named=True)


def with_columns(ports: Ports, data: DataConfig) -> Ports:
    """The ports of a table's columns once `data.columns` is known."""
    return Ports(_column_ports(data), ports.outputs, named=True, tabular=True)


def _column_ports(data: DataConfig | None) -> tuple[Port, ...]:
    columns = data.columns if data is not None else None
    if not columns or any(c.kind is None for c in columns.values()):
        return ()
    return tuple(Port(input_name(name), (1,), _column_dtype(c.kind, c.vocabulary), (name,), None,
                      f"data.columns.{name}") for name, c in columns.items() if c.kind != "ignore")


def input_name(column: str) -> str:
    """A column's model input name (letters, digits and _; SavedModel signatures need such names)."""
    name = re.sub(r"\W", "_", column.strip())
    return name if name and not name[0].isdigit() else f"c_{name}"


def _column_dtype(kind: str | None, vocabulary: list[Any] | None) -> str:
    if kind == "number":
        return "float32"
    if kind == "text":
        return "string"
    return "int64" if vocabulary and isinstance(vocabulary[0], int) else "string"


def rows(tree: Tree) -> int:
    """The number of examples (every array has one row per example)."""
    return len(next(iter(tree.values()))) if isinstance(tree, dict) else len(tree)


def take(tree: Tree, index: Any) -> Tree:
    """The rows at `index` (an index array or a slice) of every array."""
    return {k: v[index] for k, v in tree.items()} if isinstance(tree, dict) else tree[index]


def tmap(fn: Callable[[str | None, np.ndarray], np.ndarray], tree: Tree) -> Tree:
    """`fn(name, array)` applied to every array (name None for a single array)."""
    return {k: fn(k, v) for k, v in tree.items()} if isinstance(tree, dict) else fn(None, tree)


def arrays(tree: Tree) -> list[tuple[str | None, np.ndarray]]:
    """(name, array) pairs: one (None, array) for a single array."""
    return list(tree.items()) if isinstance(tree, dict) else [(None, tree)]


def flat_outputs(outputs: Any) -> np.ndarray:
    """A model's outputs on n rows as one (n, k) array: several outputs side by side in their order."""
    if isinstance(outputs, dict):
        outputs = [outputs[k] for k in sorted(outputs)]
    if isinstance(outputs, (list, tuple)):
        parts = [np.asarray(o) for o in outputs]
        return np.concatenate([p.reshape(len(p), -1) for p in parts], axis=1)
    return np.asarray(outputs)
