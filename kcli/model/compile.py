"""config.compile -> `model.compile(...)`: the optimizer (and its learning-rate schedule), the loss(es) and the
metrics, each named as Keras names them, or by a class of `imports`."""

from __future__ import annotations

import inspect
from typing import Any

import keras

from kcli.config import keras_rules
from kcli.config.code import Registry
from kcli.config.keras_rules import LOSS_DEPENDENT_METRICS
from kcli.config.models import CompileConfig, Spec
from kcli.errors import ConfigError, first_line
from kcli.model.classes import class_names, construct, find_class


def compile_model(model: keras.Model, cc: CompileConfig, registry: Registry) -> None:
    """model.compile with the optimizer, loss and metrics the config names."""
    optimizer = _optimizer(cc.optimizer, registry)
    if cc.precision == "mixed_float16":
        # What compile() itself would do, but explicit, so that model.keras records it: Keras 3.15 reloads a
        # mixed_float16 Sequential with a float32 model policy, does not wrap, and drops the optimizer's state.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    loss = _losses(cc, registry)
    metrics = _metrics(cc, registry)
    try:
        model.compile(optimizer=optimizer, loss=loss, loss_weights=cc.loss_weights, metrics=metrics,
                      steps_per_execution=cc.steps_per_execution, jit_compile=cc.jit_compile)
    except Exception as exc:  # Keras validates the combination here
        raise ConfigError(first_line(exc), key="compile") from None


def _optimizer(spec: Spec, registry: Registry) -> keras.optimizers.Optimizer:
    key = keras_rules.optimizer_key(spec)
    cls = find_class(spec.name, keras.optimizers, keras.optimizers.Optimizer, registry, key, loose=True)
    if cls is None:
        raise keras_rules.unknown("optimizer", spec.name, class_names(keras.optimizers, keras.optimizers.Optimizer),
                                  key)
    args = keras_rules.optimizer_args(spec.args, key)
    schedule = keras_rules.schedule_of(args, key)
    if schedule is not None:
        args["learning_rate"] = _schedule(*schedule, registry)
    return construct(cls, args, key)


def _schedule(spec: Spec, key: str, registry: Registry) -> Any:
    base = keras.optimizers.schedules.LearningRateSchedule
    cls = find_class(spec.name, keras.optimizers.schedules, base, registry, key)
    if cls is None:
        known = class_names(keras.optimizers.schedules, base)
        raise keras_rules.unknown("learning-rate schedule", spec.name, known, key)
    return construct(cls, spec.args, f"{key}.{spec.name}")


def _losses(cc: CompileConfig, registry: Registry) -> Any:
    """The loss, or a dict of losses by output name (several outputs)."""
    if isinstance(cc.loss, dict):
        return {out: _loss(spec, registry, out) for out, spec in cc.loss.items()}
    return _loss(cc.loss, registry)


def _loss(spec: Spec, registry: Registry, output: str | None = None) -> Any:
    """A loss object or function; never an alias string (Keras 3.15 cannot reload `'mse'` from .h5)."""
    key = keras_rules.loss_key(spec, output)
    cls = find_class(spec.name, keras.losses, keras.losses.Loss, registry, key, loose=True)
    if cls is not None:
        return construct(cls, spec.args, key)
    if not spec.args:
        try:
            return keras.losses.get(spec.name)
        except ValueError:
            pass
    known = class_names(keras.losses, keras.losses.Loss) + [n for n, o in vars(keras.losses).items()
                                                            if inspect.isfunction(o) and n.islower()]
    raise keras_rules.unknown("loss", spec.name, known, key)


def _metrics(cc: CompileConfig, registry: Registry) -> Any:
    """The metrics list, or a dict of lists by output name (several outputs)."""
    if isinstance(cc.metrics, dict):
        return {out: [_metric(spec, keras_rules.metric_key(i, out), registry) for i, spec in enumerate(specs)]
                for out, specs in cc.metrics.items()}
    return [_metric(spec, keras_rules.metric_key(i), registry) for i, spec in enumerate(cc.metrics)]


def _metric(spec: Spec, key: str, registry: Registry) -> Any:
    if keras_rules.metric_is_class(spec, registry.classes):
        cls = find_class(spec.name, keras.metrics, keras.metrics.Metric, registry, key, loose=True)
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
    known = class_names(keras.metrics, keras.metrics.Metric) + sorted(LOSS_DEPENDENT_METRICS)
    raise keras_rules.unknown("metric", spec.name, known, key)


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
