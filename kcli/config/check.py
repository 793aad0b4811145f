"""The static checks of `kcli validate` (kcli/api/validate.py): a resolved config checked without TensorFlow.

Checks the YAML and schema (kcli.config.models), data and Python files, and every Keras name and argument name
against Keras's own source (kcli.config.keras_names), with the rules kcli.model and kcli.training.callbacks apply
at build time (their one owner: kcli.config.keras_rules).
Argument values, shapes and the user's classes' behaviour need Keras itself: `kcli validate --build`
builds and compiles the model as `kcli train` would (that imports TensorFlow).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from kcli.config import keras_names, keras_rules
from kcli.config.models import Config, Spec
from kcli.config.paths import LATEST_RUN, is_file_ref
from kcli.config.source_rules import BUILTIN
from kcli.errors import ConfigError, DataError
from kcli.files import readable, remote


@dataclass
class UserCode:
    """Classes defined in the config's `imports` (read, not run)."""

    classes: dict[str, Path] = field(default_factory=dict)   # class name -> file
    opaque: bool = False       # a dotted module whose classes cannot be read: unknown names may live there


def check(cfg: Config) -> None:
    """Every check that needs no TensorFlow, on a resolved config; raises the first problem."""
    user = _user_code(cfg.imports)
    _data_files(cfg)
    if cfg.model.layers is not None:
        for i, spec in enumerate(cfg.model.layers):
            _layer(spec, keras_rules.layer_key(i, spec.name), user)
    elif cfg.model.class_ is not None:
        _user_class(cfg.model.class_, "model.class", user)
    for i, node in enumerate(cfg.model.graph or []):
        if node.layer is not None:
            _layer(keras_rules.node_spec(node), keras_rules.node_key(i, node.layer.name), user)
    for name, column in (cfg.data.columns or {}).items():   # a text column's layers after its Embedding
        for i, spec in enumerate(column.layers or []):
            _layer(spec, f"data.columns.{name}.layers[{i}]", user)
    _optimizer(cfg.compile.optimizer, user)
    losses = cfg.compile.loss if isinstance(cfg.compile.loss, dict) else {"": cfg.compile.loss}
    for out, spec in losses.items():
        _loss(spec, user, keras_rules.loss_key(spec, out))
    metrics = cfg.compile.metrics if isinstance(cfg.compile.metrics, dict) else {"": cfg.compile.metrics}
    for out, specs in metrics.items():
        for i, spec in enumerate(specs):
            _metric(spec, keras_rules.metric_key(i, out), user)
    for i, spec in enumerate(cfg.fit.callbacks):
        _callback(spec, keras_rules.callback_key(i, spec.name), user)


def _user_code(entries: list[str]) -> UserCode:
    user = UserCode()
    for i, entry in enumerate(entries):
        file = _source_file(entry, f"imports[{i}]")
        if file is None:
            user.opaque = True
        else:
            _compiles(file, f"imports[{i}]")
            user.classes.update({name: file for name in keras_names.classes_in_file(file)})
    return user


def _source_file(target: str, key: str) -> Path | None:
    """The .py file of an `imports` entry or a `file.py:Class` / `module:Class` target, found without running
    it; None for a module whose classes cannot be read that way (a package, a submodule)."""
    if is_file_ref(target):
        if not Path(target).is_file():
            raise ConfigError(f"Python file not found: {target}", key=key)
        return Path(target)
    if importlib.util.find_spec(target.split(".")[0]) is None:
        raise ConfigError(f"module {target!r} not found; a file must end in .py", key=key)
    if "." in target:
        return None
    origin = importlib.util.find_spec(target).origin   # type: ignore[union-attr]
    return Path(origin) if origin and origin.endswith(".py") and not origin.endswith("__init__.py") else None


def _compiles(file: Path, key: str) -> None:
    """A syntax error in an `imports` file, reported as `kcli train` reports it (Python compiles it the same way)."""
    try:
        compile(file.read_bytes(), str(file), "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise ConfigError(f"{file}:{exc.lineno} failed to import: SyntaxError: {exc}", key=key) from None
    except (OSError, ValueError) as exc:   # ValueError: NUL bytes in the source
        raise ConfigError(f"{file} failed to import: {type(exc).__name__}: {exc}", key=key) from None


def _data_files(cfg: Config) -> None:
    for key, holder in (("data", cfg.data), ("data.validation", cfg.data.validation), ("data.test", cfg.data.test)):
        if holder is None:
            continue
        source, name = holder.source or cfg.data.source, holder.name or cfg.data.name
        if source == "builtin" and name not in BUILTIN:
            raise DataError(f"unknown builtin dataset {name!r}; available: {', '.join(BUILTIN)}", key=f"{key}.name")
        if remote.is_url(holder.path):   # listed, not read: a missing bucket or object, denied, unreachable
            if source != "images":
                remote.files(holder.path, f"{key}.path")
            elif not remote.exists(holder.path, f"{key}.path"):   # a prefix of sub-prefixes (one per class)
                raise DataError(f"not found: {holder.path} (no such prefix in the bucket)", key=f"{key}.path")
            continue
        if source == "images" and holder.path and not Path(holder.path).is_dir():
            raise DataError(f"image folder not found: {holder.path}", key=f"{key}.path")
        if source != "images" and holder.path and not Path(holder.path).is_file():
            raise DataError(f"data file not found: {holder.path}", key=f"{key}.path")
    init = cfg.model.init_from
    if init is not None and not init.startswith(LATEST_RUN):
        init_source(Path(init))


INIT_KEY = "model.init_from"


def init_source(path: Path) -> Path:
    """The file to read weights from: `path`, or a run directory's model.keras; a FIFO, a device or a link loop
    (Keras would block on it or fail deep inside) is one line naming model.init_from."""
    why = readable.problem(path)
    if why == "is a folder, not a file":
        inside = path / "model.keras"
        if not os.path.lexists(inside):
            raise ConfigError(f"{path} is not a run directory with a model.keras", key=INIT_KEY)
        return readable.regular(inside, INIT_KEY, error=ConfigError)
    if why == "does not exist":
        raise ConfigError(f"not found: {path} (a run directory, a .keras or a .weights.h5 file)", key=INIT_KEY)
    return readable.regular(path, INIT_KEY, error=ConfigError)


def _lookup(name: str, package: str, user: UserCode, key: str, loose: bool = False) -> keras_names.Signature | None:
    """The signature of a Keras class (by name, or loosely `adam`) or a user class; None if unknown."""
    found = keras_rules.find(name, keras_names.classes(package), user.classes, loose)
    if found is None:
        return None
    place, name = found
    if place == "file":
        return _user_class(name, key, user)
    if place == "user":
        return keras_names.signature_in_file(user.classes[name], name)
    return keras_names.signature_of(*keras_names.public(package)[name])


def _user_class(ref: str, key: str, user: UserCode) -> keras_names.Signature:
    """`file.py:Class` / `module:Class` / a class name from `imports`."""
    if ":" not in ref:
        if ref in user.classes:
            return keras_names.signature_in_file(user.classes[ref], ref)
        if user.opaque:
            return keras_names.Signature(None, ())
        raise keras_rules.unknown_model_class(ref, key)
    target, cls_name = ref.rsplit(":", 1)
    file = _source_file(target, key)
    if file is None:
        return keras_names.Signature(None, ())
    found = keras_names.classes_in_file(file)
    if cls_name not in found:
        raise ConfigError(f"{target} defines no class {cls_name!r}; it defines: {', '.join(found) or 'none'}", key=key)
    return keras_names.signature_in_file(file, cls_name)


def _unknown(what: str, name: str, package: str, user: UserCode, key: str, extra: list[str] | None = None,
             hint: str = "") -> None:
    if user.opaque:
        return      # it may come from a module we cannot read without running it
    known = keras_names.classes(package) + list(user.classes) + (extra or [])
    raise keras_rules.unknown(what, name, known, key, hint)


def _layer(spec: Spec, key: str, user: UserCode) -> None:
    sig = _lookup(spec.name, "layers", user, key)
    args = spec.args
    if sig is None and spec.name in keras_names.applications():
        sig = keras_names.function_signature(*keras_names.applications()[spec.name])
        args, _ = keras_rules.application_args(args)
    if sig is None:
        _unknown("layer", spec.name, "layers", user, key, hint=keras_rules.LAYER_HINT)
        return
    sig.check(args, key)


def _optimizer(spec: Spec, user: UserCode) -> None:
    key = keras_rules.optimizer_key(spec)
    sig = _lookup(spec.name, "optimizers", user, key, loose=True)
    if sig is None:
        _unknown("optimizer", spec.name, "optimizers", user, key)
        return
    args = keras_rules.optimizer_args(spec.args, key)
    schedule = keras_rules.schedule_of(args, key)
    if schedule is not None:
        sched, sub = schedule
        found = _lookup(sched.name, "optimizers.schedules", user, sub)
        if found is None:
            _unknown("learning-rate schedule", sched.name, "optimizers.schedules", user, sub)
        else:
            found.check(sched.args, f"{sub}.{sched.name}")
    sig.check(args, key)


def _loss(spec: Spec, user: UserCode, key: str) -> None:
    sig = _lookup(spec.name, "losses", user, key, loose=True)
    if sig is not None:
        sig.check(spec.args, key)
    elif spec.args or not _named(spec.name, "losses"):
        functions = [n for n in keras_names.public("losses") if n.islower()]
        _unknown("loss", spec.name, "losses", user, key, extra=functions)


def _metric(spec: Spec, key: str, user: UserCode) -> None:
    if keras_rules.metric_is_class(spec, user.classes):
        sig = _lookup(spec.name, "metrics", user, key, loose=True)
        if sig is not None:
            sig.check(spec.args, f"{key}.{spec.name}")
            return
    elif spec.name in keras_rules.LOSS_DEPENDENT_METRICS or _named(spec.name, "metrics"):
        return
    _unknown("metric", spec.name, "metrics", user, key, extra=sorted(keras_rules.LOSS_DEPENDENT_METRICS))


def _named(name: str, package: str) -> bool:
    """A string name `keras.<package>.get()` accepts."""
    return name in keras_names.public(package) or name in keras_names.aliases(package)


def _callback(spec: Spec, key: str, user: UserCode) -> None:
    sig = _lookup(spec.name, "callbacks", user, key)
    if sig is None:
        _unknown("callback", spec.name, "callbacks", user, key)
        return
    keras_rules.check_callback(spec.name, key)
    sig.check(spec.args, key)
