"""`--set KEY=VALUE`: command-line changes to a config, applied to the parsed YAML before validation.

KEY is a dotted path with list items addressed by index (`model.layers[0]`), by name (`fit.callbacks[EarlyStopping]`:
the item named so, bare or as a one-key mapping) or by an argument (`model.layers[name=fc1]`). `KEY+=VALUE`
appends VALUE to the list at KEY; `KEY-=ITEM` removes the items ITEM names (an index or a name). VALUE is
read as YAML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from kcli.config.keys import Item, KeyPathError, key_path, parse, under
from kcli.config.source import Loader
from kcli.errors import ConfigError, KcliError


@dataclass(frozen=True)
class Select:
    """A list item chosen by name (`[EarlyStopping]`) or by an argument's value (`[name=fc1]`)."""

    text: str

    def matches(self, item: Any) -> bool:
        """Whether a list entry (`Name`, `{Name: {args}}`) is the one meant."""
        name, args = _entry(item)
        if "=" not in self.text:
            return name is not None and (name == self.text or name.rsplit(":", 1)[-1] == self.text)
        arg, _, value = self.text.partition("=")
        return isinstance(args, dict) and str(args.get(arg.strip())) == value.strip()


Part = str | int | Select


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, str]:
    """Apply `--set` edits in place, in order; returns key path (indexes resolved) -> the --set text."""
    applied: dict[str, str] = {}
    for text in overrides:
        key, op, value = _split_assignment(text)
        parsed = _parse_value(value, text)
        parts = _split_key(key, text)
        if parts[0] == "extends":
            raise ConfigError("extends is read from the file before --set applies; write it in the config",
                              key=f"--set {text}")
        if op == "=":
            resolved = _assign(raw, parts, parsed, text)
        elif op == "+=":
            resolved = _append(raw, parts, parsed, text)
        else:
            resolved = _remove(raw, parts, parsed, text)
        applied[key_path(tuple(resolved))] = text
    return applied


def split_key_path(key: str, where: str) -> list[Part]:
    """A config key path alone (the KEY of `--set KEY=VALUE`), split into parts; a text that `--set` would read as
    anything else (`fit.epochs=1 #`, `fit.epochs+`, surrounding spaces) is a ConfigError naming `where`."""
    text = f"{key}=0"
    try:
        found, op, _ = _split_assignment(text)
    except ConfigError:
        found, op = "", ""
    if (found, op) != (key, "="):
        raise ConfigError(f"{key!r} is not a config key path like model.layers[0].Dense.units (no '=', no "
                          "trailing '+' or '-', no surrounding spaces)", key=where)
    try:
        return _split_key(key, text)
    except ConfigError as exc:
        raise ConfigError(exc.message, key=where) from None


def _split_assignment(text: str) -> tuple[str, str, str]:
    """'a[name=x].b+=1' -> ('a[name=x].b', '+=', '1'): the first `=` outside brackets ends the key."""
    depth = 0
    for i, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "=" and depth == 0:
            op = text[i - 1] + "=" if i and text[i - 1] in "+-" else "="
            key = text[:i - len(op) + 1].strip()
            if key:
                return key, op, text[i + 1:]
            break
    raise ConfigError("expected KEY=VALUE (or KEY+=VALUE, KEY-=ITEM), e.g. --set fit.epochs=20",
                      key=f"--set {text}")


def _parse_value(value: str, text: str) -> Any:
    try:
        return yaml.load(value, Loader=Loader) if value.strip() else None   # noqa: S506 (Loader is a SafeLoader)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"the value is not valid YAML ({problem})", key=f"--set {text}") from None


def _split_key(key: str, text: str) -> list[Part]:
    """'model.layers[0].Dense.units' -> ['model', 'layers', 0, 'Dense', 'units']; `[Name]` -> Select."""
    try:
        parts = parse(key, strict=True)
    except KeyPathError as exc:
        raise ConfigError(str(exc), key=f"--set {text}") from None
    return [Select(p.text) if isinstance(p, Item) else p for p in parts]


def _entry(item: Any) -> tuple[str | None, Any]:
    if isinstance(item, str):
        return item, None
    if isinstance(item, dict) and len(item) == 1:
        (name, args), = item.items()
        return (name, args) if isinstance(name, str) else (None, None)
    return None, None


def _index(node: Any, part: int | Select, where: str, text: str) -> int:
    """The list position a part names; errors list what exists."""
    if not isinstance(node, list):
        raise ConfigError(f"{where} is not a list", key=f"--set {text}")
    if isinstance(part, int):
        if part >= len(node):
            raise ConfigError(f"{where} has {len(node)} entries", key=f"--set {text}")
        return part
    found = [i for i, item in enumerate(node) if part.matches(item)]
    if not found:
        names = ", ".join(str(_entry(item)[0]) for item in node) or "nothing"
        raise ConfigError(f"{where} has no item [{part.text}]; it has: {names}", key=f"--set {text}")
    if len(found) > 1:
        raise ConfigError(f"{where} has {len(found)} items [{part.text}]; use an index", key=f"--set {text}")
    return found[0]


def _own_key(node: dict[str, Any], part: str) -> str:
    """`Scale` in an entry `{my_layers.py:Scale: {...}}` means that entry's one key."""
    if part not in node and len(node) == 1:
        (only,) = node
        if isinstance(only, str) and only.rsplit(":", 1)[-1] == part:
            return only
    return part


def _walk(node: Any, parts: list[Part], text: str) -> tuple[Any, list[str | int]]:
    """Follow `parts` (creating mappings as needed); returns the node reached and the resolved path."""
    resolved: list[str | int] = []
    for depth, part in enumerate(parts):
        where = key_path(tuple(resolved)) or "the top level"
        step: str | int
        if isinstance(part, str):
            if not isinstance(node, dict):
                raise ConfigError(f"{where} is not a mapping", key=f"--set {text}")
            step = _own_key(node, part)
            nxt = parts[depth + 1] if depth + 1 < len(parts) else None
            child = node.get(step)
            if isinstance(child, str) and isinstance(nxt, str):
                child = node[step] = {child: {}}   # a bare layer name `ReLU` gains arguments: {ReLU: {...}}
            elif child is None and nxt is not None:
                child = node[step] = [] if not isinstance(nxt, str) else {}
        else:
            step = _index(node, part, where, text)
            child = node[step]
            nxt = parts[depth + 1] if depth + 1 < len(parts) else None
            if isinstance(child, str) and isinstance(nxt, str):
                child = node[step] = {child: {}}
        resolved.append(step)
        if depth < len(parts) - 1:
            node = child
    return node, resolved


def _assign(raw: dict[str, Any], parts: list[Part], value: Any, text: str) -> list[str | int]:
    parent, resolved = _walk(raw, parts, text)
    parent[resolved[-1]] = value
    return resolved


def _append(raw: dict[str, Any], parts: list[Part], value: Any, text: str) -> list[str | int]:
    parent, resolved = _walk(raw, parts, text)
    items = parent.get(resolved[-1]) if isinstance(parent, dict) else parent[resolved[-1]]
    if items is None:
        items = parent[resolved[-1]] = []
    if not isinstance(items, list):
        raise ConfigError(f"{key_path(tuple(resolved))} is not a list; += appends to lists", key=f"--set {text}")
    items.append(value)
    return [*resolved, len(items) - 1]


def _remove(raw: dict[str, Any], parts: list[Part], value: Any, text: str) -> list[str | int]:
    parent, resolved = _walk(raw, parts, text)
    items = parent.get(resolved[-1]) if isinstance(parent, dict) else parent[resolved[-1]]
    where = key_path(tuple(resolved))
    if not isinstance(value, int | str) or isinstance(value, bool):
        raise ConfigError("-= takes an index or an item name", key=f"--set {text}")
    index = _index(items, value if isinstance(value, int) else Select(value), where, text)
    del items[index]
    return resolved


def blame_override(err: KcliError, set_keys: dict[str, str]) -> KcliError:
    """An error at a key that --set changed names the --set, not the file."""
    for key, text in set_keys.items():
        if err.key and (under(err.key, key) or under(key, err.key)):
            err.file = f"--set {text}"
            break
    return err
