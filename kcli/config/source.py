"""A config file's YAML: parsed safely, with a map from key paths to line numbers, bounded for hostile input."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kcli.config.keys import join_key
from kcli.errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20       # a config is a page of YAML; anything larger is not one
MAX_YAML_NODES = 100_000         # values after expanding aliases (a YAML "billion laughs" expands to 10^9)
MAX_YAML_DEPTH = 100             # values inside values; PyYAML composes each level with ~3 nested Python calls


class TooDeep(yaml.MarkedYAMLError):
    """A YAML value nested more than MAX_YAML_DEPTH levels deep."""


class Loader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses values nested more than MAX_YAML_DEPTH deep at the line where that happens
    (PyYAML's composer recurses per level: `x: [[[...]]]` 5000 deep was a RecursionError)."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        """The next node, one level deeper than `parent`."""
        if self.depth >= MAX_YAML_DEPTH:
            raise TooDeep(problem=f"values nested more than {MAX_YAML_DEPTH} levels deep; a config is far flatter",
                          problem_mark=self.peek_event().start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def read(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """yaml.safe_load plus a map from key paths to line numbers, from a single parse.

    Bounded for hostile input: file size, and the number of values aliases expand to, are checked before
    anything walks the document; duplicate keys are an error (YAML says keys are unique; PyYAML keeps the last).
    """
    text = _config_text(path)
    try:
        loader = Loader(text)
    except yaml.YAMLError as exc:   # the reader rejects control characters (NUL, ...) up front
        raise ConfigError(f"not a YAML text file: {_yaml_problem(exc)}", file=path) from None
    try:
        node = loader.get_single_node()
        lines = _line_map(node, "", _Budget(path)) if node is not None else {}
        raw = loader.construct_document(node) if node is not None else None
    except TooDeep as exc:
        mark = exc.problem_mark
        raise ConfigError(f"{exc.problem} (column {mark.column + 1})", file=path, line=mark.line + 1) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = f", column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"YAML syntax error{col}: {problem}", file=path, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {_yaml_problem(exc)}", file=path) from None
    finally:
        loader.dispose()
    if not isinstance(raw, dict):
        raise ConfigError("the config must be a YAML mapping with keys like model, compile, fit", file=path)
    return raw, lines


def _config_text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"the config is {size:,} bytes; a kcli config is at most {MAX_CONFIG_BYTES:,}",
                              file=path)
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", file=path) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a config file", file=path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not a UTF-8 text file ({exc.reason} at byte {exc.start})", file=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror or exc}", file=path) from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    return " ".join(str(exc).split())


@dataclass
class _Budget:
    """Counts the values a YAML document expands to (aliases count every time they are used)."""

    path: Path
    left: int = MAX_YAML_NODES

    def spend(self, node: yaml.Node) -> None:
        self.left -= 1
        if self.left < 0:
            raise ConfigError(f"the YAML expands to more than {MAX_YAML_NODES:,} values (aliases nested in "
                              "aliases?); a config is far smaller", file=self.path, line=node.start_mark.line + 1)


def _line_map(node: yaml.Node, prefix: str, budget: _Budget) -> dict[str, int]:
    budget.spend(node)
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = join_key(prefix, key_node.value)
            line = key_node.start_mark.line + 1
            if key in lines and isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
                raise ConfigError(f"duplicate key {key_node.value!r} (lines {lines[key]} and {line}); "
                                  "keep one", file=budget.path, line=line, key=key)
            lines[key] = line
            lines.update(_line_map(value_node, key, budget))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            key = f"{prefix}[{i}]"
            lines[key] = item.start_mark.line + 1
            lines.update(_line_map(item, key, budget))
    return lines
