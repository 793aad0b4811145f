"""The sweep against its config, before any trial runs: every value it may set applies, the config with them passes
`kcli validate`'s static checks, and the metric is one training logs. TensorFlow-free (each trial imports it)."""

from __future__ import annotations

import re

from kcli.config import loading as config_mod
from kcli.config.models import Config, Spec
from kcli.config.suggest import did_you_mean
from kcli.errors import ConfigError, KcliError
from kcli.sweep.spec import Sweep, param_key, sets


def check(sweep: Sweep) -> None:
    """Every parameter key applies to the config (each choice, or a range's both ends), the result passes
    `kcli validate` (names and arguments against Keras's source), and the metric is a value training logs:
    before any trial runs, without importing TensorFlow (each trial imports it anyway)."""
    from kcli.config.check import check as validate_config
    from kcli.config.resolve import resolve

    first = {k: (p.choices[0] if p.choices is not None else p.low) for k, p in sweep.spec.parameters.items()}
    for key, param in sweep.spec.parameters.items():
        # every choice, or both ends of a range: a value the config refuses would only fail trial after trial
        for value in param.choices if param.choices is not None else (param.low, param.high):
            try:
                config_mod.load(sweep.config, [*sweep.overrides, *sets({key: value})])
            except KcliError as exc:
                raise ConfigError(f"{exc.key + ': ' if exc.key else ''}{exc.message}",
                                  key=param_key(key)).located(sweep.config) from None
    loaded = config_mod.load(sweep.config, [*sweep.overrides, *sets(first)])
    try:
        cfg = resolve(loaded)
        validate_config(cfg)
    except KcliError as exc:
        raise ConfigError(f"with the sweep's first values: {exc.key + ': ' if exc.key else ''}{exc.message}",
                          key="sweep.parameters").located(sweep.config) from None
    logged = logged_names(cfg)
    if logged is not None and sweep.spec.metric not in logged:
        raise ConfigError(f"{sweep.spec.metric!r} is never logged{did_you_mean(sweep.spec.metric, logged)}"
                          f"; logged values: {', '.join(logged)}", key="sweep.metric").located(sweep.config)


def logged_names(cfg: Config) -> list[str] | None:
    """The history's columns as Keras names them (loss, metrics by their string or a class's default snake_case
    name, `<output>_...` for several outputs, `val_...` with validation data); None when a metric of the user's
    own may log under a name only running it tells."""
    def name(spec: Spec) -> str | None:
        if "name" in spec.args:
            return str(spec.args["name"])
        if ":" in spec.name:
            return None
        return spec.name if not spec.name[:1].isupper() else _keras_snake(spec.name)

    metrics = cfg.compile.metrics
    per_output = metrics if isinstance(metrics, dict) else {"": metrics}
    names = ["loss", *(f"{out}_loss" for out in cfg.model.outputs)]
    for out, specs in per_output.items():
        for spec in specs:
            found = name(spec)
            if found is None:
                return None
            names.append(f"{out}_{found}" if out else found)
    validation = cfg.data.validation is not None or cfg.data.validation_split is not None
    return names + [f"val_{n}" for n in names] if validation else names


def _keras_snake(name: str) -> str:
    """Keras's default object name for a class (keras.src.utils.naming.to_snake_case): AUC -> auc."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
