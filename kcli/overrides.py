"""`--set KEY=VALUE`: command-line changes to a config, applied to the parsed YAML before validation."""

from __future__ import annotations

from typing import Any

import yaml

from kcli.errors import ConfigError, KcliError, key_path


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, str]:
    """Apply `--set a.b[0].c=VALUE` (VALUE parsed as YAML) in place; returns key path -> the --set text."""
    applied: dict[str, str] = {}
    for text in overrides:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError("expected KEY=VALUE, e.g. --set fit.epochs=20", key=f"--set {text}")
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"the value is not valid YAML ({problem})", key=f"--set {text}") from None
        _assign(raw, _split_key(key, text), parsed, text)
        applied[key] = text
    return applied


def _split_key(key: str, text: str) -> list[str | int]:
    """'model.layers[0].Dense.units' -> ['model', 'layers', 0, 'Dense', 'units']."""
    parts: list[str | int] = []
    for piece in key.split("."):
        name, _, rest = piece.partition("[")
        if name:
            parts.append(name)
        while rest:
            index, _, rest = rest.partition("]")
            if not index.isdigit():
                raise ConfigError(f"bad list index [{index}]", key=f"--set {text}")
            parts.append(int(index))
            rest = rest.removeprefix("[")
        if not name and not parts:
            raise ConfigError("empty key", key=f"--set {text}")
    return parts


def _assign(node: Any, parts: list[str | int], value: Any, text: str) -> None:
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = key_path(tuple(parts[:depth])) or "the top level"
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                size = f"has {len(node)} entries" if isinstance(node, list) else "is not a list"
                raise ConfigError(f"{where} {size}", key=f"--set {text}")
        elif not isinstance(node, dict):
            raise ConfigError(f"{where} is not a mapping", key=f"--set {text}")
        if last:
            node[part] = value
            return
        child = node.get(part) if isinstance(node, dict) else node[part]
        if isinstance(child, str) and not isinstance(parts[depth + 1], int):
            child = {child: {}}   # a bare layer name `ReLU` gains arguments: {ReLU: {...}}
            node[part] = child
        elif child is None:
            child = {} if not isinstance(parts[depth + 1], int) else []
            node[part] = child
        node = child


def blame_override(err: KcliError, set_keys: dict[str, str]) -> KcliError:
    """An error at a key that --set changed names the --set, not the file."""
    for key, text in set_keys.items():
        if err.key and (err.key == key or err.key.startswith((key + ".", key + "["))
                        or key.startswith((err.key + ".", err.key + "["))):
            err.file = f"--set {text}"
            break
    return err
