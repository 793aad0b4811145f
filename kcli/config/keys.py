"""Config key paths (`model.layers[2].units`, `data["x[red]"]`): the one reader and writer of them.

Errors name keys with them, `--set` and sweeps take them, composition records where each key was set by them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


class KeyPathError(ValueError):
    """A key path that `parse(..., strict=True)` cannot read; the message says which part."""


@dataclass(frozen=True)
class Item:
    """A list item named in brackets by text rather than an index (`[EarlyStopping]`, `[name=fc1]`)."""

    text: str


Part = str | int | Item


def key_path(loc: tuple[Any, ...]) -> str:
    """('model', 'layers', 2) -> 'model.layers[2]'; a key holding '.', '[', ']' or '"' is quoted: data["x[red]"]."""
    out = ""
    for part in loc:
        out = join_key(out, part)
    return out


def join_key(prefix: str, part: Any) -> str:
    """One more step on a key path: an index as [2], a plain name after a dot, any other key quoted as ["a.b"]."""
    if isinstance(part, int) and not isinstance(part, bool):
        return f"{prefix}[{part}]"
    name = str(part)
    if not name or any(c in name for c in '.[]"'):   # a dot or bracket here would read as a path step
        return f"{prefix}[{json.dumps(name)}]"
    return f"{prefix}.{name}" if prefix else name


def key_parts(key: str) -> list[str | int]:
    """'model.layers[0].Dense' -> ['model', 'layers', 0, 'Dense']; 'data["x[red]"]' -> ['data', 'x[red]'] (the
    inverse of key_path; a part it cannot read is kept as text)."""
    return [p.text if isinstance(p, Item) else p for p in parse(key)]


def parse(key: str, strict: bool = False) -> list[Part]:
    """A key path split into parts. Lenient (the default) reads any text, keeping what it cannot read as text;
    `strict` (a key the user typed: `--set`, sweeps) raises KeyPathError on an empty or malformed part and reads a
    non-numeric `[text]` as an Item."""
    parts: list[Part] = []
    i = 0
    while i < len(key):
        if key.startswith('["', i):
            name, i = _quoted(key, i, strict)
            parts.append(name)
        elif key[i] == "[":
            end = key.find("]", i)
            inside = key[i + 1:] if end < 0 else key[i + 1:end]
            parts.append(_bracket(inside, end >= 0, strict))
            i = len(key) if end < 0 else end + 1
        else:
            start = i + 1 if key[i] == "." and not strict else i
            stop = min((j for j in (key.find(".", start), key.find("[", start)) if j >= 0), default=len(key))
            if strict and stop == start:
                raise KeyPathError("empty key")
            parts.append(key[start:stop])
            i = stop
        if strict and key.startswith(".", i):   # a dot ends every part of a typed key
            i += 1
    return parts


def _quoted(key: str, i: int, strict: bool) -> tuple[str, int]:
    """The quoted key starting at `key[i]` ('["a.b"]') and the position after it."""
    try:
        name, end = json.JSONDecoder().raw_decode(key, i + 1)
    except ValueError:
        if strict:
            raise KeyPathError(f"bad quoted key {key[i:]}") from None
        return key[i + 1:], len(key)
    if strict and not key.startswith("]", end):
        raise KeyPathError(f"bad quoted key {key[i:]}")
    return str(name), end + 1


def _bracket(inside: str, closed: bool, strict: bool) -> Part:
    if not strict:
        return int(inside) if inside.isdigit() else inside
    if not closed or not inside.strip():
        raise KeyPathError(f"bad list item [{inside}")
    inside = inside.strip()
    return int(inside) if inside.isdigit() else Item(inside)


def under(key: str, parent: str) -> bool:
    """Whether `key` is `parent` or a key inside it (`model.layers[0]` is under `model.layers`, `model.layer` is
    not)."""
    return key == parent or key.startswith((parent + ".", parent + "["))
