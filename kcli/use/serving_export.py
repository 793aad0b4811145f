"""`kcli export RUN --format savedmodel --serving-dir DIR`: the layout TF Serving and KServe load,
DIR/NAME/VERSION/saved_model.pb, with a `serving_default` signature that speaks as `kcli serve` does.

The signature takes the inputs `kcli serve` shows in its metadata (`input`; each named input or table column;
`image` as the image file's bytes) and answers its outputs (raw outputs by name, and for a classifier
`predicted` and `probability`), so a request body written against `kcli serve` works on TF Serving unchanged.
What `kcli predict` does outside the model is done in the graph: `data.scale`, trimming table text, decoding and
resizing images, and the class of the highest score (Head.classify_tensor, kcli/use/head.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from kcli.errors import ExportFailed, RunError
from kcli.files import atomic
from kcli.run import find
from kcli.use.signature import Tensor, outputs_of, signature


def next_version(folder: Path) -> int:
    """One more than the highest numeric version folder (1 for the first export)."""
    found = [int(p.name) for p in folder.iterdir() if p.is_dir() and re.fullmatch(r"\d+", p.name)] \
        if folder.is_dir() else []
    return max(found, default=0) + 1


def write(run: find.FinishedRun, model: Any, serving_dir: Path) -> tuple[Path, float]:
    """Write DIR/NAME/VERSION (through a temporary name, so a watching server never sees half of it), check its
    signature; returns the version folder and the largest difference found."""
    import tensorflow as tf

    if serving_dir.exists() and not serving_dir.is_dir():
        raise RunError(f"{serving_dir} is a file; --serving-dir is a folder (created if missing)",
                       key="--serving-dir")
    name = run.config.name
    target = serving_dir / name / str(next_version(serving_dir / name))
    target.parent.mkdir(parents=True, exist_ok=True)
    kind, inputs, raw, head = signature(run, model)
    function = _serving_function(run, model, kind, inputs, raw, head)
    module = tf.Module()
    module.model = model   # tracked, so its variables are saved
    with atomic.target(target) as tmp:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": function})
        diff = _check(tmp, model, run, inputs, raw, head)
    return target, diff


def _serving_function(run: find.FinishedRun, model: Any, kind: str, inputs: list[Tensor], raw: list[Tensor],
                      head: Any) -> Any:
    import tensorflow as tf

    data = run.config.data
    specs = [tf.TensorSpec((None, *(d if d >= 0 else None for d in t.shape)), tf.dtypes.as_dtype(t.dtype),
                           name=t.name) for t in inputs]
    names = [t.name for t in inputs]

    def model_inputs(args: dict[str, Any]) -> Any:
        if kind == "images":
            from kcli.data.images import image_tensor

            return tf.map_fn(lambda b: image_tensor(b, data), args["image"], fn_output_signature=tf.float32)
        scaled = {k: v * tf.constant(data.scale, v.dtype) if data.scale is not None and v.dtype.is_floating and
                  kind != "table" else v for k, v in args.items()}
        if kind == "table":
            scaled = {k: tf.strings.strip(v) if v.dtype == tf.string else v for k, v in scaled.items()}
        return scaled["input"] if kind == "array" else scaled

    def serve(*tensors: Any) -> dict[str, Any]:
        out = model(model_inputs(dict(zip(names, tensors))), training=False)
        if isinstance(out, dict):
            out = [out[t.name] for t in raw] if len(raw) > 1 else list(out.values())
        elif not isinstance(out, (list, tuple)):
            out = [out]
        answers = {t.name: tf.cast(o, tf.float32) for t, o in zip(raw, out)}
        answers.update(head.classify_tensor(answers[raw[0].name]))
        return answers

    return tf.function(serve, input_signature=specs).get_concrete_function()


def _check(path: Path, model: Any, run: find.FinishedRun, inputs: list[Tensor], raw: list[Tensor],
           head: Any) -> float:
    """The written signature, loaded back, answers like the model on a few rows (images: checked by the
    tests on real image bytes; the model's own check covers its numbers)."""
    import tensorflow as tf

    from kcli.model import table_inputs as tabular
    from kcli.run import verify

    if run.config.data.source == "images":
        return 0.0
    columns = run.config.data.columns
    x = verify.samples(run.ports, tabular.sample_rows(columns, run.ports, verify.SAMPLES) if columns else None)
    expected = verify.reference(model, _scaled(x, run))
    loaded = tf.saved_model.load(str(path))
    fn = loaded.signatures["serving_default"]
    feed = x if isinstance(x, dict) else {"input": x}
    got = fn(**{k: tf.constant(v, tf.string) if v.dtype == object else tf.constant(v) for k, v in feed.items()})
    missing = {t.name for t in outputs_of(raw, head)} - set(got)
    if missing:
        raise ExportFailed(f"the serving signature lacks the output(s) {', '.join(sorted(missing))}")
    served = np.concatenate([got[t.name].numpy().reshape(len(expected), -1) for t in raw], axis=1)
    diff = float(np.max(np.abs(served - expected))) if served.size else 0.0
    if not diff <= verify.allowed("savedmodel", expected, verify.compute_dtype(model)):
        raise ExportFailed(f"the serving SavedModel's outputs differ from the model's by {diff:.3g}; nothing was "
                           "written")
    return diff


def _scaled(x: Any, run: find.FinishedRun) -> Any:
    """Sample rows as the model sees them after predict's data.scale (the signature scales them itself)."""
    from kcli.data.prepare import scale_features

    scale = run.config.data.scale
    if scale is None or run.ports.tabular:
        return x
    if isinstance(x, dict):
        return {k: scale_features(v, scale, v.dtype.name) if v.dtype.kind == "f" else v
                for k, v in x.items()}
    return scale_features(x, scale)
