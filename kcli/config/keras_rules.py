"""The rules for Keras names and arguments in a config, one owner each, applied the same way by `kcli validate`
(kcli.config.check, against Keras's source: no TensorFlow) and when the model is built (kcli.model,
kcli.training.callbacks: live Keras): where a name is looked up, which key path a complaint names, which arguments
are kcli's own (`lr`, an application's `trainable`), and the lines that say so. Nothing here imports Keras.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Collection
from typing import Any

from kcli.config.models import GraphNode, Spec
from kcli.config.suggest import did_you_mean
from kcli.errors import ConfigError

# Bare metric names that compile() resolves by looking at the loss; keras.metrics.get() rejects them.
LOSS_DEPENDENT_METRICS = frozenset({"accuracy", "acc", "crossentropy", "ce"})
# Callbacks that need a package TensorFlow does not install, with the extra that brings it.
_CALLBACK_NEEDS: dict[str, tuple[str, str]] = {"TensorBoard": ("tensorboard", "tensorboard")}
LAYER_HINT = "; layers come from keras.layers or from `imports`"


def short_name(name: str) -> str:
    """`/abs/my_layers.py:MyDense` -> `MyDense`, the class name a key path shows."""
    return name.rsplit(":", 1)[-1]


def layer_key(i: int, name: str) -> str:
    """The key path of the i-th entry of `model.layers`."""
    return f"model.layers[{i}].{short_name(name)}"


def node_key(i: int, name: str) -> str:
    """The key path of the layer of the i-th node of `model.graph`."""
    return f"model.graph[{i}].{short_name(name)}"


def callback_key(i: int, name: str) -> str:
    """The key path of the i-th entry of `fit.callbacks`."""
    return f"fit.callbacks[{i}].{short_name(name)}"


def node_spec(node: GraphNode, extra: dict[str, Any] | None = None) -> Spec:
    """A graph node's layer, named after the node unless its arguments name it (`extra` comes before them)."""
    assert node.layer is not None
    return Spec.of(node.layer.name, {"name": node.name, **(extra or {}), **node.layer.args})


def optimizer_key(spec: Spec) -> str:
    """`compile.optimizer`, or `compile.optimizer.<Name>` when the optimizer has arguments."""
    return f"compile.optimizer.{spec.name}" if spec.args else "compile.optimizer"


def loss_key(spec: Spec, output: str | None = None) -> str:
    """`compile.loss[.<output>]`, then `.<Name>` when the loss has arguments."""
    base = f"compile.loss.{output}" if output else "compile.loss"
    return f"{base}.{spec.name}" if spec.args else base


def metric_key(i: int, output: str | None = None) -> str:
    """The key path of the i-th metric (of one output, with several)."""
    return f"compile.metrics.{output}[{i}]" if output else f"compile.metrics[{i}]"


def schedule_of(args: dict[str, Any], key: str) -> tuple[Spec, str] | None:
    """An optimizer's `learning_rate: {Schedule: {...}}` as (its Spec, its key path), or None for a number."""
    value = args.get("learning_rate")
    return (Spec.model_validate(value), f"{key}.learning_rate") if isinstance(value, dict) else None


def find(name: str, keras_classes: Collection[str], user_classes: Collection[str],
         loose: bool = False) -> tuple[str, str] | None:
    """Where a class the config names comes from, in kcli's order: ("file", name) for `file.py:Class` /
    `module:Class`, ("keras", name) for Keras's class, ("user", name) for a class of `imports`, then with
    `loose` ("keras", match) for `adam` or `mean_squared_error`; None if nowhere."""
    if ":" in name:
        return "file", name
    if name in keras_classes:
        return "keras", name
    if name in user_classes:
        return "user", name
    match = loose_match(name, list(keras_classes)) if loose else None
    return ("keras", match) if match else None


def metric_is_class(spec: Spec, user_classes: Collection[str]) -> bool:
    """A metric with arguments, a file reference or a class of `imports` is a class kcli constructs; any other
    is a string that compile() resolves (as a hand-written script passes it)."""
    return bool(spec.args) or ":" in spec.name or spec.name in user_classes


def application_args(args: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A keras.applications model's arguments for Keras, and kcli's own `trainable` (false freezes it whole)."""
    rest = dict(args)
    return rest, bool(rest.pop("trainable", True))


def unknown(what: str, name: str, known: list[str], key: str, hint: str = "") -> ConfigError:
    """The one line for a name Keras and `imports` do not have: `unknown layer 'Dence' (did you mean ...)`."""
    return ConfigError(f"unknown {what} {name!r}{did_you_mean(name, known)}{hint}", key=key)


def unknown_model_class(ref: str, key: str) -> ConfigError:
    """`model.class` names no class kcli can find."""
    return ConfigError(f"unknown model class {ref!r}: name it as file.py:Class or module:Class, "
                       "or list its file under `imports`", key=key)


def loose_match(name: str, candidates: list[str]) -> str | None:
    """The one candidate that equals `name` ignoring case and underscores (`adam` -> `Adam`), if exactly one."""
    wanted = name.replace("_", "").lower()
    matches = [c for c in candidates if c.lower() == wanted]
    return matches[0] if len(matches) == 1 else None


def optimizer_args(args: dict[str, Any], key: str) -> dict[str, Any]:
    """The optimizer's arguments with Keras 2's `lr` (removed in Keras 3) renamed to `learning_rate`."""
    args = dict(args)
    if "lr" in args:
        if "learning_rate" in args:
            raise ConfigError("give `learning_rate` or its old alias `lr`, not both", key=key)
        args["learning_rate"] = args.pop("lr")
    return args


def check_callback(name: str, key: str) -> None:
    """Refuse a Keras callback kcli cannot run: one whose package is missing, or BackupAndRestore."""
    if name in _CALLBACK_NEEDS and importlib.util.find_spec(_CALLBACK_NEEDS[name][0]) is None:
        module, extra = _CALLBACK_NEEDS[name]
        raise ConfigError(f"{name} needs the {module} package: pip install {extra} (or the extra: "
                          f"pip install 'kcli-keras[{extra}]')", key=key)
    if name == "BackupAndRestore":
        raise ConfigError("kcli checkpoints every epoch itself; continue a run with `kcli train --resume RUN` "
                          "instead of BackupAndRestore", key=key)
