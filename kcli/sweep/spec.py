"""What a sweep searches: its `sweep:` section (or --sweep file) read and checked on its own, before anything runs:
the keys a trial may vary, the ranges, a grid small enough to list, the direction, where the study lives."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kcli.config import loading as config_mod
from kcli.config.keras_names import higher_is_better
from kcli.config.keys import join_key
from kcli.config.models import SweepConfig, SweepParam
from kcli.errors import ConfigError, KcliError

SPEC = "sweep.json"      # what the sweep searches and where its study lives
DB = "sweep.db"
TRIALS = "trials"        # the trials' run directories
BEST = "best.yaml"
DEFAULT_TRIALS = 10
MAX_GRID = 100_000   # combinations: GridSampler lists them all, and no one trains more runs than that
SEARCHABLE = ("seed", "data", "model", "compile", "fit")   # what a trial may vary (not its name, sweep, imports...)
INSTALL_HINT = "pip install 'kcli-keras[sweep]' (in a checkout: pip install -e '.[sweep]')"


@dataclass
class Sweep:
    """A sweep's folder, its spec and the base config it varies."""

    folder: Path
    name: str
    config: Path
    overrides: list[str]
    spec: SweepConfig
    storage: str
    direction: str
    trials: int
    config_sha256: str   # of the base config as composed (a changed config is another sweep)


def need_optuna() -> None:
    """Optuna is an extra: without it, one line saying how to install it."""
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise ConfigError(f"kcli sweep needs Optuna: {INSTALL_HINT}", key="sweep")


def open_sweep(config: Path, sweep_file: Path | None, runs_dir: Path, overrides: list[str],
               trials: int | None) -> Sweep:
    """Read and check the sweep (its keys, ranges and metric) before anything runs."""
    need_optuna()
    loaded = config_mod.load(config, overrides)
    spec = _spec(loaded, sweep_file)
    try:
        _check_space(spec)
    except KcliError as exc:
        raise exc.located(sweep_file or config) from None
    name = spec.name or f"{loaded.config.name or config.stem}-sweep"
    folder = runs_dir / name
    direction = spec.direction if spec.direction != "auto" else _direction(spec.metric)
    count = trials or spec.trials or (grid_size(spec) if spec.method == "grid" else DEFAULT_TRIALS)
    storage = spec.storage or f"sqlite:///{(folder / DB).resolve()}"
    base = {k: v for k, v in loaded.raw.items() if k != "sweep"}
    digest = hashlib.sha256(json.dumps(base, sort_keys=True, default=str).encode()).hexdigest()
    return Sweep(folder, name, config.resolve(), overrides, spec, storage, direction, count, digest)


def _spec(loaded: config_mod.LoadedConfig, sweep_file: Path | None) -> SweepConfig:
    if sweep_file is None:
        if loaded.config.sweep is None:
            raise ConfigError("the config has no `sweep:` section; add one or pass --sweep FILE", key="sweep")
        return loaded.config.sweep
    from pydantic import ValidationError

    from kcli.config.source import read

    if not sweep_file.is_file():
        raise ConfigError(f"sweep file not found: {sweep_file}", key="--sweep")
    raw = read(sweep_file)[0]
    raw = raw.get("sweep", raw) if isinstance(raw, dict) else raw
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as exc:
        err = config_mod.translate(max(exc.errors(), key=lambda e: len(e["loc"])), raw)
        err.key = f"sweep{'' if (err.key or '').startswith('[') else '.'}{err.key}" if err.key else "sweep"
        raise err.located(sweep_file) from None


def _check_space(spec: SweepConfig) -> None:
    """Each parameter key is a config key path a trial may vary, and a grid is small enough to list."""
    from kcli.config.overrides import split_key_path

    for key in spec.parameters:
        where = param_key(key)
        first = split_key_path(key, where)[0]
        if first not in SEARCHABLE:
            raise ConfigError(f"{first!r} cannot be searched: a trial varies keys under {', '.join(SEARCHABLE)}",
                              key=where)
    if spec.method == "grid":
        grid_size(spec)


def _direction(metric: str) -> str:
    return "maximize" if higher_is_better(metric) else "minimize"


def _count(param: SweepParam, key: str) -> int:
    """How many values a parameter has in a grid (counted, not listed: a range may be astronomically long)."""
    if param.choices is not None:
        return len(param.choices)
    assert param.low is not None and param.high is not None
    if param.is_int:
        return len(range(int(param.low), int(param.high) + 1, int(param.step or 1)))
    if param.step is None:
        raise ConfigError("method grid needs `choices`, an int range or a `step`", key=param_key(key))
    return int(math.floor((param.high - param.low) / param.step + 1e-9)) + 1


def grid_values(param: SweepParam, key: str) -> list[Any]:
    """Every value of a parameter (grid search; only after grid_size said the grid is small enough)."""
    if param.choices is not None:
        return list(param.choices)
    assert param.low is not None and param.high is not None
    if param.is_int:
        return list(range(int(param.low), int(param.high) + 1, int(param.step or 1)))
    return [round(param.low + i * float(param.step or 1), 12) for i in range(_count(param, key))]


def grid_size(spec: SweepConfig) -> int:
    """The number of combinations of a grid; a grid beyond MAX_GRID is refused (Optuna lists every one)."""
    counts = {k: _count(p, k) for k, p in spec.parameters.items()}
    size = math.prod(counts.values())
    if size > MAX_GRID:
        largest = max(counts, key=lambda k: counts[k])
        raise ConfigError(f"method grid: {size:.3g} combinations, more than {MAX_GRID} ({largest} alone has "
                          f"{counts[largest]:.3g} values); use fewer values, a larger step, or method random/tpe",
                          key=param_key(largest))
    return size


def sets(params: dict[str, Any]) -> list[str]:
    """`--set KEY=VALUE` texts for a trial's values (JSON is YAML)."""
    return [f"{key}={json.dumps(value)}" for key, value in params.items()]


def param_key(key: str) -> str:
    """Where a searched value is set: sweep.parameters["fit.epochs"] (its key holds dots, so it is quoted as every
    key path quotes such keys)."""
    return join_key("sweep.parameters", key)
