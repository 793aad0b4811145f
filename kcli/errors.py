"""The exceptions kcli raises for user mistakes and failed runs, and how a message (or any text shown) quotes data."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any


class KcliError(Exception):
    """A user mistake: says where (file, config key) and what to do; the CLI exits with code 2."""

    exit_code = 2

    def __init__(self, message: str, *, key: str | None = None, file: Path | str | None = None,
                 line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key = key
        self.file = file
        self.line = line

    def located(self, file: Path | str) -> KcliError:
        """Attach the config file unless already set (the line comes from where the key was set)."""
        if self.file is None:
            self.file = file
        return self

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        key = f"{self.key}: " if self.key else ""
        return masked(f"{where}{key}{self.message}")   # a --set or a config may hold a URL with a password


_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):[^@/\s]*@")


def masked(text: str) -> str:
    """Text with the password of any URL in it (scheme://user:password@host) replaced by ***."""
    return _PASSWORD.sub(r"\1:***@", text)


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
    parts: list[str | int] = []
    i = 0
    while i < len(key):
        if key.startswith('["', i):
            try:
                name, end = json.JSONDecoder().raw_decode(key, i + 1)
            except ValueError:
                name, end = key[i + 1:], len(key) - 1
            parts.append(str(name))
            i = end + 1
        elif key[i] == "[":
            end = key.find("]", i)
            end = len(key) if end < 0 else end
            inside = key[i + 1:end]
            parts.append(int(inside) if inside.isdigit() else inside)
            i = end + 1
        else:
            start = i + 1 if key[i] == "." else i
            stop = min((j for j in (key.find(".", start), key.find("[", start)) if j >= 0), default=len(key))
            parts.append(key[start:stop])
            i = stop
    return parts


def first_line(exc: BaseException) -> str:
    """The first line of an error (its type when it has none), without TensorFlow's `{{function_node ...}}`
    prefix and device suffixes."""
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", str(exc)).strip() or type(exc).__name__
    line = text.splitlines()[0].strip()
    return re.sub(r" (on|by allocator) /job:\S+| by allocator \S+", "", line)


def cut(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, "..." marking a cut (the one way messages shorten what they quote)."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def capped(value: Any, limit: int = 60) -> str:
    """A value from a request or a file inside a message: its repr, cut to `limit` characters."""
    return cut(repr(value), limit)


def listed(items: list[str], shown: int = 3) -> str:
    """Items for a one-line message: at most `shown` of them, then how many more ("a, b, c ... 2,996 more")."""
    head = ", ".join(items[:shown])
    return f"{head} ... {len(items) - shown:,} more" if len(items) > shown else head


class ConfigError(KcliError):
    """The YAML config is malformed, or names something that does not exist."""


class DataError(KcliError):
    """The data a config points at is missing or does not fit the model."""


class RunError(KcliError):
    """A run directory is missing, unfinished, or cannot be used as asked."""


class Failure(Exception):
    """Valid input, but the work could not be done; the CLI exits with code 1."""

    exit_code = 1


class TrainingFailed(Failure):
    """Training started but could not finish (e.g. the loss became NaN)."""


class WorkerLost(Failure):
    """A worker of a multi-worker cluster died or stopped answering; the run is interrupted and resumable."""


class Interrupted(Failure):
    """The user pressed Ctrl-C; the run's state of its last completed epoch is kept for --resume."""

    exit_code = 130


class ExportFailed(Failure):
    """An exported model, loaded back with its own runtime, does not reproduce the Keras model."""


# C0 and C1 control characters, DEL, and the invisible format characters that reorder or hide text (bidi
# overrides, zero-width marks): a terminal acts on them, so data never reaches it with them raw.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ufeff]")
# the same for text shown as lines (a file in a page): tabs, newlines and a CR ending a line (CRLF) stay
_CONTROL_IN_LINES = re.compile("\r(?!\n)|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029"
                               "\u2066-\u2069\ufeff]")


def _decodable(message: str) -> str:
    """A file name's undecodable bytes (lone surrogates from the OS, b'\\xff') as \\xff."""
    try:
        return message.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:   # a surrogate that is no escaped byte (say from JSON's "\\ud800")
        return message.encode("utf-8", "backslashreplace").decode("utf-8")


def visible(value: Any, lines: bool = False) -> str:
    """`value` as text whose control characters show as their escapes (ESC as \\x1b, a newline as \\n, U+202E
    as \\u202e) and whose undecodable bytes show as \\xff; with `lines`, tabs and line ends stay as they are."""
    control = _CONTROL_IN_LINES if lines else _CONTROL
    return control.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), _decodable(str(value)))
