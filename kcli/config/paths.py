"""Relative paths in a config, made absolute against the folder of the file that wrote them: the one rebase.

A config names files in many places: data files (and its validation / test files), `data.function`,
`imports`, `file.py:Class` references (model.class, layers and graph nodes, optimizer, loss, metrics,
schedules, callbacks), a layer's `weights: file.h5`, and `model.init_from`. Each is relative to the config
file that says it: a base that `extends` pulls in keeps its own folder (compose.py rebases it), the file itself
and its `--set`s use its folder (loading.py). Dotted modules, Keras names, `latest:NAME` and URLs stay as they are.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from kcli.errors import ConfigError, DataError, KcliError
from kcli.files import remote

LATEST_RUN = "latest:"   # init_from: latest:NAME, the newest completed run called NAME under --runs-dir


def is_file_ref(entry: str) -> bool:
    """An `imports` entry or class reference that names a Python file rather than a dotted module."""
    return entry.endswith(".py") or "/" in entry or "\\" in entry


def abs_import(entry: str, base: Path) -> str:
    """A file reference made absolute against `base`; dotted modules are left alone."""
    return str((base / entry).resolve()) if is_file_ref(entry) else entry


def abs_ref(name: str, base: Path) -> str:
    """`my_layers.py:MyDense` -> `/abs/my_layers.py:MyDense`; plain names are left alone."""
    if ":" not in name:
        return name
    module, cls = name.rsplit(":", 1)
    return f"{abs_import(module, base)}:{cls}"


def rebased(base: Path, path: str, key: str, error: type[KcliError]) -> str:
    """A path from the config made absolute against the config's folder, links resolved; a link loop is one line
    naming `key` (Python 3.11's resolve() raises RuntimeError "Symlink loop" for it). A URL (s3://bucket/key)
    stays as written."""
    if remote.is_url(path):
        return path
    try:
        return str((base / path).resolve())
    except RuntimeError:
        raise error(f"{base / path} is a symbolic link loop", key=key) from None


def rebase(raw: dict[str, Any], folder: Path) -> None:
    """Every relative file that a config mapping (parsed YAML, not yet validated) names, made absolute against
    `folder`, in place; values of the wrong type are left for validation to name. Absolute paths stay as they
    are, so rebasing twice changes nothing."""
    data = raw.get("data")
    if isinstance(data, dict):
        for key, holder in (("data", data), ("data.validation", data.get("validation")),
                            ("data.test", data.get("test"))):
            if isinstance(holder, dict) and isinstance(holder.get("path"), str) and holder["path"]:
                holder["path"] = rebased(folder, holder["path"], f"{key}.path", DataError)
        if isinstance(data.get("function"), str):
            data["function"] = abs_ref(data["function"], folder)
    if isinstance(raw.get("imports"), list):
        raw["imports"] = [abs_import(e, folder) if isinstance(e, str) else e for e in raw["imports"]]
    model = raw.get("model")
    if isinstance(model, dict):
        _rebase_model(model, folder)
    compile_ = raw.get("compile")
    if isinstance(compile_, dict):
        for key in ("optimizer", "loss", "metrics"):
            if key in compile_:
                compile_[key] = _code_refs(compile_[key], folder)
    fit = raw.get("fit")
    if isinstance(fit, dict) and isinstance(fit.get("callbacks"), list):
        fit["callbacks"] = _code_refs(fit["callbacks"], folder)


def _rebase_model(model: dict[str, Any], folder: Path) -> None:
    if isinstance(model.get("class"), str):
        model["class"] = abs_ref(model["class"], folder)
    if isinstance(model.get("layers"), list):
        model["layers"] = [_layer(spec, folder) for spec in model["layers"]]
    for node in model.get("graph") if isinstance(model.get("graph"), list) else []:
        if isinstance(node, dict) and "layer" in node:
            node["layer"] = _layer(node["layer"], folder)
    init = model.get("init_from")
    if isinstance(init, str) and not init.startswith(LATEST_RUN):
        model["init_from"] = rebased(folder, init, "model.init_from", ConfigError)


def _layer(spec: Any, folder: Path) -> Any:
    """A layer entry (`Name`, `{Name: {args}}`): a `file.py:Class` name, and a keras.applications `weights:
    file.h5` (`imagenet` and null are not files)."""
    if isinstance(spec, str):
        return abs_ref(spec.strip(), folder) if ":" in spec else spec
    if isinstance(spec, dict) and len(spec) == 1:
        (name, args), = spec.items()
        weights = args.get("weights") if isinstance(args, dict) else None
        if isinstance(weights, str) and weights != "imagenet":
            args = {**args, "weights": rebased(folder, weights, "model.layers", ConfigError)}
        return {abs_ref(name, folder) if isinstance(name, str) else name: args}
    return spec


def _code_refs(value: Any, folder: Path) -> Any:
    """Every `file.py:Name` among the one-key mappings' names and the strings of an optimizer, loss, metrics or
    callbacks entry (a schedule `{file.py:Schedule: {...}}`, a LearningRateScheduler's `file.py:function`)."""
    if isinstance(value, str):
        return abs_ref(value, folder) if _is_code_ref(value) else value
    if isinstance(value, list):
        return [_code_refs(v, folder) for v in value]
    if isinstance(value, dict):
        return {(abs_ref(k, folder) if isinstance(k, str) and _is_code_ref(k) else k): _code_refs(v, folder)
                for k, v in value.items()}
    return value


def _is_code_ref(text: str) -> bool:
    """`file.py:Name` (a file, not a dotted module or a URL such as s3://bucket)."""
    target = code_target(text)
    return target is not None and is_file_ref(target)


_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def code_target(text: str) -> str | None:
    """The file or dotted module that a `file.py:Name` / `pkg.module:Name` string names, else None."""
    target, colon, name = text.rpartition(":")
    if not colon or not name.isidentifier():
        return None
    return target if is_file_ref(target) or _DOTTED.fullmatch(target) else None
