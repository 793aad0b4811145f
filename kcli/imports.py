"""The user's own Python: `imports:` files and modules, and `file.py:Class` references.

Classes found here are looked up by name after Keras's own, and passed as `custom_objects`
when a saved model is loaded back.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from kcli.compose import is_file_ref
from kcli.errors import ConfigError, RunError


@dataclass(frozen=True)
class CodeLock:
    """The only code a registry may import on behalf of a finished run: its own copies in RUN/code/ (which
    trust.py allowed) and the dotted modules its run.json lists. Whatever else its files name is refused."""

    run: Path
    files: tuple[Path, ...]
    modules: tuple[str, ...]

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
    files: list[Path] = field(default_factory=list)     # imported .py files, to copy into a run
    modules: list[str] = field(default_factory=list)    # imported dotted modules
    lock: CodeLock | None = None   # a finished run's code only: every load goes through its admit()

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
        module = import_file(Path(entry), key) if is_file_ref(entry) else import_module(entry, key)
        if is_file_ref(entry) and Path(entry) not in self.files:
            self.files.append(Path(entry))
        elif not is_file_ref(entry) and entry not in self.modules:
            self.modules.append(entry)
        self.add_module(module)
        return module


def load_imports(entries: list[str], lock: CodeLock | None = None) -> Registry:
    """Import every `imports:` entry (already resolved to absolute paths); only what `lock` admits if given."""
    registry = Registry(lock=lock)
    for i, entry in enumerate(entries):
        registry.load(entry, f"imports[{i}]")
    return registry


_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
# Where a config can name code (file.py:Name, pkg.module:Name): the rest holds data (column names, paths, URIs)
_CODE_SECTIONS = (("model", ("init_from",)), ("compile", ()), ("fit", ("class_weight", "checkpoint")))


def code_target(text: str) -> str | None:
    """The file or dotted module that a `file.py:Name` / `pkg.module:Name` string names, else None."""
    target, colon, name = text.rpartition(":")
    if not colon or not name.isidentifier():
        return None
    return target if is_file_ref(target) or _DOTTED.fullmatch(target) else None


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


def _module_name(path: Path) -> str:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    return f"kcli_user.{path.stem}_{digest}"


def import_file(path: Path, key: str) -> ModuleType:
    """Import a Python file under a stable private module name."""
    name = _module_name(path)
    if not path.is_file():
        raise ConfigError(f"Python file not found: {path}", key=key)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {path}: not a Python file", key=key)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code may raise anything; report it on one line
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
    except Exception as exc:  # the user's code may raise anything; report it on one line
        raise ConfigError(f"module {dotted!r} failed to import: {type(exc).__name__}: {exc}", key=key) from None
    return module


def _line_in(exc: BaseException, path: Path) -> str:
    """':12' for the deepest traceback frame inside `path` (or the SyntaxError's line)."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f":{exc.lineno}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    return f":{frames[-1].lineno}" if frames else ""
