"""One `layers` entry or graph node -> a Keras layer: a class of keras.layers or of `imports`, or a
keras.applications model used as a layer (a backbone)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import keras

from kcli.config import keras_names, keras_rules
from kcli.config.code import Registry
from kcli.config.models import Spec
from kcli.errors import ConfigError, first_line
from kcli.model.classes import class_names, construct, find_class


def make_layer(spec: Spec, key: str, registry: Registry,
               input_shape: tuple[int | None, ...] | None = None) -> keras.layers.Layer:
    """The layer `spec` names, constructed; a keras.applications model needs the `input_shape` reaching it."""
    cls = find_class(spec.name, keras.layers, keras.layers.Layer, registry, key)
    if cls is None and input_shape is not None and spec.name in applications():
        return _application(spec, key, input_shape)
    if cls is None:
        known = class_names(keras.layers, keras.layers.Layer) + list(registry.classes)
        raise keras_rules.unknown("layer", spec.name, known, key, keras_rules.LAYER_HINT)
    if not issubclass(cls, keras.layers.Layer):
        raise ConfigError(f"{cls.__name__} is not a keras Layer", key=key)
    return construct(cls, spec.args, key)


def applications() -> dict[str, Any]:
    """The model functions of keras.applications (MobileNetV2, ResNet50, ...) by name."""
    return {n: f for n, f in vars(keras.applications).items() if n[:1].isupper() and callable(f)}


def float32_output() -> keras.layers.Layer:
    """Under a mixed policy the last layer computes in float16/bfloat16; losses want float32 (Keras's advice)."""
    return keras.layers.Activation("linear", dtype="float32", name="float32_output")


def _application(spec: Spec, key: str, input_shape: tuple[int | None, ...]) -> keras.Model:
    """A keras.applications model as a layer; `input_shape` defaults to what reaches it."""
    fn = applications()[spec.name]
    args, trainable = keras_rules.application_args(spec.args)
    args = {"input_shape": tuple(input_shape), **args}
    keras_names.live_function_signature(fn).check(args, key)
    try:
        backbone = fn(**args)
    except Exception as exc:  # Keras raises ValueError for sizes; get_file raises for downloads
        raise ConfigError(_application_problem(exc, args), key=key) from None
    backbone.trainable = trainable
    return backbone


def _application_problem(exc: BaseException, args: dict[str, Any]) -> str:
    """A failed download of pretrained weights says which file to place where; anything else, Keras's line."""
    text = " ".join(str(exc).split())
    found = re.search(r"https?://\S+/([^/\s:]+\.h5)", text)
    if found is None:
        return first_line(exc)
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    return (f"weights: {args.get('weights')} needs {found.group(1)}, which cannot be downloaded here; place it at "
            f"{home / 'models' / found.group(1)} (Keras's cache, KERAS_HOME), or use weights: null or a local "
            "file")
