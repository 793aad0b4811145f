"""`kcli sweep CONFIG`: search config values with Optuna; every trial is an ordinary `kcli train` run.

The sweep's state is an Optuna study in a real database (SQLite in RUNS/<sweep>/ by default, or any URL Optuna
accepts), so a sweep survives a kill: run the same command again and the trials this machine was running when
it died are resumed (`kcli train --resume` of their run directory) or, if they had not finished an epoch, run
again with the same values; finished trials are kept. It stops at exactly `trials` finished (completed or
pruned) trials. Each trial is a child process (`python -m kcli train CONFIG --set KEY=VALUE ...`) that dies with
the sweep (Linux: PR_SET_PDEATHSIG), so a killed sweep leaves no orphan training.

This module is the command: it opens and checks the sweep (spec.py, checks.py), records it (record.py), lets
runner.py run the trials, writes best.yaml and returns the trials' table for the caller to draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kcli import events
from kcli.config import loading as config_mod
from kcli.config.dump import dump
from kcli.errors import Interrupted
from kcli.files import atomic
from kcli.sweep.checks import check
from kcli.sweep.record import find, results, write_record
from kcli.sweep.spec import BEST, Sweep, need_optuna, open_sweep, sets


@dataclass(frozen=True)
class SweepTable:
    """A sweep's trials as `kcli sweep show` draws them: one row per trial (trial, state, params, value, seconds,
    run), the best completed trial's number and its config file (SWEEP/best.yaml, when the sweep wrote it)."""

    folder: Path
    name: str
    metric: str
    direction: str
    rows: list[dict[str, Any]]
    best: int | None
    best_file: Path | None


def sweep(config: Path, sweep_file: Path | None, runs_dir: Path, jobs: int, trials: int | None,
          overrides: list[str], listener: events.Listener = events.ignore) -> SweepTable:
    """Run (or continue) a sweep until `trials` trials finished; write best.yaml and return the trials' table."""
    sw = open_sweep(config, sweep_file, runs_dir, overrides, trials)
    check(sw)
    write_record(sw)
    # imported here: `kcli sweep show` needs none of the runner's imports (numpy, the trial processes)
    from kcli.sweep.runner import Runner

    runner = Runner(sw, jobs, listener)
    before = runner.finished()
    listener(events.Note(f"sweep {sw.name}: {before} of {sw.trials} trials finished; {sw.direction} "
                         f"{sw.spec.metric} ({sw.spec.method}, {jobs} at a time); state: {sw.storage}"))
    try:
        runner.run()
    except KeyboardInterrupt:
        raise Interrupted(f"sweep interrupted: {runner.finished()} of {sw.trials} trials finished; run the same "
                          "command again to continue (interrupted trials resume)") from None
    _write_best(sw)
    return show(sw.folder, runs_dir, sw.storage)


def show(ref: str | Path, runs_dir: Path, storage: str | None = None) -> SweepTable:
    """The trials table and the best trial (and SWEEP/best.yaml if the sweep wrote it). Reads only: the study in
    SWEEP/sweep.db, opened read-only, unless `storage` is the sweep command's own (from the user's config)."""
    need_optuna()
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
    return SweepTable(folder, spec["name"], spec["metric"], spec["direction"], rows,
                      best.number if best is not None else None, best_file)


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
    atomic.write_text(sw.folder / BEST, text)
