"""`kcli sweep CONFIG`: search config values with Optuna; every trial is an ordinary `kcli train` run.

The sweep's state is an Optuna study in a real database (SQLite in RUNS/<sweep>/ by default, or any URL Optuna
accepts), so a sweep survives a kill: run the same command again and the trials this machine was running when
it died are resumed (`kcli train --resume` of their run directory) or, if they had not finished an epoch, run
again with the same values; finished trials are kept. It stops at exactly `trials` finished (completed or
pruned) trials. Each trial is a child process (`python -m kcli train CONFIG --set KEY=VALUE ...`) that dies with
the sweep (Linux: PR_SET_PDEATHSIG), so a killed sweep leaves no orphan training.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kcli import config as config_mod
from kcli import runs, state
from kcli.config import SweepConfig, SweepParam
from kcli.display import Display
from kcli.errors import ConfigError, Interrupted, KcliError, RunError

SPEC = "sweep.json"      # what the sweep searches and where its study lives
DB = "sweep.db"
TRIALS = "trials"        # the trials' run directories
BEST = "best.yaml"
DEFAULT_TRIALS = 10
PRUNE_AFTER = 5   # Optuna's MedianPruner n_startup_trials: completed trials before it prunes anything
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
        """The Optuna study, created or loaded. The sampler's seed moves on by the trials already asked, so a
        continued sweep draws new values instead of repeating the first run's sequence."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            asked = len(optuna.load_study(study_name=self.name, storage=self.storage).trials)
        except KeyError:   # a new study
            asked = 0
        seed = None if self.spec.seed is None else self.spec.seed + asked
        return optuna.create_study(study_name=self.name, storage=self.storage, sampler=_sampler(self.spec, seed),
                                   pruner=_pruner(self.spec), direction=self.direction, load_if_exists=True)


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

    from kcli.yaml_source import read

    raw = read(sweep_file)[0]
    raw = raw.get("sweep", raw) if isinstance(raw, dict) else raw
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as exc:
        err = config_mod._translate(max(exc.errors(), key=lambda e: len(e["loc"])))
        err.key = f"sweep.{err.key}" if err.key else "sweep"
        raise err.located(sweep_file) from None


def _direction(metric: str) -> str:
    name = metric.lower()
    return "maximize" if any(s in name for s in ("acc", "auc", "precision", "recall", "f1")) else "minimize"


def _values(param: SweepParam, key: str) -> list[Any]:
    """Every value of a parameter (grid search)."""
    if param.choices is not None:
        return list(param.choices)
    assert param.low is not None and param.high is not None
    if param.is_int:
        return list(range(int(param.low), int(param.high) + 1, int(param.step or 1)))
    if param.step is None:
        raise ConfigError("method grid needs `choices`, an int range or a `step`", key=f"sweep.parameters.{key}")
    n = int(math.floor((param.high - param.low) / param.step + 1e-9)) + 1
    return [round(param.low + i * param.step, 12) for i in range(n)]


def _grid_size(spec: SweepConfig) -> int:
    return math.prod(len(_values(p, k)) for k, p in spec.parameters.items())


def _sampler(spec: SweepConfig, seed: int | None) -> Any:
    import optuna

    if spec.method == "grid":
        space = {k: _values(p, k) for k, p in spec.parameters.items()}
        return optuna.samplers.GridSampler(space, seed=spec.seed)   # the grid's order must stay the same
    if spec.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(spec: SweepConfig) -> Any:
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=PRUNE_AFTER) if spec.pruner == "median" \
        else optuna.pruners.NopPruner()


def _distributions(spec: SweepConfig) -> dict[str, Any]:
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
    """Every parameter key applies to the config (each value's first choice or low end), the result passes
    `kcli validate` (names and arguments against Keras's source), and the metric is a value training logs:
    before any trial runs, without importing TensorFlow (each trial imports it anyway)."""
    from kcli.check import check as validate_config
    from kcli.resolve import resolve

    if sweep.spec.method == "grid":
        try:
            _grid_size(sweep.spec)
        except KcliError as exc:
            raise exc.located(sweep.config) from None
    first = {k: (p.choices[0] if p.choices is not None else p.low) for k, p in sweep.spec.parameters.items()}
    for key, value in first.items():
        try:
            config_mod.load(sweep.config, [*sweep.overrides, *sets({key: value})])
        except KcliError as exc:
            raise ConfigError(f"{exc.key + ': ' if exc.key else ''}{exc.message}",
                              key=f"sweep.parameters.{key}").located(sweep.config) from None
    loaded = config_mod.load(sweep.config, [*sweep.overrides, *sets(first)])
    try:
        cfg = resolve(loaded)
        validate_config(cfg)
    except KcliError as exc:
        raise ConfigError(f"with the sweep's first values: {exc.key + ': ' if exc.key else ''}{exc.message}",
                          key="sweep.parameters").located(sweep.config) from None
    logged = logged_names(cfg)
    if logged is not None and sweep.spec.metric not in logged:
        raise ConfigError(f"{sweep.spec.metric!r} is never logged{config_mod.did_you_mean(sweep.spec.metric, logged)}"
                          f"; logged values: {', '.join(logged)}", key="sweep.metric").located(sweep.config)


def logged_names(cfg: config_mod.Config) -> list[str] | None:
    """The history's columns as Keras names them (loss, metrics by their string or a class's default snake_case
    name, `<output>_...` for several outputs, `val_...` with validation data); None when a metric of the user's
    own may log under a name only running it tells."""
    def name(spec: config_mod.Spec) -> str | None:
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


# ---- running ----

@dataclass
class Outcome:
    number: int
    state: str          # complete | pruned | failed
    value: float | None
    run_dir: Path | None
    detail: str = ""


class Runner:
    """Asks Optuna for trials and runs them as `kcli train` processes, `jobs` at a time."""

    def __init__(self, sweep: Sweep, jobs: int, display: Display) -> None:
        self.sweep = sweep
        self.jobs = jobs
        self.display = display
        self.study = sweep.study()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.children: set[subprocess.Popen[bytes]] = set()
        self.failures = 0
        self.host = socket.gethostname()

    def run(self) -> None:
        stale = self._stale()
        with ThreadPoolExecutor(self.jobs) as pool:
            futures = [pool.submit(self._worker, stale) for _ in range(self.jobs)]
            try:
                for future in futures:
                    while not future.done():
                        time.sleep(0.2)
                    future.result()
            except KeyboardInterrupt:
                self.stop.set()
                for child in list(self.children):   # they got SIGINT from the terminal too; make sure
                    with contextlib.suppress(OSError):
                        child.send_signal(signal.SIGINT)
                raise
            except BaseException:
                self.stop.set()
                raise

    def _finished(self) -> int:
        from optuna.trial import TrialState

        return len(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))

    def _running(self) -> int:
        from optuna.trial import TrialState

        return len(self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))

    def _stale(self) -> list[Any]:
        """RUNNING trials that this machine started in a sweep process that is gone: resumed first."""
        from optuna.trial import TrialState

        mine = []
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = t.user_attrs.get("owner") or {}
            if owner.get("host") in (None, self.host) and not state.alive(owner.get("pid")):
                mine.append(t)
        return mine

    def _worker(self, stale: list[Any]) -> None:
        while not self.stop.is_set():
            with self.lock:
                if stale:
                    trial, params, resumed = stale.pop(0), None, True
                    params = trial.params
                elif self._finished() + self._running() < self.sweep.trials:
                    trial, resumed = self.study.ask(_distributions(self.sweep.spec)), False
                    params = trial.params
                else:
                    return
                self._own(trial)
            outcome = self._run_trial(trial.number, trial._trial_id, params, resumed)
            if self.stop.is_set():
                return
            with self.lock:
                self._tell(outcome)

    def _own(self, trial: Any) -> None:
        self.study._storage.set_trial_user_attr(trial._trial_id, "owner", {"host": self.host, "pid": os.getpid()})

    def _run_trial(self, number: int, trial_id: int, params: dict[str, Any], resumed: bool) -> Outcome:
        sweep = self.sweep
        trials_dir = sweep.folder / TRIALS
        name = f"{sweep.name}-trial-{number:04d}"
        existing = _run_of(trials_dir, name)
        if existing is not None and runs.load_record(existing, "RUN").get("status") == runs.FINISHED:
            return self._outcome(number, existing)   # it finished; the sweep died before recording it
        args = [sys.executable, "-m", "kcli", "train"]
        if existing is not None and _resumable(existing):
            args += ["--resume", str(existing), "--runs-dir", str(trials_dir)]
            verb = "resuming"
        else:
            args += [str(sweep.config), "--runs-dir", str(trials_dir), "--set", f"name={name}",
                     *(a for s in [*sweep.overrides, *sets(params)] for a in ("--set", s))]
            verb = "running again" if resumed else "running"
        self.display.note(f"trial {number}: {verb} ({_shown(params)})")
        env = {**os.environ, "KCLI_SWEEP_TRIAL": json.dumps({
            "storage": sweep.storage, "study": sweep.name, "trial_id": trial_id, "metric": sweep.spec.metric,
            "prune": self._can_prune()})}
        trials_dir.mkdir(parents=True, exist_ok=True)
        log = trials_dir / f"{name}.log"
        with log.open("ab") as out:
            child = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent)
            self.children.add(child)
            try:
                code = child.wait()
            finally:
                self.children.discard(child)
        run_dir = _run_of(trials_dir, name)
        if code != 0 or run_dir is None:
            return Outcome(number, "failed", None, run_dir, _last_error(log) or f"exit code {code}")
        return self._outcome(number, run_dir)

    def _outcome(self, number: int, run_dir: Path) -> Outcome:
        record = runs.load_record(run_dir, "RUN")
        rows = json.loads((run_dir / runs.HISTORY_JSON).read_text()) if (run_dir / runs.HISTORY_JSON).is_file() else []
        values = [float(r[self.sweep.spec.metric]) for r in rows if r.get(self.sweep.spec.metric) is not None]
        if record.get("pruned_at_epoch"):
            return Outcome(number, "pruned", None, run_dir, f"pruned after epoch {record['pruned_at_epoch']}")
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            return Outcome(number, "failed", None, run_dir, f"{self.sweep.spec.metric} was never logged")
        best = max(finite) if self.sweep.direction == "maximize" else min(finite)
        return Outcome(number, "complete", best, run_dir)

    def _can_prune(self) -> bool:
        """Whether the pruner can stop a trial started now: the median pruner waits for PRUNE_AFTER completed
        trials, and until then a trial need not report from inside training (it costs its process ~2 s)."""
        from optuna.trial import TrialState

        complete = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return self.sweep.spec.pruner != "none" and len(complete) >= PRUNE_AFTER

    def _report_history(self, outcome: Outcome) -> None:
        """Every epoch's metric as the trial's intermediate values (the pruner compares later trials with them),
        for the epochs the trial did not report itself."""
        if outcome.run_dir is None or not (outcome.run_dir / runs.HISTORY_JSON).is_file():
            return
        trial_id = self.study.trials[outcome.number]._trial_id
        have = self.study._storage.get_trial(trial_id).intermediate_values
        for row in json.loads((outcome.run_dir / runs.HISTORY_JSON).read_text()):
            value, step = row.get(self.sweep.spec.metric), int(row["epoch"]) - 1
            if value is not None and step not in have and math.isfinite(float(value)):
                self.study._storage.set_trial_intermediate_value(trial_id, step, float(value))

    def _tell(self, outcome: Outcome) -> None:
        from optuna.trial import TrialState

        if outcome.run_dir is not None:
            self.study._storage.set_trial_user_attr(self.study.trials[outcome.number]._trial_id, "run",
                                                    outcome.run_dir.name)
        if outcome.state == "complete":
            self._report_history(outcome)
            self.study.tell(outcome.number, outcome.value)
            self.display.note(f"trial {outcome.number}: {self.sweep.spec.metric} {outcome.value:.4g}  "
                              f"({self._finished()} of {self.sweep.trials} finished)")
        elif outcome.state == "pruned":
            self.study.tell(outcome.number, state=TrialState.PRUNED)
            self.display.note(f"trial {outcome.number}: {outcome.detail}  "
                              f"({self._finished()} of {self.sweep.trials} finished)")
        else:
            self.study.tell(outcome.number, state=TrialState.FAIL)
            self.failures += 1
            self.display.warning(f"trial {outcome.number} failed: {outcome.detail}")
            if self.failures >= max(3, self.sweep.trials):
                self.stop.set()
                raise RunError(f"{self.failures} trials failed (the last: {outcome.detail}); stopping the sweep",
                               key="sweep")


def _die_with_parent() -> None:
    """In the child: SIGKILL when the sweep process dies (Linux), so a killed sweep leaves no training behind."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG


def _run_of(trials_dir: Path, name: str) -> Path | None:
    """The run directory of a trial (`<name>-<timestamp>`), if it was created."""
    found = sorted(p.parent for p in trials_dir.glob(f"{name}-*/{runs.RUN_JSON}"))
    return found[-1] if found else None


def _resumable(run_dir: Path) -> bool:
    return bool(state.saved_epoch(run_dir))


def _last_error(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("error:")]
    return lines[-1].removeprefix("error:").strip() if lines else ""


def _shown(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


# ---- the command ----

def sweep(config: Path, sweep_file: Path | None, runs_dir: Path, jobs: int, trials: int | None,
          overrides: list[str], display: Display) -> Path:
    """Run (or continue) a sweep until `trials` trials finished; show the table and write best.yaml."""
    sw = open_sweep(config, sweep_file, runs_dir, overrides, trials)
    check(sw)
    _record(sw)
    runner = Runner(sw, jobs, display)
    before = runner._finished()
    display.note(f"sweep {sw.name}: {before} of {sw.trials} trials finished; {sw.direction} {sw.spec.metric} "
                 f"({sw.spec.method}, {jobs} at a time); state: {sw.storage}")
    try:
        runner.run()
    except KeyboardInterrupt:
        raise Interrupted(f"sweep interrupted: {runner._finished()} of {sw.trials} trials finished; run the same "
                          "command again to continue (interrupted trials resume)") from None
    show(sw.folder, runs_dir, display)
    return sw.folder


def _record(sw: Sweep) -> None:
    """sweep.json: the sweep's spec (a later run of the same sweep must search the same space)."""
    spec = {"name": sw.name, "config": str(sw.config), "config_sha256": sw.config_sha256, "overrides": sw.overrides,
            "storage": sw.storage, "direction": sw.direction,
            "sweep": sw.spec.model_dump(mode="json", exclude={"trials"})}
    path = sw.folder / SPEC
    if path.is_file():
        before = json.loads(path.read_text())
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


def show(ref: str | Path, runs_dir: Path, display: Display) -> Path | None:
    """The trials table and the best trial; writes SWEEP/best.yaml (the config with the best values)."""
    _optuna()
    import optuna
    from optuna.trial import TrialState

    folder = find(str(ref), runs_dir)
    spec = json.loads((folder / SPEC).read_text())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=spec["name"], storage=spec["storage"])
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else None
        rows.append({"trial": t.number, "state": t.state.name.lower(), "params": t.params, "value": t.value,
                     "seconds": seconds, "run": t.user_attrs.get("run", "")})
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    best = study.best_trial if complete else None
    best_file = None
    if best is not None:
        best_file = folder / BEST
        loaded = config_mod.load(Path(spec["config"]), [*spec["overrides"], *sets(best.params)])
        from kcli.resolve import resolve

        cfg = resolve(loaded)
        cfg.sweep = None
        cfg.name = f"{spec['name']}-best"
        metric = spec["sweep"]["metric"]
        text = (f"# The best trial ({best.number}) of sweep {spec['name']}: {metric} {best.value:.6g}\n"
                f"# {spec['config']} with {', '.join(sets(best.params))}\n" + config_mod.dump(cfg))
        runs.write_text(best_file, text)
    display.sweep(spec["name"], spec["sweep"]["metric"], spec["direction"], rows,
                  best.number if best is not None else None, best_file)
    return best_file
