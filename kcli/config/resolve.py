"""A validated config -> the resolved config a run saves: every default filled in, once (name, seed, data source
defaults, steps per execution, save formats), and the checks that need the whole config (a graph's node
references). `kcli train RUN/config.yaml` reproduces the run from it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

from kcli.config.loading import LoadedConfig
from kcli.config.models import ALL_SAVE_FORMATS, GRAPH_INPUT, MAX_NAME, Config, DataConfig, ModelConfig, Spec
from kcli.config.paths import LATEST_RUN
from kcli.config.suggest import did_you_mean
from kcli.errors import ConfigError


def resolve(loaded: LoadedConfig, latest: Callable[[str], Path] | None = None) -> Config:
    """The config a run reads and saves: every default filled here, once (name, seed, data source defaults, steps
    per execution, save formats, `init_from: latest:NAME` as the run `latest(NAME)` finds), on a copy; the rest of
    kcli only reads it. Its paths are absolute already (loading.py rebased them). Mistakes name the file and line
    that set the key."""
    cfg = loaded.config.model_copy(deep=True)
    with loaded.located():
        cfg.name = cfg.name or safe_name(loaded.path.stem)
        if cfg.seed is None:
            cfg.seed = random.SystemRandom().randrange(2**31)
        _data_defaults(cfg.data)
        check_graph(cfg.model)
        check_ports(cfg)
        if cfg.model.class_ is not None:
            cfg.model.args = cfg.model.args or {}
        _resolve_steps_per_execution(cfg)
        if cfg.save is None:
            # A subclassed keras.Model cannot be reloaded from legacy HDF5 (Keras limitation).
            cfg.save = [f for f in ALL_SAVE_FORMATS if not (f == "h5" and cfg.model.class_)]
        if cfg.model.class_ is not None and "h5" in cfg.save:
            raise ConfigError("h5 cannot hold a subclassed keras.Model (Keras cannot reload it); use keras, weights "
                              "or savedmodel", key="save")
        init = cfg.model.init_from
        if latest is not None and init is not None and init.startswith(LATEST_RUN):   # recorded as the run found
            cfg.model.init_from = str(latest(init.removeprefix(LATEST_RUN)).resolve())
    return cfg


def safe_name(stem: str) -> str:
    """A run name from a file name: characters outside the allowed set become '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", stem)[:MAX_NAME].lstrip("._-")
    return name or "run"


DEFAULT_STEPS_PER_EXECUTION = 32


def _resolve_steps_per_execution(cfg: Config) -> None:
    spe = cfg.compile.steps_per_execution
    if cfg.distribute == "mirrored":
        if spe is not None and spe > 1:
            raise ConfigError(
                f"distribute: {cfg.distribute} needs steps_per_execution 1 (Keras 3.15 fails with it and more steps "
                "per execution: 'You must feed a value for placeholder tensor'); remove the key or set 1",
                key="compile.steps_per_execution")
        cfg.compile.steps_per_execution = 1
    elif spe is None:   # multi_worker too: distributed/multiworker_fix.py makes it run (and a worker grow less)
        cfg.compile.steps_per_execution = DEFAULT_STEPS_PER_EXECUTION


def _data_defaults(data: DataConfig) -> None:
    """What each source reads when the config does not say (the readers in kcli/data take these as given)."""
    data.name = data.name or ("digits" if data.source == "builtin" else None)
    if data.source == "npz":
        data.x_key, data.y_key = data.x_key or "x", data.y_key or "y"
    if data.source == "images":   # keras.utils.image_dataset_from_directory's defaults
        data.image_size = data.image_size or (256, 256)
        data.color_mode, data.interpolation = data.color_mode or "rgb", data.interpolation or "bilinear"
    if data.source == "synthetic":
        data.samples, data.classes = data.samples or 1000, data.classes or 2


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
