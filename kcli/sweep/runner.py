"""The running side of `kcli sweep`: asks Optuna for trials and runs each as a `kcli train` process, `--jobs` at
a time; resumes this machine's trials that a killed sweep left RUNNING, and tells Optuna each outcome."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
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

from kcli import events
from kcli.distributed.workers import die_with_parent
from kcli.errors import RunError
from kcli.files import process
from kcli.run import layout, records, state
from kcli.sweep.spec import TRIALS, Sweep, sets
from kcli.sweep.study import PRUNE_AFTER, distributions, open_study

FAILURES_IN_A_ROW = 3   # then the config, not the values, is likely wrong: stop instead of burning trials


@dataclass
class Outcome:
    number: int
    state: str          # complete | pruned | failed
    value: float | None
    run_dir: Path | None
    detail: str = ""


class Runner:
    """Asks Optuna for trials and runs them as `kcli train` processes, `jobs` at a time."""

    def __init__(self, sweep: Sweep, jobs: int, listener: events.Listener = events.ignore) -> None:
        self.sweep = sweep
        self.jobs = jobs
        self.listener = listener
        self.study = open_study(sweep)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.children: set[subprocess.Popen[bytes]] = set()
        self.failures = 0   # in a row
        self.host = socket.gethostname()

    def run(self) -> None:
        self._check_folders()
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

    def finished(self) -> int:
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
            if owner.get("host") in (None, self.host) and not process.alive(owner.get("pid")):
                mine.append(t)
        return mine

    def _check_folders(self) -> None:
        """Every trial folder's values are its trial's in the study: a study emptied or replaced under the folders
        would attach a finished run to values it never trained with (and best.yaml would follow the study)."""
        trials = {t.number: t for t in self.study.get_trials(deepcopy=False)}
        prefix = f"{self.sweep.name}-trial-"
        for run_json in sorted((self.sweep.folder / TRIALS).glob(f"{prefix}*/{layout.RUN_JSON}")):
            folder = run_json.parent
            number, recorded = folder.name[len(prefix):].split("-", 1)[0], _recorded(folder)
            if not number.isdigit() or recorded is None:
                continue   # not a trial's folder, or killed before it recorded its values (never reused)
            trial = trials.get(int(number))
            if trial is None or not _same_values(recorded, trial.params):
                says = f"says trial {int(number)} has {_shown(trial.params)}" if trial \
                    else f"has no trial {int(number)}"
                raise RunError(f"the study ({self.sweep.storage}) no longer matches the trial folders: {folder} "
                               f"trained with {', '.join(_own(recorded)) or 'no values'} but the study {says}; restore "
                               f"the study, or move {folder.parent} away to start the sweep over", key="sweep")

    def _worker(self, stale: list[Any]) -> None:
        while not self.stop.is_set():
            with self.lock:
                if stale:
                    trial, params, resumed = stale.pop(0), None, True
                    params = trial.params
                elif self.finished() + self._running() < self.sweep.trials:
                    trial, resumed = self.study.ask(distributions(self.sweep.spec)), False
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
        _settle(trials_dir, name)
        existing = _run_of(trials_dir, name, params)
        if existing is not None and records.load_record(existing, "RUN").get("status") == records.FINISHED:
            return self._outcome(number, existing)   # it finished; the sweep died before recording it
        args = [sys.executable, "-m", "kcli", "train"]
        if existing is not None and _resumable(existing):
            args += ["--resume", str(existing), "--runs-dir", str(trials_dir)]
            verb = "resuming"
        else:
            # the trial's name comes last: no --set or parameter may rename the run the sweep looks for
            args += [str(sweep.config), "--runs-dir", str(trials_dir),
                     *(a for s in [*sweep.overrides, *sets(params), f"name={name}"] for a in ("--set", s))]
            verb = "running again" if resumed else "running"
        self.listener(events.Note(f"trial {number}: {verb} ({_shown(params)})"))
        env = {**os.environ, "KCLI_SWEEP_TRIAL": json.dumps({
            "storage": sweep.storage, "study": sweep.name, "trial_id": trial_id, "metric": sweep.spec.metric,
            "prune": self._can_prune()})}
        trials_dir.mkdir(parents=True, exist_ok=True)
        log = trials_dir / f"{name}.log"
        with log.open("ab") as out:
            child = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent)
            self.children.add(child)
            try:
                code = child.wait()
            finally:
                self.children.discard(child)
        run_dir = _run_of(trials_dir, name, params)
        if code != 0 or run_dir is None:
            detail = _last_error(log) or (f"exit code {code}" if code else f"no run folder {name}-* with its values")
            return Outcome(number, "failed", None, run_dir, detail)
        return self._outcome(number, run_dir)

    def _outcome(self, number: int, run_dir: Path) -> Outcome:
        record = records.load_record(run_dir, "RUN")
        values = [float(r[self.sweep.spec.metric]) for r in records.read_history(run_dir)
                  if r.get(self.sweep.spec.metric) is not None]
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
        if outcome.run_dir is None:
            return
        trial_id = self.study.trials[outcome.number]._trial_id
        have = self.study._storage.get_trial(trial_id).intermediate_values
        for row in records.read_history(outcome.run_dir):
            value, step = row.get(self.sweep.spec.metric), int(row["epoch"]) - 1
            if value is not None and step not in have and math.isfinite(float(value)):
                self.study._storage.set_trial_intermediate_value(trial_id, step, float(value))

    def _tell(self, outcome: Outcome) -> None:
        from optuna.trial import TrialState

        if outcome.run_dir is not None:
            self.study._storage.set_trial_user_attr(self.study.trials[outcome.number]._trial_id, "run",
                                                    outcome.run_dir.name)
        if outcome.state != "failed":
            self.failures = 0
        if outcome.state == "complete":
            self._report_history(outcome)
            self.study.tell(outcome.number, outcome.value)
            self.listener(events.Note(f"trial {outcome.number}: {self.sweep.spec.metric} {outcome.value:.4g}  "
                                      f"({self.finished()} of {self.sweep.trials} finished)"))
        elif outcome.state == "pruned":
            self.study.tell(outcome.number, state=TrialState.PRUNED)
            self.listener(events.Note(f"trial {outcome.number}: {outcome.detail}  "
                                      f"({self.finished()} of {self.sweep.trials} finished)"))
        else:
            self.study.tell(outcome.number, state=TrialState.FAIL)
            self.failures += 1
            self.listener(events.Warn(f"trial {outcome.number} failed: {outcome.detail}"))
            if self.failures >= FAILURES_IN_A_ROW:
                self.stop.set()
                raise RunError(f"{self.failures} trials in a row failed (the last: {outcome.detail}); stopping the "
                               "sweep", key="sweep")


def _run_of(trials_dir: Path, name: str, params: dict[str, Any]) -> Path | None:
    """The newest run directory of a trial (`<name>-<timestamp>`) that trained with the trial's values."""
    found = sorted(p.parent for p in trials_dir.glob(f"{name}-*/{layout.RUN_JSON}"))
    matching = [p for p in found if _same_values(_recorded(p), params)]
    return matching[-1] if matching else None


def _recorded(run_dir: Path) -> list[str] | None:
    """The `--set` texts a run recorded in run.json (None if it died before recording them)."""
    try:
        found = records.load_record(run_dir, "sweep").get("overrides")
    except RunError:
        return None
    return [str(s) for s in found] if isinstance(found, list) else None


def _own(recorded: list[str]) -> list[str]:
    """The values among a run's `--set` texts (not the name the sweep gave it)."""
    return [s for s in recorded if not s.startswith("name=")]


def _same_values(recorded: list[str] | None, params: dict[str, Any]) -> bool:
    """Whether a run trained with these values (the sweep passed each as `--set KEY=VALUE`)."""
    return recorded is not None and set(sets(params)) <= set(recorded)


def _settle(trials_dir: Path, name: str) -> None:
    """A trial's folders still `running` with their process gone (a SIGKILLed sweep) are marked interrupted: the
    trial is resumed from one of them or trained again in a new one, and none stays `running` forever."""
    for run_json in trials_dir.glob(f"{name}-*/{layout.RUN_JSON}"):
        try:
            record = records.load_record(run_json.parent, "sweep")
        except RunError:
            continue
        if record.get("status") == "running" and record.get("host") in (None, platform.node()) \
                and not process.alive(record.get("pid")):
            records.RunRecord(run_json.parent, record).finish("interrupted", "the sweep was killed during this run")


def _resumable(run_dir: Path) -> bool:
    return bool(state.saved_epoch(run_dir))


def _last_error(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("error:")]
    return lines[-1].removeprefix("error:").strip() if lines else ""


def _shown(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
