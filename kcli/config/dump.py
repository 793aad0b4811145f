"""A config as data: its leaves flattened to key paths, two configs' differences, and the YAML a run saves."""

from __future__ import annotations

from typing import Any

import yaml

from kcli.config.compose import describe_origin
from kcli.config.keys import join_key
from kcli.config.loading import LoadedConfig
from kcli.config.models import Config


def origins(loaded: LoadedConfig, cfg: Config) -> list[tuple[str, Any, str]]:
    """Every leaf value of a resolved config with where it came from (see compose.describe_origin)."""
    flat = flatten(cfg.model_dump(mode="json", by_alias=True, exclude_none=True))
    return [(key, value, describe_origin(key, loaded.raw, loaded.origins, loaded.set_keys))
            for key, value in flat.items()]


def differences(mine: Config, theirs: Config) -> dict[str, tuple[Any, Any]]:
    """Key path -> (theirs, mine) for every leaf value that differs between two resolved configs."""
    a = flatten(theirs.model_dump(mode="json", by_alias=True, exclude_none=True))
    b = flatten(mine.model_dump(mode="json", by_alias=True, exclude_none=True))
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings and lists -> {`a.b[0].c`: leaf value}."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, join_key(prefix, k)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def mapping(cfg: Config) -> dict[str, Any]:
    """The config as the mapping its YAML holds (aliases such as `class`, no unset values)."""
    return cfg.model_dump(mode="json", by_alias=True, exclude_none=True)


def dump(cfg: Config) -> str:
    """The config as YAML, in the same language the user writes."""
    data = mapping(cfg)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
