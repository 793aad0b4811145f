"""The sweep's running side without training: a finished trial's run folder read into its outcome, Optuna told,
progress told to the listener as events, and the trials' table returned (kcli.sweep.runner, kcli.sweep.search)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kcli import events
from kcli.errors import RunError
from kcli.sweep import record, runner, search, study
from kcli.sweep.spec import Sweep, open_sweep, sets
from tests.sweep.conftest import LR, write_project

optuna = pytest.importorskip("optuna")


@pytest.fixture
def sweep(tmp_path: Path) -> Sweep:
    sw = open_sweep(write_project(tmp_path), None, tmp_path / "runs", [], None)
    record.write_record(sw)
    return sw


def trial_folder(sw: Sweep, number: int, params: dict[str, Any], history: list[dict[str, Any]],
                 **run: Any) -> Path:
    """A trial's run folder as `kcli train` leaves it: run.json (with the --set values) and history.json."""
    folder = sw.folder / "trials" / f"{sw.name}-trial-{number:04d}-20260101-000000"
    folder.mkdir(parents=True)
    overrides = [*sets(params), f"name={sw.name}-trial-{number:04d}"]
    (folder / "run.json").write_text(json.dumps({"status": "completed", "overrides": overrides, **run}))
    (folder / "history.json").write_text(json.dumps(history))
    return folder


def test_a_finished_trials_folder_gives_its_best_epoch(sweep: Sweep) -> None:
    run = runner.Runner(sweep, 1)
    history = [{"epoch": 1, "val_accuracy": 0.25}, {"epoch": 2, "val_accuracy": 0.75}, {"epoch": 3, "loss": 1.0}]
    folder = trial_folder(sweep, 0, {LR: 0.01}, history)
    assert run._outcome(0, folder) == runner.Outcome(0, "complete", 0.75, folder)
    assert runner._run_of(sweep.folder / "trials", f"{sweep.name}-trial-0000", {LR: 0.01}) == folder
    assert runner._run_of(sweep.folder / "trials", f"{sweep.name}-trial-0000", {LR: 0.02}) is None


def test_a_pruned_or_silent_trial_is_no_value(sweep: Sweep) -> None:
    run = runner.Runner(sweep, 1)
    pruned = trial_folder(sweep, 0, {LR: 0.01}, [{"epoch": 1, "val_accuracy": 0.5}], pruned_at_epoch=1)
    assert run._outcome(0, pruned) == runner.Outcome(0, "pruned", None, pruned, "pruned after epoch 1")
    silent = trial_folder(sweep, 1, {LR: 0.02}, [{"epoch": 1, "loss": 0.5, "val_accuracy": None}])
    assert run._outcome(1, silent) == runner.Outcome(1, "failed", None, silent, "val_accuracy was never logged")


def test_outcomes_are_told_to_optuna_and_to_the_listener(sweep: Sweep) -> None:
    told = events.Collected()
    run = runner.Runner(sweep, 1, told)
    for _ in range(3):
        run.study.ask(study.distributions(sweep.spec))
    run._tell(runner.Outcome(0, "complete", 0.5, None))
    run._tell(runner.Outcome(1, "pruned", None, None, "pruned after epoch 1"))
    run._tell(runner.Outcome(2, "failed", None, None, "exit code 1"))
    assert [type(e) for e in told.events] == [events.Note, events.Note, events.Warn]
    assert [e.message for e in told.events] == ["trial 0: val_accuracy 0.5  (1 of 2 finished)",
                                                "trial 1: pruned after epoch 1  (2 of 2 finished)",
                                                "trial 2 failed: exit code 1"]
    assert [t.state.name for t in run.study.trials] == ["COMPLETE", "PRUNED", "FAIL"]


def test_failures_in_a_row_stop_the_sweep(sweep: Sweep) -> None:
    run = runner.Runner(sweep, 1)
    for number in range(runner.FAILURES_IN_A_ROW):
        run.study.ask(study.distributions(sweep.spec))
        if number < runner.FAILURES_IN_A_ROW - 1:
            run._tell(runner.Outcome(number, "failed", None, None, "exit code 1"))
    with pytest.raises(RunError, match="3 trials in a row failed \\(the last: bad\\); stopping the sweep"):
        run._tell(runner.Outcome(runner.FAILURES_IN_A_ROW - 1, "failed", None, None, "bad"))
    assert run.stop.is_set()


def test_a_folder_the_study_does_not_know_is_refused(sweep: Sweep) -> None:
    trial_folder(sweep, 0, {LR: 0.01}, [])
    with pytest.raises(RunError, match="trained with compile.optimizer.Adam.learning_rate=0.01 but the study has "
                                       "no trial 0"):
        runner.Runner(sweep, 1)._check_folders()


def test_the_last_error_line_of_a_trials_log(tmp_path: Path) -> None:
    log = tmp_path / "trial.log"
    log.write_text("epoch 1/2\nerror: first\nnoise\nerror: data.path: not found\n")
    assert runner._last_error(log) == "data.path: not found"
    log.write_text("Traceback ...\n")
    assert runner._last_error(log) == ""


def test_show_returns_the_trials_table(sweep: Sweep) -> None:
    opened = study.open_study(sweep)
    for value in (0.5, 0.75, None):
        trial = opened.ask(study.distributions(sweep.spec))
        trial.set_user_attr("run", f"run-{trial.number}")
        if value is not None:
            opened.tell(trial, value)
    table = search.show("tiny-sweep", sweep.folder.parent)
    assert (table.folder, table.name, table.metric, table.direction, table.best, table.best_file) == \
        (sweep.folder, "tiny-sweep", "val_accuracy", "maximize", 1, None)
    assert [(r["trial"], r["state"], r["value"], r["run"]) for r in table.rows] == \
        [(0, "complete", 0.5, "run-0"), (1, "complete", 0.75, "run-1"), (2, "running", None, "run-2")]
    assert all(set(r["params"]) == {LR} for r in table.rows) and table.rows[2]["seconds"] is None
    (sweep.folder / "best.yaml").write_text("name: best\n")
    assert search.show(sweep.folder, Path("elsewhere")).best_file == sweep.folder / "best.yaml"
