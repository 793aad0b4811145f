"""A finished run as a served model: its signature, request columns -> model inputs, outputs -> answers.

Loading goes through `runs.open_run` and `artifacts.load_model` (the trust rules of `kcli predict`). Rows become
model inputs with predict's own functions (predict_input.array_features for arrays, tables.read_split for raw
table cells, images.decode_image for image bytes), and outputs become class names and probabilities with
predict's `Head`, so a served answer equals `kcli predict` on the same rows. The model runs in one compiled
`tf.function` with the batch dimension open (warmed up at load), not `model.predict` per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from kcli.errors import DataError, RunError, capped
from kcli.run import folder as runs

MAX_IMAGE_BYTES = 20 << 20    # one image's bytes; larger is a 400 before TensorFlow decodes it
MAX_IMAGE_PIXELS = 40_000_000  # width x height an image header may declare (a small file can declare a huge image)
SINGLE_OUTPUT = "output_0"    # the name Keras's SavedModel export gives a model's only output


class BadInput(ValueError):
    """A request that does not fit the model: answered 400 with this message (names the input, row, field)."""


@dataclass(frozen=True)
class Tensor:
    """One named input or output: dtype (float32 / int64 / string) and per-row shape (-1: any length)."""

    name: str
    dtype: str
    shape: tuple[int, ...]


Kind = Literal["array", "named", "table", "images"]


class ServedModel:
    """One run, loaded and warmed up, served under `name` at `version`."""

    def __init__(self, ref: str, runs_dir: Path, trust_code: bool, name: str | None = None, version: int = 1) -> None:
        from kcli.run import artifacts

        self.ref, self.runs_dir, self.trust_code, self.version = ref, runs_dir, trust_code, version
        self.run = runs.open_run(_run_ref(ref, runs_dir), runs_dir, trust_code)
        self.name = name or self.run.config.name
        self.model = artifacts.load_model(self.run)
        self.kind, self.inputs, self.raw_outputs, self.head = signature(self.run, self.model)
        self.outputs = outputs_of(self.raw_outputs, self.head)
        self._call = self._compiled()
        self.warm_up()

    @property
    def path(self) -> Path:
        """The run directory."""
        return self.run.path

    def _compiled(self) -> Any:
        """The model's forward pass as one tf.function over a batch of any size (traced once)."""
        import tensorflow as tf

        ports = self.run.ports
        specs = {p.name: tf.TensorSpec((None, *p.shape), tf.dtypes.as_dtype(p.dtype), name=p.name)
                 for p in ports.inputs}
        model = self.model
        if not ports.named:
            return tf.function(lambda x: model(x, training=False), input_signature=[specs[ports.inputs[0].name]])
        return tf.function(lambda x: model(x, training=False), input_signature=[specs])

    def warm_up(self) -> None:
        """Trace the compiled function once so the first request does not pay for it."""
        ports = self.run.ports
        if ports.named:
            x: Any = {p.name: np.zeros((1, *(d or 1 for d in p.shape)),
                                       dtype=object if p.dtype == "string" else p.dtype) for p in ports.inputs}
            for p in ports.inputs:
                if p.dtype == "string":
                    x[p.name][...] = ""
        else:
            x = np.zeros((1, *(d or 1 for d in ports.single_shape)), np.float32)
        self.predict(x)

    def predict(self, x: Any) -> list[np.ndarray]:
        """Raw outputs (one array per output, in `raw_outputs` order) of a batch of prepared inputs."""
        import tensorflow as tf

        if isinstance(x, dict):
            x = {k: tf.constant(v, tf.string) if v.dtype == object else tf.constant(v) for k, v in x.items()}
        out = self._call(x)
        if isinstance(out, dict):
            out = [out[t.name] for t in self.raw_outputs] if len(self.raw_outputs) > 1 else list(out.values())
        elif not isinstance(out, (list, tuple)):
            out = [out]
        return [np.asarray(o).astype(np.float32) for o in out]   # as kcli predict writes them (16-bit: widened)

    def answers(self, raw: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Every output by name: the raw outputs, then the predicted class (name or id) and its probability."""
        named = {t.name: a for t, a in zip(self.raw_outputs, raw)}
        classified = self.head.classify(raw[0]) if self.head.kind != "values" else None
        if classified is not None:
            ids, probability = classified
            named["predicted"] = self.head.name_of(ids) if self.head.class_names else ids.astype(np.int64)
            named["probability"] = probability.astype(np.float32)
        return named

    def prepare(self, columns: dict[str, Any], rows: int) -> Any:
        """Request columns (one value per row, by input name) as the model's inputs, checked as kcli predict
        checks its input file; a BadInput naming the input, row and field otherwise."""
        from kcli.serve import convert

        wanted = [t.name for t in self.inputs]
        unknown = [n for n in columns if n not in wanted]
        if unknown:
            raise BadInput(f"unknown input {capped(unknown[0])}; the model's inputs are: {', '.join(wanted)}")
        missing = [n for n in wanted if n not in columns]
        if missing:
            raise BadInput(f"missing input {capped(missing[0])}; the model's inputs are: {', '.join(wanted)}")
        if rows == 0:
            raise BadInput("the request has no rows")
        try:
            if self.kind == "table":
                return convert.table_rows(columns, self.run)
            if self.kind == "images":
                return convert.images(columns["image"], self.run.config.data)
            if self.kind == "array":
                return convert.array_rows(columns["input"], self.inputs[0], self.run.config.data.scale)
            return {t.name: convert.named_rows(columns[t.name], t, self.run.config.data.scale) for t in self.inputs}
        except DataError as exc:   # predict's own checks (NaN, empty cells, text in a number column)
            raise BadInput(exc.message) from None


def signature(run: runs.FinishedRun, model: Any) -> tuple[Kind, list[Tensor], list[Tensor], Any]:
    """What a run serves (here and in its serving export): its kind, inputs, raw outputs and predict's Head."""
    from kcli.model import outputs as outputs_mod
    from kcli.use.predict import Head

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


def outputs_of(raw: list[Tensor], head: Any) -> list[Tensor]:
    """Every output: the raw ones, then for a classifier what kcli predict writes beside them."""
    if head.kind == "values":
        return list(raw)
    return [*raw, Tensor("predicted", "string" if head.class_names else "int64", ()),
            Tensor("probability", "float32", ())]


def _run_ref(ref: str, runs_dir: Path) -> str:
    """`latest:NAME` -> the newest completed run called NAME; any other reference as kcli predict takes it."""
    if ref.startswith("latest:"):
        name = ref.split(":", 1)[1]
        if not name:
            raise RunError("latest:NAME needs a run name after the colon", key="RUN")
        return str(runs.latest_named(runs_dir, name, "RUN"))
    return ref
