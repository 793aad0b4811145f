"""config.model -> a built keras.Model (compiled by kcli.model.compile): a Sequential stack of `layers`, the same
stack on a table's encoded columns, a functional `graph` (kcli.model.graph) or the user's keras.Model subclass,
and `rebuild`, the same from a finished run's saved config.

Names resolve through Keras itself, then through the user's imported classes (kcli.model.classes). Keras checks a
layer's own arguments and shapes; this package translates its complaints into one line that names the config key.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import keras

from kcli.config import keras_rules
from kcli.config import model_io as ports_mod
from kcli.config.code import Registry
from kcli.config.models import Config, Spec
from kcli.config.suggest import did_you_mean
from kcli.errors import ConfigError, first_line
from kcli.model import table_inputs as tabular
from kcli.model.classes import construct
from kcli.model.compile import compile_model
from kcli.model.graph import build_graph
from kcli.model.layers import applications, float32_output, make_layer


def build(cfg: Config, registry: Registry) -> keras.Model:
    """A built (not yet compiled) model: a Sequential stack, a functional graph or the user's keras.Model
    subclass, its layers created under `compile.precision`."""
    precision = cfg.compile.precision
    if precision != "float32" and cfg.model.class_ is not None:
        raise ConfigError("a mixed precision needs `layers` or `graph` (kcli keeps their output float32); in "
                          "your own Model class, set the dtype policy yourself", key="compile.precision")
    with _dtype_policy(precision):
        if cfg.model.graph is not None:
            model = build_graph(cfg, registry)
        elif cfg.tabular:
            model = _build_on_columns(cfg, registry)
        elif cfg.model.layers is None:
            assert cfg.model.input_shape is not None
            model = _build_subclass(cfg, registry, tuple(cfg.model.input_shape))
        else:
            assert cfg.model.input_shape is not None
            model = _build_sequential(cfg, registry, tuple(cfg.model.input_shape))
    if cfg.model.freeze_up_to is not None:
        freeze_up_to(model, cfg.model.freeze_up_to)
    if model.weights and not model.trainable_weights:
        raise ConfigError("every layer is frozen: nothing is left to train (unfreeze a layer, or move "
                          "freeze_up_to to an earlier layer)",
                          key="model.freeze_up_to" if cfg.model.freeze_up_to else "model")
    return model


def freeze_up_to(model: keras.Model, name: str) -> None:
    """`trainable = False` for every layer before `name` and `name` itself, in the model's layer order; a name
    inside a nested model (a keras.applications backbone) freezes the layers before the backbone and the
    backbone's own layers up to it."""
    for layer in model.layers:
        inner = getattr(layer, "layers", None) if isinstance(layer, keras.Model) else None
        if inner and layer.name != name and any(sub.name == name for sub in inner):
            for sub in inner:
                sub.trainable = False
                if sub.name == name:
                    return
        layer.trainable = False
        if layer.name == name:
            return
    known = [layer.name for layer in model.layers]
    nested = [sub.name for layer in model.layers if isinstance(layer, keras.Model) for sub in layer.layers]
    raise ConfigError(f"no layer {name!r}{did_you_mean(name, known + nested)}; layers: {', '.join(known)}",
                      key="model.freeze_up_to")


@contextlib.contextmanager
def _dtype_policy(precision: str) -> Iterator[None]:
    """Keras's global dtype policy while layers are created (each layer keeps its own), then back."""
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def _build_sequential(cfg: Config, registry: Registry, input_shape: tuple[int | None, ...]) -> keras.Model:
    """The `layers` stack as a keras.Sequential, as `keras.Sequential([keras.Input(shape), Dense(...), ...])`."""
    model = keras.Sequential()
    model.add(keras.Input(shape=input_shape))
    _stack(cfg, registry, lambda: model.output_shape if model.layers else (None, *input_shape), model.add)
    return model


def _build_on_columns(cfg: Config, registry: Registry) -> keras.Model:
    """The `layers` stack on the encoded columns of a table (kcli.model.table_inputs), as a functional model: a
    hand-written script applies each layer in turn, `x = Dense(16)(x)`."""
    assert cfg.data.columns is not None
    inputs, x = tabular.inputs_and_features(cfg.data.columns, ports_mod.of(cfg.model, cfg.data), registry)

    def call(layer: keras.layers.Layer) -> None:
        nonlocal x
        x = layer(x)

    _stack(cfg, registry, lambda: tuple(x.shape), call)
    return keras.Model(inputs, x, name="functional")


def _stack(cfg: Config, registry: Registry, shape: Callable[[], Any],
           add: Callable[[keras.layers.Layer], Any]) -> None:
    """Each of `layers` added in turn (`add`), then a float32 output under a mixed precision; `shape()` is what
    reaches the next layer, batch dimension included."""
    specs = cfg.model.layers
    assert specs is not None
    # Construct every layer first, then add them: the same order of random draws as a hand-written script.
    # (A keras.applications model is made when it is added: its input shape is what reaches it.)
    keys = [keras_rules.layer_key(i, spec.name) for i, spec in enumerate(specs)]
    apps = applications()
    made = [None if spec.name in apps else make_layer(spec, key, registry) for spec, key in zip(specs, keys)]
    for spec, key, layer in zip(specs, keys, made):
        before = shape()
        if layer is None:
            layer = make_layer(spec, key, registry, tuple(before[1:]))
        try:
            add(layer)
        except Exception as exc:  # Keras raises ValueError/TypeError/... for shape problems
            raise ConfigError(f"{first_line(exc)} (its input has shape {before})", key=key) from None
    if cfg.compile.precision != "float32":
        add(float32_output())


def _build_subclass(cfg: Config, registry: Registry, input_shape: tuple[int | None, ...]) -> keras.Model:
    """The user's keras.Model subclass, constructed with `model.args` and called once on `input_shape`."""
    assert cfg.model.class_ is not None
    cls = registry.lookup(cfg.model.class_, "model.class")
    if cls is None:
        raise keras_rules.unknown_model_class(cfg.model.class_, "model.class")
    if not issubclass(cls, keras.Model):
        raise ConfigError(f"{cls.__name__} is not a keras.Model subclass", key="model.class")
    model = construct(cls, cfg.model.args or {}, "model.args")
    try:
        model(keras.Input(shape=input_shape))  # builds every sub-layer's weights
    except Exception as exc:  # the user's call() may raise anything
        raise ConfigError(f"{cls.__name__} cannot be called on input_shape {list(input_shape)}: "
                          f"{first_line(exc)}", key="model.class") from None
    return model


def rebuild(cfg: Config, code: Registry) -> keras.Model:
    """The run's model built and compiled again from its saved config ("re-create the network, then
    load_weights"), with `file.py:Class` references resolved by class name among the classes of `code` (the
    run's code/); anything else goes through its lock."""
    cfg = cfg.model_copy(deep=True)
    cfg.imports = []
    local = lambda spec: Spec.of(keras_rules.short_name(spec.name), spec.args)  # noqa: E731
    if cfg.model.layers is not None:
        cfg.model.layers = [local(s) for s in cfg.model.layers]
    for node in cfg.model.graph or []:
        node.layer = local(node.layer) if node.layer is not None else None
    if cfg.model.class_ is not None:
        cfg.model.class_ = keras_rules.short_name(cfg.model.class_)
    cc = cfg.compile
    cc.optimizer = local(cc.optimizer)
    cc.loss = {k: local(v) for k, v in cc.loss.items()} if isinstance(cc.loss, dict) else local(cc.loss)
    cc.metrics = ({k: [local(m) for m in v] for k, v in cc.metrics.items()} if isinstance(cc.metrics, dict)
                  else [local(m) for m in cc.metrics])
    registry = Registry(classes=dict(code.classes), lock=code.lock)
    with _fresh_names():
        model = build(cfg, registry)
    compile_model(model, cfg.compile, registry)
    model.optimizer.build(model.trainable_variables)   # so load_weights restores the optimizer's state too
    return model


@contextlib.contextmanager
def _fresh_names() -> Iterator[None]:
    """Layers named as in a new process (dense, dense_1, ...) while the trained model lives on in this one, so
    that names the config refers to (freeze_up_to) mean the same layers. Keras keeps the counters in its global
    state (what clear_session resets); without that private API the names simply continue."""
    try:
        from keras.src.backend.common import global_state
    except ImportError:
        yield
        return
    saved = global_state.get_global_attribute("object_name_uids")
    global_state.set_global_attribute("object_name_uids", collections.defaultdict(int))
    try:
        yield
    finally:
        global_state.set_global_attribute("object_name_uids", saved)
