"""The sweep's Optuna study: opened for running (the method's sampler, the pruner, each parameter's distribution),
or loaded as it is for showing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kcli.config.models import SweepConfig
from kcli.errors import RunError
from kcli.sweep.spec import DB, Sweep, grid_values

PRUNE_AFTER = 5   # Optuna's MedianPruner n_startup_trials: completed trials before it prunes anything


def open_study(sweep: Sweep) -> Any:
    """The Optuna study of a sweep being run, created or loaded."""
    import fcntl
    import os

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Two sweep processes starting together would both create sweep.db's tables (IntegrityError in one): the
    # folder's lock makes them take turns; it is held only while the study is opened.
    fd = os.open(sweep.folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return optuna.create_study(study_name=sweep.name, storage=sweep.storage, sampler=_sampler(sweep.spec),
                                   pruner=_pruner(sweep.spec), direction=sweep.direction, load_if_exists=True)
    finally:
        os.close(fd)   # releases the lock


def _sampler(spec: SweepConfig) -> Any:
    """Optuna's sampler for the method. A seeded random or TPE sampler restarts its random state from seed + the
    trial's number before each trial: every trial draws its own values, also when two sweep processes (or
    machines) share the study, and a continued sweep goes on instead of repeating the first run's draws."""
    import optuna

    if spec.method == "grid":
        space = {k: grid_values(p, k) for k, p in spec.parameters.items()}
        return optuna.samplers.GridSampler(space, seed=spec.seed)   # the grid's order must stay the same
    base = optuna.samplers.RandomSampler if spec.method == "random" else optuna.samplers.TPESampler
    if spec.seed is None:
        return base()
    return _trial_seeded(base, spec.seed)


def _trial_seeded(base: Any, seed: int) -> Any:
    """A sampler that draws each trial with a new `base(seed=seed + trial number)`: Optuna's random and TPE samplers
    keep no state but their random generator (TPE reads the study's history on every draw), so this is the same
    sampler with a per-trial seed, through Optuna's public sampler interface only. kcli asks for trials under one
    lock (runner.py), so a trial's draws are never interleaved with another's."""
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
    """Each parameter's Optuna distribution (what a trial asks the study for)."""
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


def load_study(name: str, storage: str, folder: Path) -> Any:
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
