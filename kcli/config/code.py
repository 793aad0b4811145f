"""The user's own Python: `imports:` files and modules, and `file.py:Class` references.

Classes found here are looked up by name after Keras's own, and passed as `custom_objects`
when a saved model is loaded back.

A Python file is read once, as bytes, and those bytes are what runs (run_code compiles them from memory): the
bytes a finished run's trust check hashed (trust.allowed_code) are the bytes that run, a file swapped after the
check or a planted __pycache__/*.pyc never runs in their place, and no .pyc is written beside the code.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from kcli.config.paths import code_target, is_file_ref
from kcli.errors import ConfigError, RunError
from kcli.files import readable


@dataclass(frozen=True)
class CodeLock:
    """The only code a registry may import on behalf of a finished run: its own copies in RUN/code/ (which
    trust.py allowed), each with the bytes trust.py read and checked (they run, never the file read again), and
    the dotted modules its run.json lists. Whatever else its files name is refused."""

    run: Path
    sources: Mapping[Path, bytes]
    modules: tuple[str, ...]

    @property
    def files(self) -> tuple[Path, ...]:
        """The run's code files (RUN/code/*.py)."""
        return tuple(self.sources)

    def admit(self, entry: str, key: str) -> str:
        """The entry to import instead of `entry` (a file named in config.yaml -> the run's copy of it)."""
        if is_file_ref(entry):
            path = Path(entry)
            # config.yaml keeps the paths the run was trained from; the run's copy of each has its file name
            for copy in self.files:
                if path.name == copy.name:
                    return str(copy)
            what = f"the file {entry}"
        elif entry in self.modules:
            return entry
        else:
            what = f"the module {entry!r}"
        raise RunError(f"{what} would run with your rights, but the run did not train with it: a run only loads "
                       "the .py files in its code/ folder and the modules its run.json lists, with --trust-code "
                       "too (was config.yaml or run.json edited?)", key=key, file=self.run / "config.yaml")


@dataclass
class Registry:
    """Classes defined by the user's imported modules, by class name."""

    classes: dict[str, type] = field(default_factory=dict)
    sources: dict[Path, bytes] = field(default_factory=dict)   # imported .py files: the bytes that ran
    modules: list[str] = field(default_factory=list)    # imported dotted modules
    lock: CodeLock | None = None   # a finished run's code only: every load goes through its admit()

    @property
    def files(self) -> list[Path]:
        """The imported .py files."""
        return list(self.sources)

    def add_module(self, module: ModuleType) -> None:
        """Register every class the module itself defines (not the ones it imports)."""
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and obj.__module__ == module.__name__:
                self.classes[name] = obj

    def lookup(self, name: str, key: str) -> type | None:
        """A class by plain name, or by `file.py:Class` / `pkg.module:Class` reference."""
        if ":" in name:
            target, cls_name = name.rsplit(":", 1)
            module = self.load(target, key)
            cls = getattr(module, cls_name, None)
            if not inspect.isclass(cls):
                found = [n for n, o in vars(module).items() if inspect.isclass(o) and o.__module__ == module.__name__]
                raise ConfigError(f"{target} defines no class {cls_name!r}; it defines: {', '.join(found) or 'none'}",
                                  key=key)
            return cls
        return self.classes.get(name)

    def load(self, entry: str, key: str) -> ModuleType:
        """Import a file or dotted module once and register its classes."""
        if self.lock is not None:
            entry = self.lock.admit(entry, key)
        if is_file_ref(entry):
            path = Path(entry)
            # a run's file runs from the bytes its trust check read (admit returned one of them), never re-read
            source = self.lock.sources[path] if self.lock is not None else read_code(path, key)
            module = run_code(path, source, key)
            self.sources.setdefault(path, source)
        else:
            module = import_module(entry, key)
            if entry not in self.modules:
                self.modules.append(entry)
        self.add_module(module)
        return module


def load_imports(entries: list[str], lock: CodeLock | None = None) -> Registry:
    """Import every `imports:` entry (already resolved to absolute paths); only what `lock` admits if given."""
    registry = Registry(lock=lock)
    for i, entry in enumerate(entries):
        registry.load(entry, f"imports[{i}]")
    return registry


# Where a config can name code (file.py:Name, pkg.module:Name): the rest holds data (column names, paths, URIs)
_CODE_SECTIONS = (("model", ("init_from",)), ("compile", ()), ("fit", ("class_weight", "checkpoint")))


def named_code(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """(config key, file or module) for every piece of code a config (its YAML mapping) names: `imports`,
    `data.function`, and every class or function reference in model, compile and fit."""
    found = [(f"imports[{i}]", str(entry)) for i, entry in enumerate(raw.get("imports") or [])]
    function = (raw.get("data") or {}).get("function")
    if isinstance(function, str) and ":" in function:
        found.append(("data.function", function.rpartition(":")[0]))
    for section, skip in _CODE_SECTIONS:
        value = raw.get(section) or {}
        _walk({k: v for k, v in value.items() if k not in skip} if isinstance(value, dict) else value, section,
              found)
    return found


def _walk(value: Any, key: str, found: list[tuple[str, str]]) -> None:
    """Collect code references among the keys (one-key Specs) and string values under `value`."""
    if isinstance(value, dict):
        for name, inner in value.items():
            target = code_target(name) if isinstance(name, str) else None
            if target is not None:
                found.append((f"{key}.{name}", target))
            _walk(inner, f"{key}.{name}", found)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            _walk(inner, f"{key}[{i}]", found)
    elif isinstance(value, str) and (target := code_target(value)) is not None:
        found.append((key, target))


def _module_name(path: Path, source: bytes) -> str:
    """A private module name for these bytes at this path (other bytes at the same path are another module)."""
    digest = hashlib.sha1(str(path).encode() + b"\0" + hashlib.sha256(source).digest()).hexdigest()[:8]
    return f"kcli_user.{path.stem}_{digest}"


def read_code(path: Path, key: str) -> bytes:
    """The bytes of the user's Python file (`imports:`, `file.py:Name`), read once: they run and are copied."""
    if not readable.present(path, key, ConfigError):
        raise ConfigError(f"Python file not found: {path}", key=key)
    source = readable.read_bytes(path)
    if source is None:
        raise ConfigError(f"cannot read the Python file {path}", key=key)
    return source


def run_code(path: Path, source: bytes, key: str) -> ModuleType:
    """Run these exact bytes as the module of `path`, once per path and contents, under a private name:
    compiled from memory (no loader: no __pycache__/*.pyc is consulted instead, and none is written)."""
    name = _module_name(path, source)
    if name in sys.modules:
        return sys.modules[name]
    module = ModuleType(name)
    module.__file__ = str(path)   # for tracebacks and inspect.getsource
    sys.modules[name] = module    # before it runs, as an import does (dataclasses and pickling look it up)
    try:
        exec(compile(source, str(path), "exec", dont_inherit=True), module.__dict__)
    except (Exception, SystemExit) as exc:  # the user's code may raise anything (sys.exit too): one line
        del sys.modules[name]
        raise ConfigError(f"{path}{_line_in(exc, path)} failed to import: {type(exc).__name__}: {exc}",
                          key=key) from None
    return module


def import_module(dotted: str, key: str) -> ModuleType:
    """Import a dotted module (installed, or beside the current directory)."""
    try:
        module = importlib.import_module(dotted)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"module {dotted!r} not found ({exc}); a file must end in .py", key=key) from None
    except (Exception, SystemExit) as exc:  # the user's code may raise anything (sys.exit too): one line
        raise ConfigError(f"module {dotted!r} failed to import: {type(exc).__name__}: {exc}", key=key) from None
    return module


def _line_in(exc: BaseException, path: Path) -> str:
    """':12' for the deepest traceback frame inside `path` (or the SyntaxError's line)."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f":{exc.lineno}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    return f":{frames[-1].lineno}" if frames else ""
