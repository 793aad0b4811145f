"""A validated config -> the resolved config a run saves: every default filled in (name, seed, steps per
execution, save formats), every path absolute, and the checks that need the whole config (a graph's node
references). `kcli train RUN/config.yaml` reproduces the run from it.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from kcli.compose import abs_import, abs_ref
from kcli.config import (
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
from kcli.errors import ConfigError, KcliError


def resolve(loaded: LoadedConfig) -> Config:
    """Fill every default so that the saved config reproduces the run: name, seed, absolute paths, save."""
    cfg = loaded.config.model_copy(deep=True)
    base = loaded.base_dir.resolve()
    cfg.name = cfg.name or safe_name(loaded.path.stem)
    if cfg.seed is None:
        cfg.seed = random.SystemRandom().randrange(2**31)
    cfg.imports = [abs_import(entry, base) for entry in cfg.imports]
    _resolve_data_paths(cfg.data, base)
    if cfg.model.layers is not None:
        cfg.model.layers = [Spec.of(abs_ref(s.name, base), _abs_weights(s.args, base)) for s in cfg.model.layers]
    for node in cfg.model.graph or []:
        if node.layer is not None:
            node.layer = Spec.of(abs_ref(node.layer.name, base), _abs_weights(node.layer.args, base))
    try:
        check_graph(cfg.model)
    except KcliError as exc:
        raise loaded.locate(exc) from None
    if cfg.model.class_ is not None:
        cfg.model.class_ = abs_ref(cfg.model.class_, base)
        cfg.model.args = cfg.model.args or {}
    if cfg.model.init_from is not None:
        cfg.model.init_from = str((base / cfg.model.init_from).resolve())
    _resolve_steps_per_execution(cfg, loaded)
    if cfg.save is None:
        # A subclassed keras.Model cannot be reloaded from legacy HDF5 (Keras limitation).
        cfg.save = [f for f in ALL_SAVE_FORMATS if not (f == "h5" and cfg.model.class_)]
    if cfg.model.class_ is not None and "h5" in cfg.save:
        raise loaded.locate(ConfigError("h5 cannot hold a subclassed keras.Model (Keras cannot reload it); "
                                        "use keras, weights or savedmodel", key="save"))
    return cfg


def _abs_weights(args: dict[str, Any], base: Path) -> dict[str, Any]:
    """A keras.applications `weights: file.h5` is relative to the config file (`imagenet` and null are not)."""
    weights = args.get("weights")
    if isinstance(weights, str) and weights != "imagenet":
        return {**args, "weights": str((base / weights).resolve())}
    return args


def safe_name(stem: str) -> str:
    """A run name from a file name: characters outside the allowed set become '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", stem)[:MAX_NAME].lstrip("._-")
    return name or "run"


DEFAULT_STEPS_PER_EXECUTION = 32


def _resolve_steps_per_execution(cfg: Config, loaded: LoadedConfig) -> None:
    spe = cfg.compile.steps_per_execution
    if cfg.distribute == "mirrored":
        if spe is not None and spe > 1:
            raise loaded.locate(ConfigError(
                "distribute: mirrored needs steps_per_execution 1 (Keras 3.15 fails with MirroredStrategy over 2+ "
                "devices and more steps per execution: 'Graph execution error'); remove the key or set 1",
                key="compile.steps_per_execution"))
        cfg.compile.steps_per_execution = 1
    elif spe is None:
        cfg.compile.steps_per_execution = DEFAULT_STEPS_PER_EXECUTION


def _resolve_data_paths(data: DataConfig, base: Path) -> None:
    data.name = data.name or ("digits" if data.source == "builtin" else None)
    if data.source == "npz":
        data.x_key, data.y_key = data.x_key or "x", data.y_key or "y"
    if data.source == "synthetic":
        data.samples, data.classes = data.samples or 1000, data.classes or 2
    for holder in (data, data.validation, data.test):
        if holder is not None and holder.path:
            holder.path = str((base / holder.path).resolve())


def check_graph(model: ModelConfig) -> None:
    """Every node refers to nodes defined before it (so a graph cannot have cycles), names are unique, and
    `output` names a node; mistakes name the node."""
    if model.graph is None:
        return
    seen: list[str] = []
    names = [node.name for node in model.graph]
    for i, node in enumerate(model.graph):
        key = f"model.graph[{i}]"
        if node.name == GRAPH_INPUT or node.name in seen:
            raise ConfigError(f"node name {node.name!r} is taken (`input` is the model's input)", key=f"{key}.name")
        for ref in [*(node.inputs or []), *([node.share] if node.share else [])]:
            if ref == GRAPH_INPUT and ref != node.share or ref in seen:
                continue
            why = ("comes later: a node takes only earlier nodes, so a graph has no cycles" if ref in names
                   else f"is not a node{did_you_mean(ref, [GRAPH_INPUT, *seen])}")
            raise ConfigError(f"{ref!r} {why}", key=f"{key}.{'share' if ref == node.share else 'inputs'}")
        seen.append(node.name)
    if model.output is not None and model.output not in seen:
        raise ConfigError(f"no node {model.output!r}{did_you_mean(model.output, seen)}", key="model.output")
