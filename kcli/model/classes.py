"""Names in a config -> Keras classes, constructed with their arguments checked first.

A name resolves through Keras itself (`keras.layers`, `keras.optimizers`, ...), then through the user's imported
classes, in the order and with the messages kcli.config.keras_rules owns (`kcli validate` applies the same
rules to Keras's source); arguments are checked against the live signature kcli.config.keras_names reads. Keras
checks a class's own argument values; its complaint becomes one line naming the key.
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

from kcli.config import keras_names, keras_rules
from kcli.config.code import Registry
from kcli.errors import ConfigError, first_line


def find_class(name: str, module: ModuleType, base: type, registry: Registry, key: str,
               loose: bool = False) -> type | None:
    """Keras's class of that name first, then the user's; `loose` also matches `adam` or `mean_squared_error`."""
    found = keras_rules.find(name, class_names(module, base), registry.classes, loose)
    if found is None:
        return None
    place, name = found
    if place == "file":
        return registry.lookup(name, key)
    return registry.classes[name] if place == "user" else getattr(module, name)


def class_names(module: ModuleType, base: type) -> list[str]:
    """The names of the subclasses of `base` that `module` exports (keras.layers' layers, ...)."""
    return [n for n, o in vars(module).items() if inspect.isclass(o) and issubclass(o, base)]


def construct(cls: type, args: dict[str, Any], key: str) -> Any:
    """`cls(**args)`, with unknown/missing arguments and Keras's own errors reported against `key`."""
    check_args(cls, args, key)
    try:
        return cls(**args)
    except Exception as exc:  # constructors raise many types; the message is what matters
        raise ConfigError(first_line(exc), key=key) from None


def check_args(cls: type, args: dict[str, Any], key: str) -> None:
    """Name the first unknown or missing constructor argument, using the class's own signature."""
    keras_names.live_signature(cls).check(args, key)
