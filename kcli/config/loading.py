"""A config file -> a validated config that knows where each value came from: composition (`extends`), `--set`,
the one path rebase, and pydantic's errors turned into one line naming the key, the file and the line.
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel, ValidationError

from kcli.config.compose import Origin, compose, origin_of
from kcli.config.keys import key_path
from kcli.config.models import Config
from kcli.config.overrides import apply_overrides, blame_override
from kcli.config.paths import rebase
from kcli.config.suggest import did_you_mean
from kcli.errors import ConfigError, KcliError


@dataclass
class LoadedConfig:
    """A validated config plus where it came from (for paths and error locations)."""

    config: Config
    path: Path
    origins: dict[str, Origin] = field(default_factory=dict)   # key path -> (file, line) that set it
    overrides: list[str] = field(default_factory=list)   # the --set KEY=VALUE strings applied
    set_keys: dict[str, str] = field(default_factory=dict)  # key path -> the --set text that changed it
    # the composed YAML with --set applied, as written (a base's relative paths already made absolute)
    raw: dict[str, Any] = field(default_factory=dict)

    def locate(self, err: KcliError) -> KcliError:
        """Point an error at the --set that changed its key, or else at the file and line that set it."""
        return _locate(err, self.path, self.origins, self.set_keys)

    @contextmanager
    def located(self) -> Iterator[None]:
        """A KcliError raised inside names the file and line (or the --set) that set its key: how every error
        about a loaded config is located."""
        try:
            yield
        except KcliError as exc:
            raise self.locate(exc) from None


def _locate(err: KcliError, path: Path, origins: dict[str, Origin], set_keys: dict[str, str]) -> KcliError:
    err = blame_override(err, set_keys)
    if err.file is None and err.key:
        found = origin_of(err.key, origins)
        if found is not None:
            err.file, err.line = found
    return err.located(path)


def load(path: Path, overrides: list[str] | None = None) -> LoadedConfig:
    """Read, compose (`extends`), parse and validate a config file, with `--set KEY=VALUE` overrides applied
    last and every relative path made absolute against the folder of the file that wrote it."""
    raw, origins = compose(path)
    overrides = list(overrides or [])
    set_keys = apply_overrides(raw, overrides)
    absolute = copy.deepcopy(raw)
    try:
        rebase(absolute, path.parent.resolve())   # the file's own paths and its --set's (compose did the bases')
        config = _validated(absolute)
    except KcliError as exc:
        raise _locate(exc, path, origins, set_keys) from None
    return LoadedConfig(config=config, path=path, origins=origins, overrides=overrides, set_keys=set_keys,
                        raw=raw)


def _validated(raw: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        # The deepest error is the most specific one (a union reports each branch separately).
        raise translate(max(exc.errors(), key=lambda e: len(e["loc"])), raw) from None


def translate(error: dict[str, Any], raw: Any = None) -> ConfigError:
    """One pydantic error -> one ConfigError naming the key path."""
    loc = _config_loc(tuple(error["loc"]), raw)
    kind = error["type"]
    if kind == "extra_forbidden":
        parent, key = loc[:-1], str(loc[-1])
        known = _fields_at(parent)
        where = key_path(parent) or "top level"
        return ConfigError(f"unknown key {key!r} in {where}{did_you_mean(key, known)}", key=key_path(loc))
    if kind == "missing":
        return ConfigError("required key is missing", key=key_path(loc))
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "string_pattern_mismatch" and loc == ("name",):
        message = ("a run name holds only letters, digits, '.', '_' and '-', and starts with a letter or digit "
                   "(it names a folder under --runs-dir)")
    if kind.startswith(("int_", "float_", "bool_", "string_", "list_", "dict_", "literal_", "greater", "less")):
        shown = repr(error.get("input"))
        message += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    return ConfigError(message, key=key_path(loc) or None)


def _config_loc(loc: tuple[Any, ...], raw: Any) -> tuple[Any, ...]:
    """A pydantic `loc` without its union tags: a part that is a key of the config at that place is a key (a
    user's key may look like a tag: 'x[red]'); any other part that looks like a tag is one."""
    out: list[Any] = []
    node = raw
    for part in loc:
        here = isinstance(node, dict) and part in node or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node))
        if here:
            node = node[part]
        elif _is_union_tag(part):
            continue
        else:
            node = None   # past what the raw config shows (a validator reshaped it): keep what pydantic says
        out.append(part)
    return tuple(out)


def _is_union_tag(part: Any) -> bool:
    """pydantic names union members in `loc` ('int', 'list[constrained-int]', 'function-before[...]')."""
    return isinstance(part, str) and (part in {"int", "bool", "str", "float"} or any(c in part for c in "[-"))


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys a config mapping at `loc` accepts (for did-you-mean on unknown keys)."""
    model: Any = Config
    for part in loc:
        if isinstance(part, int):
            continue
        fld = model.model_fields.get(part) or next(
            (f for f in model.model_fields.values() if f.alias == part), None)
        if fld is None:
            return []
        model = _model_in(fld.annotation)
        if model is None:
            return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
