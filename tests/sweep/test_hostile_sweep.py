"""`kcli sweep` against hostile or broken input: nothing a sweep folder's files say may make kcli create, write or
train something else; impossible ranges and options are one `error:` line before any folder exists."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kcli.config.keys import join_key
from tests.conftest import REPO, run_cli
from tests.helpers import assert_user_error, tiny_project

optuna = pytest.importorskip("optuna")

LR = "compile.optimizer.Adam.learning_rate"
SWEEP = {"metric": "val_accuracy", "method": "random", "seed": 1, "trials": 1,
         "parameters": {LR: {"low": 0.001, "high": 0.1, "log": True}}}


def project(folder: Path, epochs: int = 1, **sweep: Any) -> Path:
    return tiny_project(folder, compile={"optimizer": {"Adam": {"learning_rate": 0.01}}}, fit={"epochs": epochs},
                        save=["keras"], sweep={**SWEEP, **sweep})


def opened(config: Path, runs: Path) -> Any:
    """The sweep as `kcli sweep` opens it, its folder and sweep.json written (no trial run)."""
    from kcli.sweep.record import write_record
    from kcli.sweep.spec import open_sweep

    sw = open_sweep(config, None, runs, [], None)
    write_record(sw)
    return sw


def open_study(sw: Any) -> Any:
    """The sweep's study as the sweep command opens it."""
    from kcli.sweep.study import open_study

    return open_study(sw)


def dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- 6: ranges, grids and options ----

@pytest.mark.parametrize("param,expected", [
    ({"low": float("-inf"), "high": 0.1}, f'sweep.parameters["{LR}"]: `low` must be a finite number, not -inf'),
    ({"low": 0.001, "high": float("inf")}, "`high` must be a finite number, not inf"),
    ({"low": float("nan"), "high": 0.1}, "`low` must be a finite number, not nan"),
    ({"low": 0.001, "high": 0.1, "step": 0}, "`step` must be above 0, not 0"),
    ({"low": 0.001, "high": 0.1, "step": -0.01}, "`step` must be above 0"),
])
def test_impossible_ranges_stop_before_a_folder(tmp_path: Path, param: dict, expected: str) -> None:
    result = run_cli("sweep", project(tmp_path, parameters={LR: param}), "--runs-dir", tmp_path / "runs")
    assert_user_error(result, expected)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("key,param,expected", [
    (LR, {"choices": [0.01, float("nan")]}, "choices must be finite numbers"),
    (LR, {"choices": [float("-inf")]}, "choices must be finite numbers"),
    ("data.batch_size", {"low": 1, "high": 10**30}, "data.batch_size: Input should be less than or equal to"),
    ("fit.epochs", {"choices": [1, "two"]}, "fit.epochs: Input should be a valid integer"),
])
def test_every_choice_and_both_ends_are_checked_first(tmp_path: Path, key: str, param: dict, expected: str) -> None:
    """A value the config refuses failed trial after trial (nan/inf choices reached the trial as text)."""
    result = run_cli("sweep", project(tmp_path, parameters={key: param}), "--runs-dir", tmp_path / "runs")
    assert join_key("sweep.parameters", key) + ":" in assert_user_error(result, expected)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("parameters,expected", [
    ({"fit.epochs": {"low": 1, "high": 10**15}, "fit.batch_size": {"low": 1, "high": 10**6}},
     'sweep.parameters["fit.epochs"]: method grid: 1e+21 combinations, more than 100000'),
    ({LR: {"low": 0.001, "high": 0.1, "step": 1e-12}}, "combinations, more than 100000"),
])
def test_an_astronomic_grid_is_one_line(tmp_path: Path, parameters: dict, expected: str) -> None:
    config = project(tmp_path, method="grid", trials=None, parameters=parameters)
    for trials in ([], ["--trials", "1"]):   # GridSampler lists every combination even for one trial
        assert_user_error(run_cli("sweep", config, "--runs-dir", tmp_path / "runs", *trials), expected)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("option", ["--jobs", "--trials"])
def test_a_bad_option_value_is_one_line(tmp_path: Path, option: str) -> None:
    result = run_cli("sweep", project(tmp_path), "--runs-dir", tmp_path / "runs", option, "0")
    assert_user_error(result, f"Invalid value for '{option}'")
    assert not (tmp_path / "runs").exists()


# ---- 4: parameter keys ----

@pytest.mark.parametrize("key,expected", [
    ("fit.epochs=1 #", "is not a config key path"),
    ("fit.epochs+", "is not a config key path"),
    (" fit.epochs", "is not a config key path"),
    ("fit..epochs", "empty key"),
    ("sweep.storage", "'sweep' cannot be searched: a trial varies keys under seed, data, model, compile, fit"),
    ("name", "'name' cannot be searched"),
    ("imports", "'imports' cannot be searched"),
    ("tracking.mlflow.uri", "'tracking' cannot be searched"),
])
def test_parameter_keys_are_trainable_config_keys(tmp_path: Path, key: str, expected: str) -> None:
    config = project(tmp_path, parameters={key: {"choices": [1, 2]}})
    line = assert_user_error(run_cli("sweep", config, "--runs-dir", tmp_path / "runs"), expected)
    assert join_key("sweep.parameters", key) + ":" in line
    assert not (tmp_path / "runs").exists()


def test_a_renamed_config_still_finds_its_trials(tmp_path: Path) -> None:
    """`--set name=...` on the sweep came after the trial's own name, so the trial's run was not found and a
    completed trial was recorded as failed ("exit code 0")."""
    config = project(tmp_path)
    result = run_cli("sweep", config, "--runs-dir", tmp_path / "runs", "--set", "name=other")
    assert result.exit_code == 0, (result.stdout[-2000:], result.stderr)
    study = optuna.load_study(study_name="other-sweep", storage=f"sqlite:///{tmp_path / 'runs/other-sweep/sweep.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
    assert study.trials[0].user_attrs["run"].startswith("other-sweep-trial-0000-")


# ---- 3: two processes on one sweep ----

def test_two_processes_on_one_sweep_draw_different_values(tmp_path: Path) -> None:
    config = project(tmp_path, trials=4)
    first, second = open_study(opened(config, tmp_path / "runs")), open_study(opened(config, tmp_path / "runs"))
    a, b = first.ask(), second.ask()   # both started before either asked (each seeded the same)
    assert (a.number, b.number) == (0, 1)
    assert a.suggest_float(LR, 0.001, 0.1, log=True) != b.suggest_float(LR, 0.001, 0.1, log=True)
    # the seed still decides: trial 0 of the same sweep elsewhere draws the same value
    again = open_study(opened(config, tmp_path / "again")).ask()
    assert again.suggest_float(LR, 0.001, 0.1, log=True) == a.params[LR]


OPEN_AND_ASK = """import sys, time
from pathlib import Path
from kcli.sweep.record import write_record
from kcli.sweep.spec import open_sweep
from kcli.sweep.study import open_study
from optuna.distributions import FloatDistribution
config, runs, key, gate = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
sw = open_sweep(config, None, runs, [], None)
write_record(sw)
(gate / f"ready-{sys.argv[5]}").touch()
deadline = time.monotonic() + 60
while not (gate / "go").exists() and time.monotonic() < deadline:   # all open the study at once
    time.sleep(0.005)
open_study(sw).ask({key: FloatDistribution(0.001, 0.1, log=True)})
"""


def test_sweep_processes_starting_together_each_open_the_study_and_draw_their_own(tmp_path: Path) -> None:
    """Both created sweep.db's tables at once (IntegrityError in one), and drew the same values."""
    config = project(tmp_path, trials=4)
    gate = tmp_path / "gate"
    gate.mkdir()
    command = [sys.executable, "-c", OPEN_AND_ASK, str(config), str(tmp_path / "runs"), LR, str(gate)]
    procs = [subprocess.Popen([*command, str(i)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(6)]
    try:
        deadline = time.monotonic() + 120
        while len(list(gate.glob("ready-*"))) < 6 and time.monotonic() < deadline \
                and all(p.poll() is None for p in procs):
            time.sleep(0.01)
        (gate / "go").touch()
        errors = [p.communicate(timeout=120)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0] * 6, errors
    study = optuna.load_study(study_name="tiny-sweep", storage=f"sqlite:///{tmp_path / 'runs/tiny-sweep/sweep.db'}")
    assert len({t.params[LR] for t in study.trials}) == 6


# ---- 1: showing reads only ----

def test_show_opens_only_the_folders_study_read_only(tmp_path: Path) -> None:
    sw = opened(project(tmp_path), tmp_path / "runs")
    study = open_study(sw)
    for value in (0.5, 0.7):
        trial = study.ask()
        trial.suggest_float(LR, 0.001, 0.1, log=True)
        study.tell(trial, value)
    before = files(sw.folder)
    shown = run_cli("sweep", "show", sw.folder)
    assert shown.exit_code == 0 and "best: trial 1" in shown.stdout, (shown.stdout, shown.stderr)
    assert files(sw.folder) == before   # no best.yaml, no journal, the database untouched

    spec = json.loads((sw.folder / "sweep.json").read_text())
    elsewhere = tmp_path / "elsewhere" / "x.db"
    elsewhere.parent.mkdir()
    (sw.folder / "sweep.json").write_text(json.dumps({**spec, "storage": f"sqlite:///{elsewhere}"}))
    for command in (["sweep", "show"], ["plot"]):
        assert_user_error(run_cli(*command, sw.folder), f"keeps the study at 'sqlite:///{elsewhere}'")
    assert not elsewhere.exists()


@pytest.mark.parametrize("damage,expected", [
    ("empty db", "no study 'tiny-sweep' in"),
    ("no db", "sweep.db is missing"),
    ("spec not json", "is not a kcli sweep record"),
    ("spec storage a number", "is not a kcli sweep record"),
])
def test_show_of_a_damaged_sweep_is_one_line(tmp_path: Path, damage: str, expected: str) -> None:
    sw = opened(project(tmp_path), tmp_path / "runs")
    open_study(sw)
    spec = json.loads((sw.folder / "sweep.json").read_text())
    {"empty db": lambda: (sw.folder / "sweep.db").write_bytes(b""),
     "no db": lambda: (sw.folder / "sweep.db").unlink(),
     "spec not json": lambda: (sw.folder / "sweep.json").write_text("{"),
     "spec storage a number": lambda: (sw.folder / "sweep.json").write_text(json.dumps({**spec, "storage": 1})),
     }[damage]()
    before = files(sw.folder)
    assert_user_error(run_cli("sweep", "show", sw.folder), expected)
    assert files(sw.folder) == before


# ---- 2: the study and the trial folders ----

def fake_trial_folder(sw: Any, number: int, **record: Any) -> Path:
    folder = sw.folder / "trials" / f"{sw.name}-trial-{number:04d}-20200101-000000"
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"name": folder.name, "host": platform.node(), **record}))
    return folder


def test_a_study_that_no_longer_matches_the_folders_is_refused(tmp_path: Path) -> None:
    config = project(tmp_path)
    sw = opened(config, tmp_path / "runs")
    trained = fake_trial_folder(sw, 0, status="completed", pid=dead_pid(),
                                overrides=[f"{LR}=0.0074", f"name={sw.name}-trial-0000"])
    (sw.folder / "sweep.db").write_bytes(b"")   # `: > sweep.db`
    result = run_cli("sweep", config, "--runs-dir", tmp_path / "runs")
    assert_user_error(result, f"no longer matches the trial folders: {trained} trained with {LR}=0.0074 but the "
                              "study has no trial 0")
    assert not list((sw.folder / "trials").glob("*.log"))   # no trial ran

    study = open_study(sw)   # a study whose trial 0 drew other values than the folder trained with
    trial = study.ask()
    trial.suggest_float(LR, 0.001, 0.1, log=True)
    study.tell(trial, 0.5)
    assert_user_error(run_cli("sweep", config, "--runs-dir", tmp_path / "runs"), "but the study says trial 0 has")


# ---- 5: a folder a killed sweep left running ----

def test_a_killed_trials_folder_does_not_stay_running(tmp_path: Path) -> None:
    """SIGKILL right after the trial's run.json appeared: no values recorded, no epoch saved."""
    config = project(tmp_path)
    sw = opened(config, tmp_path / "runs")
    study = open_study(sw)
    trial = study.ask()
    trial.suggest_float(LR, 0.001, 0.1, log=True)
    trial.set_user_attr("owner", {"host": platform.node(), "pid": dead_pid()})
    left = fake_trial_folder(sw, 0, status="running", pid=dead_pid())
    result = run_cli("sweep", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, (result.stdout[-2000:], result.stderr)
    assert "trial 0: running again" in result.stdout
    assert json.loads((left / "run.json").read_text())["status"] == "interrupted"
    done = open_study(sw).trials
    assert [t.state for t in done] == [optuna.trial.TrialState.COMPLETE] and done[0].user_attrs["run"] != left.name
    new = sw.folder / "trials" / done[0].user_attrs["run"]
    assert json.loads((new / "run.json").read_text())["status"] == "completed"
