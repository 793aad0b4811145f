"""`kcli sweep CONFIG`: search config values with Optuna; every trial is an ordinary `kcli train` run.

The sweep's state is an Optuna study in a real database (SQLite in RUNS/<sweep>/ by default, or any URL Optuna
accepts), so a sweep survives a kill: run the same command again and the trials this machine was running when
it died are resumed (`kcli train --resume` of their run directory) or, if they had not finished an epoch, run
again with the same values; finished trials are kept. It stops at exactly `trials` finished (completed or
pruned) trials. Each trial is a child process (`python -m kcli train CONFIG --set KEY=VALUE ...`) that dies with
the sweep (Linux: PR_SET_PDEATHSIG), so a killed sweep leaves no orphan training.

This module reads and checks a sweep, runs the command and shows the results; sweep_run.py runs the trials.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kcli.config import loading as config_mod
from kcli.config.dump import dump
from kcli.config.keras_names import higher_is_better
from kcli.config.keys import join_key
from kcli.config.models import Config, Spec, SweepConfig, SweepParam
from kcli.config.suggest import did_you_mean
from kcli.errors import ConfigError, Interrupted, KcliError, RunError
from kcli.output.display import Display
from kcli.run import folder as runs

SPEC = "sweep.json"      # what the sweep searches and where its study lives
DB = "sweep.db"
TRIALS = "trials"        # the trials' run directories
BEST = "best.yaml"
DEFAULT_TRIALS = 10
PRUNE_AFTER = 5   # Optuna's MedianPruner n_startup_trials: completed trials before it prunes anything
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

    def study(self) -> Any:
        """The Optuna study, created or loaded."""
        import fcntl
        import os

        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # Two sweep processes starting together would both create sweep.db's tables (IntegrityError in one): the
        # folder's lock makes them take turns; it is held only while the study is opened.
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return optuna.create_study(study_name=self.name, storage=self.storage, sampler=_sampler(self.spec),
                                       pruner=_pruner(self.spec), direction=self.direction, load_if_exists=True)
        finally:
            os.close(fd)   # releases the lock


def _optuna() -> None:
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise ConfigError(f"kcli sweep needs Optuna: {INSTALL_HINT}", key="sweep")


def open_sweep(config: Path, sweep_file: Path | None, runs_dir: Path, overrides: list[str],
               trials: int | None) -> Sweep:
    """Read and check the sweep (its keys, ranges and metric) before anything runs."""
    _optuna()
    loaded = config_mod.load(config, overrides)
    spec = _spec(loaded, sweep_file)
    try:
        _check_space(spec)
    except KcliError as exc:
        raise exc.located(sweep_file or config) from None
    name = spec.name or f"{loaded.config.name or config.stem}-sweep"
    folder = runs_dir / name
    direction = spec.direction if spec.direction != "auto" else _direction(spec.metric)
    count = trials or spec.trials or (_grid_size(spec) if spec.method == "grid" else DEFAULT_TRIALS)
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
        where = _param_key(key)
        first = split_key_path(key, where)[0]
        if first not in SEARCHABLE:
            raise ConfigError(f"{first!r} cannot be searched: a trial varies keys under {', '.join(SEARCHABLE)}",
                              key=where)
    if spec.method == "grid":
        _grid_size(spec)


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
        raise ConfigError("method grid needs `choices`, an int range or a `step`", key=_param_key(key))
    return int(math.floor((param.high - param.low) / param.step + 1e-9)) + 1


def _values(param: SweepParam, key: str) -> list[Any]:
    """Every value of a parameter (grid search; only after _grid_size said the grid is small enough)."""
    if param.choices is not None:
        return list(param.choices)
    assert param.low is not None and param.high is not None
    if param.is_int:
        return list(range(int(param.low), int(param.high) + 1, int(param.step or 1)))
    return [round(param.low + i * float(param.step or 1), 12) for i in range(_count(param, key))]


def _grid_size(spec: SweepConfig) -> int:
    """The number of combinations of a grid; a grid beyond MAX_GRID is refused (Optuna lists every one)."""
    counts = {k: _count(p, k) for k, p in spec.parameters.items()}
    size = math.prod(counts.values())
    if size > MAX_GRID:
        largest = max(counts, key=lambda k: counts[k])
        raise ConfigError(f"method grid: {size:.3g} combinations, more than {MAX_GRID} ({largest} alone has "
                          f"{counts[largest]:.3g} values); use fewer values, a larger step, or method random/tpe",
                          key=_param_key(largest))
    return size


def _sampler(spec: SweepConfig) -> Any:
    """Optuna's sampler for the method. A seeded random or TPE sampler restarts its random state from seed + the
    trial's number before each trial: every trial draws its own values, also when two sweep processes (or
    machines) share the study, and a continued sweep goes on instead of repeating the first run's draws."""
    import optuna

    if spec.method == "grid":
        space = {k: _values(p, k) for k, p in spec.parameters.items()}
        return optuna.samplers.GridSampler(space, seed=spec.seed)   # the grid's order must stay the same
    base = optuna.samplers.RandomSampler if spec.method == "random" else optuna.samplers.TPESampler
    if spec.seed is None:
        return base()
    return _trial_seeded(base, spec.seed)


def _trial_seeded(base: Any, seed: int) -> Any:
    """A sampler that draws each trial with a new `base(seed=seed + trial number)`: Optuna's random and TPE samplers
    keep no state but their random generator (TPE reads the study's history on every draw), so this is the same
    sampler with a per-trial seed, through Optuna's public sampler interface only. kcli asks for trials under one
    lock (sweep_run.py), so a trial's draws are never interleaved with another's."""
    import optuna

    class TrialSeeded(optuna.samplers.BaseSampler):
        def __init__(self) -> None:
            self._inner = base(seed=seed)

        def before_trial(self, study: Any, trial: Any) -> None:
            self._inner = base(seed=(seed + trial.number) % 2**32)
            self._inner.before_trial(study, trial)

        def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
            return self._inner.infer_relative_search_space(study, trial)

        def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
            return self._inner.sample_relative(study, trial, search_space)

        def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
            return self._inner.sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            self._inner.after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self._inner.reseed_rng()

    return TrialSeeded()


def _pruner(spec: SweepConfig) -> Any:
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=PRUNE_AFTER) if spec.pruner == "median" \
        else optuna.pruners.NopPruner()


def distributions(spec: SweepConfig) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for key, p in spec.parameters.items():
        if p.choices is not None:
            out[key] = CategoricalDistribution(p.choices)
        elif p.is_int:
            out[key] = IntDistribution(int(p.low or 0), int(p.high or 0), log=p.log, step=int(p.step or 1))
        else:
            out[key] = FloatDistribution(float(p.low or 0), float(p.high or 0), log=p.log, step=p.step)
    return out


def sets(params: dict[str, Any]) -> list[str]:
    """`--set KEY=VALUE` texts for a trial's values (JSON is YAML)."""
    return [f"{key}={json.dumps(value)}" for key, value in params.items()]


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
                                  key=_param_key(key)).located(sweep.config) from None
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


# ---- the command ----

def sweep(config: Path, sweep_file: Path | None, runs_dir: Path, jobs: int, trials: int | None,
          overrides: list[str], display: Display) -> Path:
    """Run (or continue) a sweep until `trials` trials finished; show the table and write best.yaml."""
    sw = open_sweep(config, sweep_file, runs_dir, overrides, trials)
    check(sw)
    _record(sw)
    from kcli.sweep.runner import Runner

    runner = Runner(sw, jobs, display)
    before = runner.finished()
    display.note(f"sweep {sw.name}: {before} of {sw.trials} trials finished; {sw.direction} {sw.spec.metric} "
                 f"({sw.spec.method}, {jobs} at a time); state: {sw.storage}")
    try:
        runner.run()
    except KeyboardInterrupt:
        raise Interrupted(f"sweep interrupted: {runner.finished()} of {sw.trials} trials finished; run the same "
                          "command again to continue (interrupted trials resume)") from None
    _write_best(sw)
    show(sw.folder, runs_dir, display, sw.storage)
    return sw.folder


def _record(sw: Sweep) -> None:
    """sweep.json: the sweep's spec (a later run of the same sweep must search the same space)."""
    spec = {"name": sw.name, "config": str(sw.config), "config_sha256": sw.config_sha256, "overrides": sw.overrides,
            "storage": sw.storage, "direction": sw.direction,
            "sweep": sw.spec.model_dump(mode="json", exclude={"trials"})}
    path = sw.folder / SPEC
    if path.is_file():
        before = runs.read_json(path)
        if not isinstance(before, dict):
            raise ConfigError(f"{path} is damaged (not a JSON object); move {sw.folder} away to start the sweep "
                              "over", key="sweep")
        if {k: v for k, v in before.items() if k != "trials"} != spec:
            changed = [{"config_sha256": "config (its contents changed)"}.get(k, k) for k in spec
                       if before.get(k) != spec[k]]
            raise ConfigError(f"{sw.folder} holds a sweep with a different {', '.join(changed)}; give this one "
                              "another sweep.name (only the number of trials may change)", key="sweep")
    sw.folder.mkdir(parents=True, exist_ok=True)
    runs.write_json(path, {**spec, "trials": sw.trials})


def find(ref: str, runs_dir: Path) -> Path:
    for candidate in (Path(ref), runs_dir / ref):
        if (candidate / SPEC).is_file():
            return candidate
    raise RunError(f"no sweep {ref!r} (looked for {SPEC} in {ref} and {runs_dir / ref})", key="SWEEP")


def show(ref: str | Path, runs_dir: Path, display: Display, storage: str | None = None) -> Path | None:
    """The trials table and the best trial (and SWEEP/best.yaml if the sweep wrote it). Reads only: the study in
    SWEEP/sweep.db, opened read-only, unless `storage` is the sweep command's own (from the user's config)."""
    _optuna()
    from optuna.trial import TrialState

    folder = find(str(ref), runs_dir)
    spec, study = results(folder, storage)
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else None
        rows.append({"trial": t.number, "state": t.state.name.lower(), "params": t.params, "value": t.value,
                     "seconds": seconds, "run": str(t.user_attrs.get("run", ""))})
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = study.best_trial if complete else None
    best_file = folder / BEST if best is not None and (folder / BEST).is_file() else None
    display.sweep(spec["name"], spec["metric"], spec["direction"], rows, best.number if best is not None else None,
                  best_file)
    return best_file


def _write_best(sw: Sweep) -> None:
    """SWEEP/best.yaml: the sweep's config with the best trial's values, resolved (written by the sweep command,
    from the user's own config: `kcli sweep show` of a received folder writes nothing)."""
    import optuna
    from optuna.trial import TrialState

    from kcli.config.resolve import resolve

    study = optuna.load_study(study_name=sw.name, storage=sw.storage)
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return
    best = study.best_trial
    cfg = resolve(config_mod.load(sw.config, [*sw.overrides, *sets(best.params)]))
    cfg.sweep = None
    cfg.name = f"{sw.name}-best"
    text = (f"# The best trial ({best.number}) of sweep {sw.name}: {sw.spec.metric} {best.value:.6g}\n"
            f"# {sw.config} with {', '.join(sets(best.params))}\n" + dump(cfg))
    runs.write_text(sw.folder / BEST, text)


def results(folder: Path, storage: str | None = None) -> tuple[dict[str, Any], Any]:
    """A sweep folder's record and its study, for showing and drawing: read-only (see _folder_storage) unless
    `storage` is the sweep command's own."""
    spec = _read_spec(folder)
    return spec, _load(spec["name"], storage or _folder_storage(folder, spec["name"], spec["storage"]), folder)


def _read_spec(folder: Path) -> dict[str, Any]:
    """What showing needs from SWEEP/sweep.json (a received file: each value checked to be what it should be):
    name, storage, direction, metric (texts) and parameters (key -> its spec)."""
    path = folder / SPEC
    try:
        raw = runs.read_json(path)
        found = {"name": raw["name"], "storage": raw["storage"], "direction": raw["direction"],
                 "metric": raw["sweep"]["metric"]}
        parameters = raw["sweep"]["parameters"]
    except (OSError, ValueError, KeyError, TypeError):
        found, parameters = {}, None
    if not found or not all(isinstance(v, str) for v in found.values()) or not isinstance(parameters, dict) \
            or not all(isinstance(v, dict) for v in parameters.values()):
        raise RunError(f"{path} is not a kcli sweep record (name, storage, direction, sweep.metric, "
                       "sweep.parameters)", key="SWEEP")
    return {**found, "parameters": parameters}


def _folder_storage(folder: Path, name: str, recorded: str) -> str:
    """A read-only URL of SWEEP/sweep.db. Only a sweep whose study lives in its folder can be shown from the folder:
    a storage URL recorded elsewhere is refused, never opened (a received sweep.json must not make kcli create or
    write a database anywhere)."""
    from urllib.parse import quote

    if not (recorded.startswith("sqlite:///") and recorded.endswith(f"/{name}/{DB}")):
        raise RunError(f"{folder / SPEC} keeps the study at {recorded!r}, not in {folder}; `kcli sweep show` opens "
                       f"only {folder / DB}: run `kcli sweep CONFIG` with the sweep's config to see it", key="SWEEP")
    db = (folder / DB).resolve()
    if not db.is_file():
        raise RunError(f"{db} is missing: the sweep's study is not in its folder", key="SWEEP")
    return f"sqlite:///file:{quote(str(db))}?mode=ro&uri=true"


def _load(name: str, storage: str, folder: Path) -> Any:
    """The study, loaded without creating tables (a read-only database stays untouched)."""
    import optuna
    from optuna.storages import RDBStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        rdb = RDBStorage(storage, skip_table_creation=True) if storage.startswith("sqlite:///file:") else storage
        return optuna.load_study(study_name=name, storage=rdb)
    except (KeyError, optuna.exceptions.OptunaError) as exc:
        raise RunError(f"no study {name!r} in {folder / DB} (emptied or damaged: {type(exc).__name__})",
                       key="SWEEP") from None


def _param_key(key: str) -> str:
    """Where a searched value is set: sweep.parameters["fit.epochs"] (its key holds dots, so it is quoted as every
    key path quotes such keys)."""
    return join_key("sweep.parameters", key)
