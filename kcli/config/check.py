"""`kcli validate`: check a config without importing TensorFlow.

Checks the YAML and schema (config.py), data and Python files, and every Keras name and argument name
against Keras's own source (keras_api.py), with the rules model.py and callbacks.py apply at build time.
Argument values, shapes and the user's classes' behaviour need Keras itself: `kcli validate --build`
builds and compiles the model as `kcli train` would (that imports TensorFlow).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from kcli.config import keras_names as keras_api
from kcli.config import models as config_mod
from kcli.config import resolve as resolve_mod
from kcli.config.compose import is_file_ref
from kcli.config.models import Config, Spec, did_you_mean
from kcli.config.resolve import LATEST_RUN
from kcli.errors import ConfigError, DataError, KcliError
from kcli.files import readable
from kcli.output.display import Display


@dataclass
class UserCode:
    """Classes defined in the config's `imports` (read, not run)."""

    classes: dict[str, Path] = field(default_factory=dict)   # class name -> file
    opaque: bool = False       # a dotted module whose classes cannot be read: unknown names may live there


def validate(path: Path, display: Display, overrides: list[str] | None = None, show: bool = False,
             build: bool = False, origin: bool = False) -> None:
    """Check a config; print it resolved (`show`) or a one-line verdict."""
    loaded = config_mod.load(path, overrides)
    try:
        cfg = resolve_mod.resolve(loaded)
        check(cfg)
    except KcliError as exc:
        raise loaded.locate(exc) from None
    verdict = "valid (names and arguments checked against Keras's source; --build also builds the model)"
    if build:
        from kcli.model import summary as summary_mod
        from kcli.training.prepare import prepare

        prepared = prepare(path, overrides, with_data=True)   # data read and checked against the model too
        verdict = f"valid ({summary_mod.describe(prepared.model).total:,} parameters; data checked against the model)"
    if show and origin:
        display.origins(config_mod.origins(loaded, cfg))
    elif show:
        display.yaml(config_mod.dump(cfg))
    else:
        display.note(f"{path}: {verdict}")


def check(cfg: Config) -> None:
    """Every check that needs no TensorFlow, on a resolved config; raises the first problem."""
    user = _user_code(cfg.imports)
    _data_files(cfg)
    if cfg.model.layers is not None:
        for i, spec in enumerate(cfg.model.layers):
            _class_spec(spec, "layers", f"model.layers[{i}].{spec.name.rsplit(':', 1)[-1]}", user, "layer")
    elif cfg.model.class_ is not None:
        _user_class(cfg.model.class_, "model.class", user)
    for i, node in enumerate(cfg.model.graph or []):
        if node.layer is not None:
            spec = Spec.of(node.layer.name, {"name": node.name, **node.layer.args})
            _class_spec(spec, "layers", f"model.graph[{i}].{spec.name.rsplit(':', 1)[-1]}", user, "layer")
    _optimizer(cfg.compile.optimizer, user)
    losses = cfg.compile.loss if isinstance(cfg.compile.loss, dict) else {"": cfg.compile.loss}
    for out, spec in losses.items():
        _loss(spec, user, f"compile.loss.{out}" if out else "compile.loss")
    metrics = cfg.compile.metrics if isinstance(cfg.compile.metrics, dict) else {"": cfg.compile.metrics}
    for out, specs in metrics.items():
        for i, spec in enumerate(specs):
            _metric(spec, f"compile.metrics.{out}[{i}]" if out else f"compile.metrics[{i}]", user)
    for i, spec in enumerate(cfg.fit.callbacks):
        _callback(spec, f"fit.callbacks[{i}].{spec.name.rsplit(':', 1)[-1]}", user)


def _user_code(entries: list[str]) -> UserCode:
    user = UserCode()
    for i, entry in enumerate(entries):
        file = _source_file(entry, f"imports[{i}]")
        if file is None:
            user.opaque = True
        else:
            _compiles(file, f"imports[{i}]")
            user.classes.update({name: file for name in keras_api.classes_in_file(file)})
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
    from kcli.data.bundled import BUILTIN

    for key, holder in (("data", cfg.data), ("data.validation", cfg.data.validation), ("data.test", cfg.data.test)):
        if holder is None:
            continue
        source, name = holder.source or cfg.data.source, holder.name or cfg.data.name
        if source == "builtin" and name not in BUILTIN:
            raise DataError(f"unknown builtin dataset {name!r}; available: {', '.join(BUILTIN)}", key=f"{key}.name")
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


def _lookup(name: str, package: str, user: UserCode, key: str, loose: bool = False) -> keras_api.Signature | None:
    """The signature of a Keras class (by name, or loosely `adam`) or a user class; None if unknown."""
    if ":" in name:
        return _user_class(name, key, user)
    ref = keras_api.public(package).get(name)
    if ref is not None and name[:1].isupper():
        return keras_api.signature_of(*ref)
    if name in user.classes:
        return keras_api.signature_in_file(user.classes[name], name)
    match = keras_api.loose_match(name, keras_api.classes(package)) if loose else None
    return keras_api.signature_of(*keras_api.public(package)[match]) if match else None


def _user_class(ref: str, key: str, user: UserCode) -> keras_api.Signature:
    """`file.py:Class` / `module:Class` / a class name from `imports`."""
    if ":" not in ref:
        if ref in user.classes:
            return keras_api.signature_in_file(user.classes[ref], ref)
        if user.opaque:
            return keras_api.Signature(None, ())
        raise ConfigError(f"unknown model class {ref!r}: name it as file.py:Class or module:Class, "
                          "or list its file under `imports`", key=key)
    target, cls_name = ref.rsplit(":", 1)
    file = _source_file(target, key)
    if file is None:
        return keras_api.Signature(None, ())
    found = keras_api.classes_in_file(file)
    if cls_name not in found:
        raise ConfigError(f"{target} defines no class {cls_name!r}; it defines: {', '.join(found) or 'none'}", key=key)
    return keras_api.signature_in_file(file, cls_name)


def _unknown(what: str, name: str, package: str, user: UserCode, key: str, extra: list[str] | None = None,
             hint: str = "") -> None:
    if user.opaque:
        return      # it may come from a module we cannot read without running it
    known = keras_api.classes(package) + list(user.classes) + (extra or [])
    raise ConfigError(f"unknown {what} {name!r}{did_you_mean(name, known)}{hint}", key=key)


def _class_spec(spec: Spec, package: str, key: str, user: UserCode, what: str) -> None:
    sig = _lookup(spec.name, package, user, key)
    if sig is None and package == "layers" and spec.name in keras_api.applications():
        sig = keras_api.function_signature(*keras_api.applications()[spec.name])
        spec = Spec.of(spec.name, {k: v for k, v in spec.args.items() if k != "trainable"})   # kcli's, not Keras's
    if sig is None:
        _unknown(what, spec.name, package, user, key, hint="; layers come from keras.layers or from `imports`")
        return
    sig.check(spec.args, key)


def _optimizer(spec: Spec, user: UserCode) -> None:
    key = f"compile.optimizer.{spec.name}" if spec.args else "compile.optimizer"
    sig = _lookup(spec.name, "optimizers", user, key, loose=True)
    if sig is None:
        _unknown("optimizer", spec.name, "optimizers", user, key)
        return
    args = keras_api.optimizer_args(spec.args, key)
    schedule = args.get("learning_rate")
    if isinstance(schedule, dict):
        sched = Spec.model_validate(schedule)
        sub = f"{key}.learning_rate"
        found = _lookup(sched.name, "optimizers.schedules", user, sub)
        if found is None:
            _unknown("learning-rate schedule", sched.name, "optimizers.schedules", user, sub)
        else:
            found.check(sched.args, f"{sub}.{sched.name}")
    sig.check(args, key)


def _loss(spec: Spec, user: UserCode, base: str) -> None:
    key = f"{base}.{spec.name}" if spec.args else base
    sig = _lookup(spec.name, "losses", user, key, loose=True)
    if sig is not None:
        sig.check(spec.args, key)
    elif spec.args or not _named(spec.name, "losses"):
        functions = [n for n in keras_api.public("losses") if n.islower()]
        _unknown("loss", spec.name, "losses", user, key, extra=functions)


def _metric(spec: Spec, key: str, user: UserCode) -> None:
    if spec.args or ":" in spec.name or spec.name in user.classes:
        sig = _lookup(spec.name, "metrics", user, key, loose=True)
        if sig is not None:
            sig.check(spec.args, f"{key}.{spec.name}")
            return
    elif spec.name in keras_api.LOSS_DEPENDENT_METRICS or _named(spec.name, "metrics"):
        return
    _unknown("metric", spec.name, "metrics", user, key, extra=sorted(keras_api.LOSS_DEPENDENT_METRICS))


def _named(name: str, package: str) -> bool:
    """A string name `keras.<package>.get()` accepts."""
    return name in keras_api.public(package) or name in keras_api.aliases(package)


def _callback(spec: Spec, key: str, user: UserCode) -> None:
    sig = _lookup(spec.name, "callbacks", user, key)
    if sig is None:
        _unknown("callback", spec.name, "callbacks", user, key)
        return
    keras_api.check_callback(spec.name, key)
    sig.check(spec.args, key)
