"""`extends:` one config built on others, and where each value came from.

`extends: base.yaml` (or a list; paths relative to the file that says it; chains allowed) merges the bases
first, in order, then the file itself: mappings merge key by key, anything else (lists included) is replaced
whole. Relative paths inside a base (data files, `imports`, `file.py:Class`, ...: see paths.py) stay relative
to the base's own folder. Every key path keeps its origin, the file and line that set it, so errors and
`validate --origin` can name the right file.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from kcli.config import source as yaml_source
from kcli.config.keys import key_parts, key_path, under
from kcli.config.paths import rebase
from kcli.errors import ConfigError, KcliError

Origin = tuple[Path, int]   # the file and 1-based line that set a key


def compose(path: Path, chain: tuple[Path, ...] = ()) -> tuple[dict[str, Any], dict[str, Origin]]:
    """The config at `path` with everything it extends merged in; key path -> origin of every value."""
    raw, lines = yaml_source.read(path)
    origins: dict[str, Origin] = {key: (path, line) for key, line in lines.items()}
    if "extends" not in raw:
        return raw, origins
    bases = _bases(raw.pop("extends"), path, lines.get("extends"))
    origins = {k: v for k, v in origins.items() if k != "extends" and not k.startswith("extends[")}
    merged: dict[str, Any] = {}
    merged_origins: dict[str, Origin] = {}
    here = path.resolve()
    for base in bases:
        target = (path.parent / base).resolve()
        if target == here or target in chain:
            cycle = " -> ".join(p.name for p in (*chain, here, target))
            raise ConfigError(f"extends makes a cycle: {cycle}", key="extends", file=path, line=lines.get("extends"))
        base_raw, base_origins = compose(target, (*chain, here))
        try:
            rebase(base_raw, target.parent)   # a base's relative paths are relative to its own folder
        except KcliError as exc:   # a link loop
            raise exc.located(target) from None
        merged = merge(merged, base_raw)
        merged_origins = _overlay(merged_origins, base_origins, base_raw)
    return merge(merged, raw), _overlay(merged_origins, origins, raw)


def _bases(value: Any, path: Path, line: int | None) -> list[str]:
    bases = [value] if isinstance(value, str) else value
    if not isinstance(bases, list) or not bases or not all(isinstance(b, str) and b for b in bases):
        raise ConfigError("extends takes a file name or a list of file names (relative to this file)",
                          key="extends", file=path, line=line)
    for base in bases:
        if not (path.parent / base).is_file():
            raise ConfigError(f"extended file not found: {(path.parent / base).resolve()}", key="extends",
                              file=path, line=line)
    return bases


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`: mappings merge key by key, any other value replaces the base's whole."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _overlay(base: dict[str, Origin], over: dict[str, Origin], over_raw: dict[str, Any]) -> dict[str, Origin]:
    """Origins after merging `over_raw` onto the base: a value that replaced a list or mapping whole also
    replaces the origins of what was inside it."""
    replaced = [key for key in over if not isinstance(value_at(over_raw, key), dict)]
    kept = {k: v for k, v in base.items() if not any(under(k, r) for r in replaced)}
    return {**kept, **over}


def value_at(raw: Any, key: str) -> Any:
    """The value at a key path like `model.layers[0].Dense` (None where it does not exist)."""
    node = raw
    for part in key_parts(key):
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
        else:
            node = node.get(part) if isinstance(node, dict) else None
    return node


def describe_origin(key: str, raw: dict[str, Any], origins: dict[str, Origin], set_keys: dict[str, str]) -> str:
    """Where the value at `key` came from: `--set ...`, `file:line`, or `default` (kcli or Keras filled it in)."""
    for changed, text in set_keys.items():
        if under(key, changed):
            return f"--set {text}"
    if value_at(raw, key) is None:
        return "default"
    found = origin_of(key, origins)
    return f"{found[0]}:{found[1]}" if found else "default"


def origin_of(key: str, origins: dict[str, Origin]) -> Origin | None:
    """The origin of `key`, or of its nearest parent that a file spells out."""
    parts = key_parts(key)
    while parts:
        found = origins.get(key_path(tuple(parts)))
        if found is not None:
            return found
        parts.pop()
    return None
