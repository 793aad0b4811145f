"""config.model + config.compile -> a compiled keras.Model.

Names resolve through Keras itself (`keras.layers`, `keras.optimizers`, `keras.losses`, `keras.metrics`),
then through the user's imported classes. Keras checks a layer's own arguments; this module
translates its complaints into one line that names the config key.
"""

from __future__ import annotations

import collections
import contextlib
import inspect
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import keras
import numpy as np

from kcli.config import model_io as ports_mod
from kcli.config.code import Registry
from kcli.config.keras_names import LOSS_DEPENDENT_METRICS, Signature, loose_match, optimizer_args
from kcli.config.model_io import Ports
from kcli.config.models import GRAPH_INPUT, CompileConfig, Config, Spec
from kcli.config.suggest import did_you_mean
from kcli.data.splits import Splits
from kcli.errors import ConfigError, DataError, first_line
from kcli.model import table_inputs as tabular


def build(cfg: Config, registry: Registry) -> keras.Model:
    """A built (not yet compiled) model: a Sequential stack, a functional graph or the user's keras.Model
    subclass, its layers created under `compile.precision`."""
    precision = cfg.compile.precision
    if precision != "float32" and cfg.model.class_ is not None:
        raise ConfigError("a mixed precision needs `layers` or `graph` (kcli keeps their output float32); in "
                          "your own Model class, set the dtype policy yourself", key="compile.precision")
    with _dtype_policy(precision):
        if cfg.model.graph is not None:
            model = _build_graph(cfg, registry)
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


def _float32_output() -> keras.layers.Layer:
    """Under a mixed policy the last layer computes in float16/bfloat16; losses want float32 (Keras's advice)."""
    return keras.layers.Activation("linear", dtype="float32", name="float32_output")


def _build_sequential(cfg: Config, registry: Registry, input_shape: tuple[int | None, ...]) -> keras.Model:
    assert cfg.model.layers is not None
    # Construct every layer first, then add them: the same order of random draws as
    # `keras.Sequential([keras.Input(shape), Dense(...), ...])` written by hand.
    # (A keras.applications model is made when it is added: its input shape is what reaches it.)
    apps = _applications()
    layers = [_layer(spec, f"model.layers[{i}].{_short(spec.name)}", registry) if spec.name not in apps else None
              for i, spec in enumerate(cfg.model.layers)]
    model = keras.Sequential()
    model.add(keras.Input(shape=input_shape))
    for i, (spec, layer) in enumerate(zip(cfg.model.layers, layers)):
        before = model.output_shape if i else (None, *input_shape)
        if layer is None:
            layer = _layer(spec, f"model.layers[{i}].{spec.name}", registry, tuple(before[1:]))
        try:
            model.add(layer)
        except Exception as exc:  # Keras raises ValueError/TypeError/... for shape problems
            raise ConfigError(f"{first_line(exc)} (its input has shape {before})",
                              key=f"model.layers[{i}].{_short(spec.name)}") from None
    if cfg.compile.precision != "float32":
        model.add(_float32_output())
    return model


def _build_on_columns(cfg: Config, registry: Registry) -> keras.Model:
    """The `layers` stack on the encoded columns of a table (kcli/tabular.py), as a functional model: a
    hand-written script applies each layer in turn, `x = Dense(16)(x)`."""
    assert cfg.model.layers is not None and cfg.data.columns is not None
    inputs, x = tabular.inputs_and_features(cfg.data.columns, ports_mod.of(cfg.model, cfg.data))
    apps = _applications()
    layers = [_layer(spec, f"model.layers[{i}].{_short(spec.name)}", registry) if spec.name not in apps else None
              for i, spec in enumerate(cfg.model.layers)]
    for i, (spec, layer) in enumerate(zip(cfg.model.layers, layers)):
        key = f"model.layers[{i}].{_short(spec.name)}"
        before = tuple(x.shape)
        if layer is None:
            layer = _layer(spec, key, registry, before[1:])
        try:
            x = layer(x)
        except Exception as exc:  # Keras raises ValueError/TypeError/... for shape problems
            raise ConfigError(f"{first_line(exc)} (its input has shape {before})", key=key) from None
    if cfg.compile.precision != "float32":
        x = _float32_output()(x)
    return keras.Model(inputs, x, name="functional")


def _build_graph(cfg: Config, registry: Registry) -> keras.Model:
    """A functional model: each node's layer constructed and called in order, as a hand-written
    `x = Dense(16)(inputs)` script does (the same random draws). A layer without a `name` gets its node's.
    Named `inputs` make a dict of keras.Input; several outputs a list, in the order `output` names them."""
    assert cfg.model.graph is not None
    ports = ports_mod.of(cfg.model, cfg.data)
    if ports.tabular:   # the graph's `input` is the encoded columns
        assert cfg.data.columns is not None
        column_inputs, features = tabular.inputs_and_features(cfg.data.columns, ports)
        tensors: dict[str, Any] = {GRAPH_INPUT: features}
    else:
        tensors = {p.name: keras.Input(shape=p.shape, name=p.name, dtype=p.dtype) for p in ports.inputs}
    layers: dict[str, keras.layers.Layer] = {}
    outputs = set(ports.outputs)
    mixed = cfg.compile.precision != "float32"
    previous = GRAPH_INPUT if ports.tabular else ports.inputs[0].name
    for i, node in enumerate(cfg.model.graph):
        key = f"model.graph[{i}]"
        names = node.inputs or [previous]
        args = [tensors[n] for n in names]
        if node.layer is not None:
            # several outputs under a mixed policy: the output layers compute in float32 (names stay the outputs')
            extra = {"dtype": "float32"} if mixed and node.name in outputs and "dtype" not in node.layer.args else {}
            spec = Spec.of(node.layer.name, {"name": node.name, **extra, **node.layer.args})
            layer = _layer(spec, f"{key}.{_short(spec.name)}", registry, tuple(args[0].shape[1:]))
        else:
            layer = layers[node.share or ""]
        try:
            tensors[node.name] = layer(args[0] if len(args) == 1 else args)
        except Exception as exc:  # Keras raises ValueError/TypeError/... for shape problems
            shapes = ", ".join(f"{n} {tuple(tensors[n].shape)}" for n in names)
            raise ConfigError(f"{first_line(exc)} (its inputs: {shapes})", key=key) from None
        layers[node.name], previous = layer, node.name
    if ports.tabular:
        inputs: Any = column_inputs
    else:
        inputs = {p.name: tensors[p.name] for p in ports.inputs} if ports.named else tensors[GRAPH_INPUT]
    if ports.several_outputs:
        return keras.Model(inputs, [tensors[o] for o in ports.outputs], name="functional")
    output = cfg.model.output
    output = tensors[(output[0] if isinstance(output, list) else output) or previous]
    if mixed:
        output = _float32_output()(output)
    return keras.Model(inputs, output, name="functional")


def rebuild(cfg: Config, code: Registry) -> keras.Model:
    """The run's model built and compiled again from its saved config ("re-create the network, then
    load_weights"), with `file.py:Class` references resolved by class name among the classes of `code` (the
    run's code/); anything else goes through its lock."""
    cfg = cfg.model_copy(deep=True)
    cfg.imports = []
    local = lambda spec: Spec.of(_short(spec.name), spec.args)  # noqa: E731
    if cfg.model.layers is not None:
        cfg.model.layers = [local(s) for s in cfg.model.layers]
    for node in cfg.model.graph or []:
        node.layer = local(node.layer) if node.layer is not None else None
    if cfg.model.class_ is not None:
        cfg.model.class_ = _short(cfg.model.class_)
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


def _build_subclass(cfg: Config, registry: Registry, input_shape: tuple[int | None, ...]) -> keras.Model:
    assert cfg.model.class_ is not None
    cls = registry.lookup(cfg.model.class_, "model.class")
    if cls is None:
        raise ConfigError(f"unknown model class {cfg.model.class_!r}: name it as file.py:Class or module:Class, "
                          "or list its file under `imports`", key="model.class")
    if not issubclass(cls, keras.Model):
        raise ConfigError(f"{cls.__name__} is not a keras.Model subclass", key="model.class")
    model = construct(cls, cfg.model.args or {}, "model.args")
    try:
        model(keras.Input(shape=input_shape))  # builds every sub-layer's weights
    except Exception as exc:  # the user's call() may raise anything
        raise ConfigError(f"{cls.__name__} cannot be called on input_shape {list(input_shape)}: "
                          f"{first_line(exc)}", key="model.class") from None
    return model


def _short(name: str) -> str:
    """`/abs/my_layers.py:MyDense` -> `MyDense` for key paths."""
    return name.rsplit(":", 1)[-1]


def _layer(spec: Spec, key: str, registry: Registry,
           input_shape: tuple[int | None, ...] | None = None) -> keras.layers.Layer:
    cls = _find_class(spec.name, keras.layers, keras.layers.Layer, registry, key)
    if cls is None and input_shape is not None and spec.name in _applications():
        return _application(spec, key, input_shape)
    if cls is None:
        known = _classes(keras.layers, keras.layers.Layer) + list(registry.classes)
        raise ConfigError(f"unknown layer {spec.name!r}{did_you_mean(spec.name, known)}; "
                          "layers come from keras.layers or from `imports`", key=key)
    if not issubclass(cls, keras.layers.Layer):
        raise ConfigError(f"{cls.__name__} is not a keras Layer", key=key)
    return construct(cls, spec.args, key)


def _applications() -> dict[str, Any]:
    return {n: f for n, f in vars(keras.applications).items() if n[:1].isupper() and callable(f)}


def _application(spec: Spec, key: str, input_shape: tuple[int | None, ...]) -> keras.Model:
    """A keras.applications model as a layer; `input_shape` defaults to what reaches it."""
    fn = _applications()[spec.name]
    args = {"input_shape": tuple(input_shape), **spec.args}
    trainable = args.pop("trainable", True)   # as on any layer: false freezes the whole backbone
    params = inspect.signature(fn).parameters
    Signature({*params, "trainable"}, []).check({**args, "trainable": trainable}, key)
    try:
        backbone = fn(**args)
    except Exception as exc:  # Keras raises ValueError for sizes; get_file raises for downloads
        raise ConfigError(_application_problem(exc, args), key=key) from None
    backbone.trainable = bool(trainable)
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


def _find_class(name: str, module: ModuleType, base: type, registry: Registry, key: str,
                loose: bool = False) -> type | None:
    """Keras's class of that name first, then the user's; `loose` also matches `adam` or `mean_squared_error`."""
    if ":" in name:
        return registry.lookup(name, key)
    obj = getattr(module, name, None)
    if inspect.isclass(obj) and issubclass(obj, base):
        return obj
    if name in registry.classes:
        return registry.classes[name]
    match = loose_match(name, _classes(module, base)) if loose else None
    return getattr(module, match) if match else None


def _classes(module: ModuleType, base: type) -> list[str]:
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
    accepted, required = _signature(cls)
    Signature(accepted, required).check(args, key)


def _signature(cls: type) -> tuple[set[str] | None, list[str]]:
    """(accepted keyword names or None for 'anything', required names) along the __init__ chain."""
    accepted: set[str] = set()
    required: list[str] = []
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None or klass is object:
            continue
        try:
            params = inspect.signature(init).parameters
        except (TypeError, ValueError):
            return None, required
        named = {n: p for n, p in params.items()
                 if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        accepted |= set(named)
        if klass is cls:
            required = [n for n, p in named.items() if p.default is p.empty]
        if klass is keras.layers.Layer:
            accepted |= {"input_dim", "input_shape"}   # legacy names Layer still takes
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            return accepted, required
    return accepted, required


def compile_model(model: keras.Model, cc: CompileConfig, registry: Registry) -> None:
    """model.compile with the optimizer, loss and metrics the config names."""
    optimizer = _optimizer(cc.optimizer, registry)
    if cc.precision == "mixed_float16":
        # What compile() itself would do, but explicit, so that model.keras records it: Keras 3.15 reloads a
        # mixed_float16 Sequential with a float32 model policy, does not wrap, and drops the optimizer's state.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    loss = resolve_losses(cc, registry)
    metrics = _metrics(cc, registry)
    try:
        model.compile(optimizer=optimizer, loss=loss, loss_weights=cc.loss_weights, metrics=metrics,
                      steps_per_execution=cc.steps_per_execution, jit_compile=cc.jit_compile)
    except Exception as exc:  # Keras validates the combination here
        raise ConfigError(first_line(exc), key="compile") from None


def _optimizer(spec: Spec, registry: Registry) -> keras.optimizers.Optimizer:
    key = f"compile.optimizer.{spec.name}" if spec.args else "compile.optimizer"
    cls = _find_class(spec.name, keras.optimizers, keras.optimizers.Optimizer, registry, key, loose=True)
    if cls is None:
        known = _classes(keras.optimizers, keras.optimizers.Optimizer)
        raise ConfigError(f"unknown optimizer {spec.name!r}{did_you_mean(spec.name, known)}", key=key)
    args = optimizer_args(spec.args, key)
    if isinstance(args.get("learning_rate"), dict):
        args["learning_rate"] = _schedule(args["learning_rate"], f"{key}.learning_rate", registry)
    return construct(cls, args, key)


def _schedule(raw: dict[str, Any], key: str, registry: Registry) -> Any:
    spec = Spec.model_validate(raw)
    base = keras.optimizers.schedules.LearningRateSchedule
    cls = _find_class(spec.name, keras.optimizers.schedules, base, registry, key)
    if cls is None:
        known = _classes(keras.optimizers.schedules, base)
        raise ConfigError(f"unknown learning-rate schedule {spec.name!r}{did_you_mean(spec.name, known)}", key=key)
    return construct(cls, spec.args, f"{key}.{spec.name}")


def resolve_losses(cc: CompileConfig, registry: Registry) -> Any:
    """The loss, or a dict of losses by output name (several outputs)."""
    if isinstance(cc.loss, dict):
        return {out: resolve_loss(spec, registry, f"compile.loss.{out}") for out, spec in cc.loss.items()}
    return resolve_loss(cc.loss, registry)


def _metrics(cc: CompileConfig, registry: Registry) -> Any:
    """The metrics list, or a dict of lists by output name (several outputs)."""
    if isinstance(cc.metrics, dict):
        return {out: [_metric(spec, f"compile.metrics.{out}[{i}]", registry) for i, spec in enumerate(specs)]
                for out, specs in cc.metrics.items()}
    return [_metric(spec, f"compile.metrics[{i}]", registry) for i, spec in enumerate(cc.metrics)]


def resolve_loss(spec: Spec, registry: Registry, base: str = "compile.loss") -> Any:
    """A loss object or function; never an alias string (Keras 3.15 cannot reload `'mse'` from .h5)."""
    key = f"{base}.{spec.name}" if spec.args else base
    cls = _find_class(spec.name, keras.losses, keras.losses.Loss, registry, key, loose=True)
    if cls is not None:
        return construct(cls, spec.args, key)
    if not spec.args:
        try:
            return keras.losses.get(spec.name)
        except ValueError:
            pass
    known = _classes(keras.losses, keras.losses.Loss) + [n for n, o in vars(keras.losses).items()
                                                         if inspect.isfunction(o) and n.islower()]
    raise ConfigError(f"unknown loss {spec.name!r}{did_you_mean(spec.name, known)}", key=key)


def metric_names(cc: CompileConfig, registry: Registry) -> list[str]:
    """The names the compiled metrics log under (a string metric keeps its string, an object its .name;
    several outputs: `<output>_<metric>`, and each output's `<output>_loss`)."""
    metrics = _metrics(cc, registry)
    if isinstance(metrics, list):
        return [m if isinstance(m, str) else getattr(m, "name", "") for m in metrics]
    names = [f"{out}_loss" for out in (cc.loss if isinstance(cc.loss, dict) else {})]
    for out, items in metrics.items():
        names += [f"{out}_{m if isinstance(m, str) else getattr(m, 'name', '')}" for m in items]
    return names


def _metric(spec: Spec, key: str, registry: Registry) -> Any:
    if spec.args or ":" in spec.name or spec.name in registry.classes:
        cls = _find_class(spec.name, keras.metrics, keras.metrics.Metric, registry, key, loose=True)
        if cls is not None:
            return construct(cls, spec.args, f"{key}.{spec.name}")
    elif spec.name in LOSS_DEPENDENT_METRICS:
        return spec.name
    else:
        try:
            keras.metrics.get(spec.name)
            return spec.name  # exactly what a hand-written compile() would pass
        except ValueError:
            pass
    known = _classes(keras.metrics, keras.metrics.Metric) + sorted(LOSS_DEPENDENT_METRICS)
    raise ConfigError(f"unknown metric {spec.name!r}{did_you_mean(spec.name, known)}", key=key)


def evaluate(model: keras.Model, x: Any, y: Any, batch_size: int | None,
             sample_weight: np.ndarray | None = None) -> dict[str, float]:
    """model.evaluate as a {metric: value} dict (weighted by data.sample_weight's column when the run has one)."""
    result = model.evaluate(keras_inputs(x), y, batch_size=batch_size, verbose=0, return_dict=True,
                            sample_weight=sample_weight)
    return {k: float(v) for k, v in result.items()}


def keras_inputs(x: Any) -> Any:
    """Features as model.predict / evaluate take them: text columns (numpy object arrays, which Keras's array
    input refuses) as string tensors."""
    if isinstance(x, dict) and any(v.dtype == object for v in x.values()):
        import tensorflow as tf

        return {k: tf.constant(v, tf.string) if v.dtype == object else v for k, v in x.items()}
    return x


def output_shape(model: keras.Model, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
    """The model's output shape including the batch dimension (a one-output model)."""
    if isinstance(model, keras.Sequential):
        return tuple(model.output_shape)
    return tuple(model.compute_output_spec(keras.KerasTensor((None, *input_shape))).shape)


def output_shapes(model: keras.Model, ports: Ports) -> list[tuple[int | None, ...]]:
    """Each output's shape including the batch dimension, in the model's output order."""
    if ports.named or ports.several_outputs:
        return [tuple(t.shape) for t in model.outputs]
    return [output_shape(model, ports.single_shape)]


def check_labels(splits: Splits, model: keras.Model, loss: Any, ports: Ports) -> None:
    """Labels must fit the loss and the model's output(s), checked before any training step."""
    outs = output_shapes(model, ports)
    names = list(ports.outputs) or [None]
    losses = loss if isinstance(loss, dict) else {None: loss}
    for split, arrays in (("data", splits.train), ("data.validation", splits.validation), ("data.test", splits.test)):
        ids = getattr(arrays, "class_ids", None)   # a streamed table: the range of its class ids, and their rows
        if arrays is None or not (hasattr(arrays, "y") or ids is not None):   # a Stream: Keras checks its batches
            continue
        for name, out in zip(names, outs):
            if ids is not None:
                y: Any = np.array([ids.low, ids.high]) if ids.low is not None else np.zeros(0, np.int64)
            else:
                y = arrays.y[name] if isinstance(arrays.y, dict) and name is not None else arrays.y
            fn = losses.get(name)
            if fn is None or not len(y):
                continue
            loss_name = (getattr(fn, "name", None) or getattr(fn, "__name__", "") or "").replace("_", "").lower()
            problem = _label_problem(np.asarray(y), out, loss_name)
            if problem:
                what = f"the {split} labels" + (f" of output {name!r}" if name else "")
                shown = type(fn).__name__ if not inspect.isfunction(fn) else fn.__name__
                where = ids.outside(out[-1]) if ids is not None and out[-1] is not None else None
                raise DataError(f"{what} (shape {list(np.shape(y)[1:])} per example) do not fit loss {shown} with "
                                f"model output {out}: {problem}" + (f" ({where})" if where else ""),
                                key=f"compile.loss.{name}" if name else "compile.loss")


def _label_problem(y: np.ndarray, out: tuple[int | None, ...], loss_name: str) -> str | None:
    per_example, out_rest = tuple(y.shape[1:]), tuple(out[1:])
    if "sparsecategorical" in loss_name:
        if per_example not in ((), (1,)) or not np.all(np.mod(y, 1) == 0):
            return "sparse losses take one integer class id per example (set data.one_hot: false)"
        if out_rest and out_rest[-1] is not None and (y.min() < 0 or y.max() >= out_rest[-1]):
            return f"class ids must lie in 0..{out_rest[-1] - 1}, found {int(y.min())}..{int(y.max())}"
        return None
    if per_example == out_rest or (per_example == () and out_rest == (1,)):
        return None
    if all(o is None or p == o for p, o in zip(per_example, out_rest)) and len(per_example) == len(out_rest):
        return None
    if per_example == () and out_rest and math.prod(d or 1 for d in out_rest) > 1:
        return ("integer labels need data.one_hot: true, or a sparse loss such as "
                "SparseCategoricalCrossentropy")
    return "the label shape must equal the output shape"
