"""What a finished run takes and answers, by name: the one description `kcli serve` speaks and the serving
export writes into its SavedModel signature (inputs, raw outputs, and predict's Head for the classes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from kcli.run import find
from kcli.use.head import Head

SINGLE_OUTPUT = "output_0"    # the name Keras's SavedModel export gives a model's only output


@dataclass(frozen=True)
class Tensor:
    """One named input or output: dtype (float32 / int64 / string) and per-row shape (-1: any length)."""

    name: str
    dtype: str
    shape: tuple[int, ...]


Kind = Literal["array", "named", "table", "images"]


def signature(run: find.FinishedRun, model: Any) -> tuple[Kind, list[Tensor], list[Tensor], Head]:
    """What a run serves (in kcli serve and in its serving export): its kind, inputs, raw outputs and Head."""
    from kcli.model import outputs as outputs_mod

    ports = run.ports
    kind: Kind = ("images" if run.config.data.source == "images" else "table" if ports.tabular
                  else "named" if ports.named else "array")
    shapes = [tuple(int(d or -1) for d in s[1:]) for s in outputs_mod.output_shapes(model, ports)]
    names = list(ports.outputs) if ports.several_outputs else [SINGLE_OUTPUT]
    raw = [Tensor(n, "float32", s) for n, s in zip(names, shapes)]
    head = Head.of(run, int(np.prod(shapes[0])) if len(shapes) == 1 else 0)
    if kind == "images":
        inputs = [Tensor("image", "string", ())]
    elif kind == "array":
        inputs = [Tensor("input", "float32", tuple(int(d or -1) for d in ports.single_shape))]
    else:
        inputs = [Tensor(p.name, p.dtype, tuple(int(d or -1) for d in p.shape)) for p in ports.inputs]
    return kind, inputs, raw, head


def outputs_of(raw: list[Tensor], head: Head) -> list[Tensor]:
    """Every output: the raw ones, then for a classifier what kcli predict writes beside them."""
    if head.kind == "values":
        return list(raw)
    return [*raw, Tensor("predicted", "string" if head.class_names else "int64", ()),
            Tensor("probability", "float32", ())]
