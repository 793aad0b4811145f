"""Keras's public API read from its source files, without importing Keras (and so TensorFlow).

`kcli validate` uses it to check names and constructor arguments in ~0.1 s instead of the ~5 s a
TensorFlow import takes. It reads what Keras itself declares: the generated `keras/<package>/__init__.py`
export lists, the alias tables of `keras.losses` / `keras.metrics`, and the `__init__` signatures along a
class's bases. Where the source does not settle a question (a base class it cannot follow), it answers
"anything goes" and leaves the verdict to Keras at build time. The build reads the same signatures from the
live classes (`live_signature`); tests/config/test_validate.py checks that the two agree. The rules applied to what is
read here (look-up order, key paths, messages) are kcli.config.keras_rules'.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kcli.config.suggest import did_you_mean
from kcli.errors import ConfigError


def higher_is_better(name: str) -> bool:
    """Whether a logged value improves upwards (accuracy, AUC, precision, recall, F1), as Keras's mode="auto"."""
    return any(s in name.lower() for s in ("acc", "auc", "precision", "recall", "f1"))


# Keyword names Layer.__init__ takes through **kwargs (read from source here, and by live_signature).
_LAYER_KWARGS = {"input_dim", "input_shape"}
_LAYER = ("keras.src.layers.layer", "Layer")


@dataclass(frozen=True)
class Signature:
    """Accepted keyword names (None: anything) and the required ones."""

    accepted: frozenset[str] | set[str] | None
    required: tuple[str, ...] | list[str]

    def check(self, args: dict[str, Any], key: str) -> None:
        """Name the first unknown or missing constructor argument."""
        for name in args:
            if self.accepted is not None and name not in self.accepted:
                raise ConfigError(f"unknown argument {name!r}{did_you_mean(name, self.accepted)}", key=key)
        missing = [n for n in self.required if n not in args]
        if missing:
            raise ConfigError(f"missing required argument {missing[0]!r}", key=key)


@functools.cache
def keras_root() -> Path | None:
    """The folder of the installed keras package (found without importing it)."""
    spec = importlib.util.find_spec("keras")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def _module_file(module: str) -> Path | None:
    """The source file of a module inside keras (keras.src.layers.core.dense -> .../dense.py)."""
    root = keras_root()
    if root is None or not (module == "keras" or module.startswith("keras.")):
        return None
    parts = module.split(".")[1:]
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _imports(tree: ast.Module, module: str) -> dict[str, tuple[str, str | None]]:
    """Local name -> (module, attribute or None for a module) for every import in a file, first one wins."""
    names: dict[str, tuple[str, str | None]] = {}
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                source = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [source])
            for alias in node.names:
                names.setdefault(alias.asname or alias.name, (source.strip("."), alias.name))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names.setdefault(alias.asname or alias.name.split(".")[0],
                                 (alias.name if alias.asname else alias.name.split(".")[0], None))
    return names


@functools.cache
def public(package: str) -> dict[str, tuple[str, str]]:
    """`keras.<package>`'s public names -> (defining module, name), from its generated export list."""
    path = _module_file(f"keras.{package}")
    tree = parse(path) if path else None
    if tree is None:
        return {}
    return {name: ref for name, (mod, attr) in _imports(tree, f"keras.{package}").items()
            if attr is not None for ref in [(mod, attr)]}


def classes(package: str) -> list[str]:
    """The public names of `keras.<package>` that are classes (CamelCase)."""
    return [name for name in public(package) if name[:1].isupper()]


@functools.cache
def aliases(package: str) -> frozenset[str]:
    """String names that `keras.<package>.get()` accepts besides the public ones (losses: 'mse', ...;
    metrics also take snake_case class names)."""
    path = _module_file(f"keras.src.{package}")
    tree = parse(path) if path else None
    found: set[str] = set()
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                found |= {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    if package == "metrics":
        found |= {_snake(name) for name in classes(package)}
    return frozenset(found)


def _snake(name: str) -> str:
    out = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
    return out.replace("__", "_")


def signature_of(module: str, name: str) -> Signature:
    """The constructor signature of class `name` defined in keras module `module`."""
    path = _module_file(module)
    return _signature(path, module, name) if path else Signature(None, ())


def applications() -> dict[str, tuple[str, str]]:
    """The model functions of keras.applications (MobileNetV2, ResNet50, ...) -> (module, name)."""
    return {name: ref for name, ref in public("applications").items() if name[:1].isupper()}


@functools.cache
def function_signature(module: str, name: str) -> Signature:
    """The keyword arguments of function `name` in keras module `module` (a keras.applications model)."""
    path = _module_file(module)
    tree = parse(path) if path else None
    node = next((n for n in (tree.body if tree else []) if isinstance(n, ast.FunctionDef) and n.name == name), None)
    if node is None or node.args.kwarg is not None:
        return Signature(None, ())
    args = node.args
    positional = [a.arg for a in [*args.posonlyargs, *args.args]]
    with_default = positional[len(positional) - len(args.defaults):] if args.defaults else []
    return Signature(frozenset(positional) | {a.arg for a in args.kwonlyargs},
                     tuple(a for a in positional if a not in with_default))


def signature_in_file(path: Path, name: str) -> Signature:
    """The constructor signature of class `name` defined in a user's Python file."""
    return _signature(path, "__user__", name)


@functools.cache
def _signature(path: Path, module: str, name: str) -> Signature:
    accepted: set[str] = set()
    required: tuple[str, ...] = ()
    for i, (mod, cls) in enumerate(_chain(path, module, name)):
        if cls is None:
            return Signature(None, required)       # a base the source does not settle
        init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        if init is None:
            continue
        args = init.args
        positional = [a.arg for a in [*args.posonlyargs, *args.args]][1:]
        accepted |= set(positional) | {a.arg for a in args.kwonlyargs}
        if i == 0:
            with_default = positional[len(positional) - len(args.defaults):] if args.defaults else []
            required = tuple(a for a in positional if a not in with_default)
            required += tuple(a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None)
        if (mod, cls.name) == _LAYER:   # Layer checks its own **kwargs: it ends the chain
            return Signature(frozenset(accepted | _LAYER_KWARGS), required)
        if args.kwarg is None:
            return Signature(frozenset(accepted), required)
    return Signature(frozenset(accepted), required)


def _chain(path: Path, module: str, name: str) -> list[tuple[str, ast.ClassDef | None]]:
    """The class and its bases, depth first (single inheritance, the common case, gives Python's MRO)."""
    out: list[tuple[str, ast.ClassDef | None]] = []
    todo: list[tuple[Path | None, str, str]] = [(path, module, name)]
    seen: set[tuple[str, str]] = set()
    while todo:
        file, mod, cls_name = todo.pop(0)
        if (mod, cls_name) in seen or cls_name == "object":
            continue
        seen.add((mod, cls_name))
        tree = parse(file) if file else None
        cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls_name), None) \
            if tree is not None else None
        if cls is None:
            if mod.startswith("tensorflow."):
                continue        # TensorFlow's tracking bases (AutoTrackable, ...) take no arguments
            out.append((mod, None))
            break
        out.append((mod, cls))
        imports = _imports(tree, mod) if tree is not None else {}
        todo = [_locate(base, file, mod, imports) for base in cls.bases] + todo
    return out


def _locate(base: ast.expr, file: Path | None, module: str,
            imports: dict[str, tuple[str, str | None]]) -> tuple[Path | None, str, str]:
    """Where a base class expression (Name or dotted Attribute) is defined: (file, module, class name)."""
    dotted = _dotted(base)
    if dotted is None:
        return None, "?", "?"
    head, *rest = dotted.split(".")
    if head in imports:
        mod, attr = imports[head]
        dotted = ".".join([mod] + ([attr] if attr else []) + rest)
    elif not rest:
        return file, module, head          # a class of the same file
    dotted = dotted.replace("tensorflow.keras.", "keras.", 1) if dotted.startswith("tensorflow.keras.") else dotted
    mod, _, cls_name = dotted.rpartition(".")
    if mod.count(".") == 1 and mod.startswith("keras."):       # keras.layers.Layer: a public name
        ref = public(mod.split(".", 1)[1]).get(cls_name)
        if ref is not None:
            mod, cls_name = ref
    return _module_file(mod), mod, cls_name


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


def classes_in_file(path: Path) -> list[str]:
    """The top-level class names a user's Python file defines."""
    tree = parse(path)
    return [n.name for n in tree.body if isinstance(n, ast.ClassDef)] if tree is not None else []


# ---- the same signatures read from live classes, at build time (tests/test_validate.py: the two agree) ----

def live_signature(cls: type) -> Signature:
    """What `signature_of` reads from source, from a live class: the keyword names its __init__ chain accepts
    (None: anything) until an __init__ without **kwargs or Layer's own, and the class's own required ones."""
    accepted: set[str] = set()
    required: list[str] = []
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None or klass is object:
            continue
        try:
            params = inspect.signature(init).parameters
        except (TypeError, ValueError):
            return Signature(None, required)
        named = {n: p for n, p in params.items()
                 if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        accepted |= set(named)
        if klass is cls:
            required = [n for n, p in named.items() if p.default is p.empty]
        if (klass.__module__, klass.__name__) == _LAYER:
            accepted |= _LAYER_KWARGS
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            return Signature(accepted, required)
    return Signature(accepted, required)


def live_function_signature(fn: Callable[..., Any]) -> Signature:
    """What `function_signature` reads from source, from a live function (a keras.applications model)."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return Signature(None, ())
    named = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return Signature(frozenset(p.name for p in named),
                     tuple(p.name for p in named if p.kind != p.KEYWORD_ONLY and p.default is p.empty))
