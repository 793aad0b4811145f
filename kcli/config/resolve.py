"""A validated config -> the resolved config a run saves: every default filled in (name, seed, steps per
execution, save formats), every path absolute, and the checks that need the whole config (a graph's node
references). `kcli train RUN/config.yaml` reproduces the run from it.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from kcli.config.compose import abs_import, abs_ref
from kcli.config.models import (
    ALL_SAVE_FORMATS,
    GRAPH_INPUT,
    MAX_NAME,
    Config,
    DataConfig,
    LoadedConfig,
    ModelConfig,
    Spec,
    did_you_mean,
)
from kcli.errors import ConfigError, DataError, KcliError


def resolve(loaded: LoadedConfig) -> Config:
    """Fill every default so that the saved config reproduces the run: name, seed, absolute paths, save."""
    cfg = loaded.config.model_copy(deep=True)
    base = loaded.base_dir.resolve()
    cfg.name = cfg.name or safe_name(loaded.path.stem)
    if cfg.seed is None:
        cfg.seed = random.SystemRandom().randrange(2**31)
    cfg.imports = [abs_import(entry, base) for entry in cfg.imports]
    _resolve_data_paths(cfg.data, base)
    if cfg.data.source == "python" and cfg.data.function:
        cfg.data.function = abs_ref(cfg.data.function, base)
    if cfg.model.layers is not None:
        cfg.model.layers = [Spec.of(abs_ref(s.name, base), _abs_weights(s.args, base)) for s in cfg.model.layers]
    for node in cfg.model.graph or []:
        if node.layer is not None:
            node.layer = Spec.of(abs_ref(node.layer.name, base), _abs_weights(node.layer.args, base))
    try:
        check_graph(cfg.model)
        check_ports(cfg)
    except KcliError as exc:
        raise loaded.locate(exc) from None
    if cfg.model.class_ is not None:
        cfg.model.class_ = abs_ref(cfg.model.class_, base)
        cfg.model.args = cfg.model.args or {}
    if cfg.model.init_from is not None and not cfg.model.init_from.startswith(LATEST_RUN):
        cfg.model.init_from = rebased(base, cfg.model.init_from, "model.init_from", ConfigError)
    _resolve_steps_per_execution(cfg, loaded)
    if cfg.save is None:
        # A subclassed keras.Model cannot be reloaded from legacy HDF5 (Keras limitation).
        cfg.save = [f for f in ALL_SAVE_FORMATS if not (f == "h5" and cfg.model.class_)]
    if cfg.model.class_ is not None and "h5" in cfg.save:
        raise loaded.locate(ConfigError("h5 cannot hold a subclassed keras.Model (Keras cannot reload it); "
                                        "use keras, weights or savedmodel", key="save"))
    return cfg


LATEST_RUN = "latest:"   # init_from: latest:NAME, the newest completed run called NAME under --runs-dir


def rebased(base: Path, path: str, key: str, error: type[KcliError]) -> str:
    """A path from the config made absolute against the config's folder, links resolved; a link loop is one line
    naming `key` (Python 3.11's resolve() raises RuntimeError "Symlink loop" for it)."""
    try:
        return str((base / path).resolve())
    except RuntimeError:
        raise error(f"{base / path} is a symbolic link loop", key=key) from None


def _abs_weights(args: dict[str, Any], base: Path) -> dict[str, Any]:
    """A keras.applications `weights: file.h5` is relative to the config file (`imagenet` and null are not)."""
    weights = args.get("weights")
    if isinstance(weights, str) and weights != "imagenet":
        return {**args, "weights": rebased(base, weights, "model.layers", ConfigError)}
    return args


def safe_name(stem: str) -> str:
    """A run name from a file name: characters outside the allowed set become '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", stem)[:MAX_NAME].lstrip("._-")
    return name or "run"


DEFAULT_STEPS_PER_EXECUTION = 32


def _resolve_steps_per_execution(cfg: Config, loaded: LoadedConfig) -> None:
    spe = cfg.compile.steps_per_execution
    if cfg.distribute != "none":
        if spe is not None and spe > 1:
            raise loaded.locate(ConfigError(
                f"distribute: {cfg.distribute} needs steps_per_execution 1 (Keras 3.15 fails with it and more steps "
                "per execution: 'You must feed a value for placeholder tensor'); remove the key or set 1",
                key="compile.steps_per_execution"))
        cfg.compile.steps_per_execution = 1
    elif spe is None:
        cfg.compile.steps_per_execution = DEFAULT_STEPS_PER_EXECUTION


def _resolve_data_paths(data: DataConfig, base: Path) -> None:
    data.name = data.name or ("digits" if data.source == "builtin" else None)
    if data.source == "npz":
        data.x_key, data.y_key = data.x_key or "x", data.y_key or "y"
    if data.source == "images":   # keras.utils.image_dataset_from_directory's defaults
        data.image_size = data.image_size or (256, 256)
        data.color_mode, data.interpolation = data.color_mode or "rgb", data.interpolation or "bilinear"
    if data.source == "synthetic":
        data.samples, data.classes = data.samples or 1000, data.classes or 2
    for key, holder in (("data", data), ("data.validation", data.validation), ("data.test", data.test)):
        if holder is not None and holder.path:
            holder.path = rebased(base, holder.path, f"{key}.path", DataError)


def check_graph(model: ModelConfig) -> None:
    """Every node refers to nodes (or inputs) defined before it (so a graph cannot have cycles), names are
    unique, and `output` names nodes; mistakes name the node."""
    if model.graph is None:
        return
    inputs = [i.name for i in model.inputs] if model.inputs is not None else [GRAPH_INPUT]
    for i, name in enumerate(inputs):
        if name in inputs[:i]:
            raise ConfigError(f"input name {name!r} is used twice", key=f"model.inputs[{i}].name")
    seen: list[str] = []
    names = [node.name for node in model.graph]
    for i, node in enumerate(model.graph):
        key = f"model.graph[{i}]"
        if node.name in inputs or node.name in seen:
            taken = "an input's name" if node.name in inputs else "another node's name"
            raise ConfigError(f"node name {node.name!r} is taken ({taken})", key=f"{key}.name")
        if i == 0 and node.inputs is None and len(inputs) > 1:
            raise ConfigError(f"the first node must say which of the inputs {', '.join(inputs)} it takes",
                              key=f"{key}.inputs")
        for ref in [*(node.inputs or []), *([node.share] if node.share else [])]:
            if ref in inputs and ref != node.share or ref in seen:
                continue
            why = ("comes later: a node takes only earlier nodes, so a graph has no cycles" if ref in names
                   else f"is not a node{did_you_mean(ref, [*inputs, *seen])}")
            raise ConfigError(f"{ref!r} {why}", key=f"{key}.{'share' if ref == node.share else 'inputs'}")
        seen.append(node.name)
    outputs = model.output if isinstance(model.output, list) else [model.output] if model.output else []
    for i, out in enumerate(outputs):
        if out not in seen:
            where = f"model.output[{i}]" if isinstance(model.output, list) else "model.output"
            raise ConfigError(f"no node {out!r}{did_you_mean(out, seen)}", key=where)


def check_ports(cfg: Config) -> None:
    """Named inputs say where their data comes from, and per-output losses, weights, metrics and labels name
    the outputs; a model with one output takes one loss."""
    outputs = cfg.model.outputs
    cc = cfg.compile
    if outputs and isinstance(cc.loss, Spec) and cc.loss.name in outputs:
        cc.loss = {cc.loss.name: Spec.model_validate(cc.loss.args)}   # `loss: {out: {Huber: {delta: 2}}}`
    if outputs and isinstance(cc.metrics, list):
        cc.metrics = {out: list(cc.metrics) for out in outputs} if cc.metrics else {}
    per_output = {"compile.loss": cc.loss, "compile.loss_weights": cc.loss_weights, "compile.metrics": cc.metrics,
                  "data.labels": cfg.data.labels}
    for key, value in per_output.items():
        if isinstance(value, dict) and not outputs:
            raise ConfigError("a mapping by output name needs several outputs: list them in model.output",
                              key=key)
        for name in value if isinstance(value, dict) else {}:
            if name not in outputs:
                raise ConfigError(f"{name!r} is not an output{did_you_mean(name, outputs)}; outputs: "
                                  f"{', '.join(outputs)}", key=f"{key}.{name}")
    if outputs and not isinstance(cc.loss, dict):
        raise ConfigError(f"several outputs take one loss each: loss: {{{outputs[0]}: ..., ...}}", key="compile.loss")
    if outputs and isinstance(cc.loss, dict):
        for out in outputs:
            if out not in cc.loss:
                raise ConfigError(f"output {out!r} has no loss", key="compile.loss")
    _check_feeds(cfg)


def _check_feeds(cfg: Config) -> None:
    data, outputs = cfg.data, cfg.model.outputs
    if cfg.model.inputs is None and not outputs:
        return
    if data.source not in ("npz", "csv"):
        raise ConfigError(f"named inputs and several outputs read source npz or csv, not {data.source}",
                          key="data.source")
    for i, port in enumerate(cfg.model.inputs or []):
        if data.source == "csv" and not port.columns:
            raise ConfigError("source csv: name the columns that feed this input (`columns: [a, b]`)",
                              key=f"model.inputs[{i}].columns")
        if data.source == "csv" and port.columns and len(port.columns) != (port.shape[-1] if port.shape else 0):
            raise ConfigError(f"{len(port.columns)} columns feed shape {port.shape}; the last dimension must equal "
                              "the number of columns", key=f"model.inputs[{i}].shape")
        if data.source == "npz" and port.columns:
            raise ConfigError("`columns` is for source csv; an npz input names its `array`",
                              key=f"model.inputs[{i}].columns")
        if data.source == "csv" and port.array:
            raise ConfigError("`array` is for source npz; a csv input names its `columns`",
                              key=f"model.inputs[{i}].array")
    if outputs and data.source == "csv":
        for out in outputs:
            if out not in (data.labels or {}):
                raise ConfigError(f"name the label column of output {out!r}: labels: {{{out}: COLUMN, ...}}",
                                  key="data.labels")
        if data.label is not None:
            raise ConfigError("several outputs take `labels` (a column per output), not `label`", key="data.label")
