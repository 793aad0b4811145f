"""`kcli sweep`: Optuna searches over config keys, each trial an ordinary run; a killed sweep continues with no
trial lost or repeated; pruning; mistakes caught before any trial runs. (Trials are `kcli train` processes.)"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, run_cli
from tests.helpers import assert_user_error, tiny_project

optuna = pytest.importorskip("optuna")

SWEEP = {"metric": "val_accuracy", "method": "random", "seed": 1, "trials": 3,
         "parameters": {"compile.optimizer.Adam.learning_rate": {"low": 0.001, "high": 0.1, "log": True},
                        "model.layers[0].Dense.units": {"choices": [4, 8]}}}


def project(folder: Path, epochs: int = 2, **sweep: object) -> Path:
    return tiny_project(folder, compile={"optimizer": {"Adam": {"learning_rate": 0.01}}}, fit={"epochs": epochs},
                        save=["keras", "weights"], sweep={**SWEEP, **sweep})


def study(folder: Path) -> optuna.Study:
    spec = json.loads((folder / "sweep.json").read_text())
    return optuna.load_study(study_name=spec["name"], storage=spec["storage"])


def finished(folder: Path) -> list[optuna.trial.FrozenTrial]:
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return study(folder).get_trials(states=states)


@pytest.fixture(scope="module")
def first_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-trial sweep run 2 at a time; its folder."""
    folder = tmp_path_factory.mktemp("sweep")
    result = run_cli("sweep", project(folder), "--runs-dir", folder / "runs", "--jobs", "2")
    assert result.exit_code == 0, (result.stdout[-3000:], result.stderr)
    return folder / "runs" / "tiny-sweep"


def test_a_sweep_runs_its_trials_as_runs_and_shows_the_best(first_sweep: Path) -> None:
    folder = first_sweep
    trials = finished(folder)
    assert sorted(t.number for t in trials) == [0, 1, 2]
    run_dirs = sorted(p for p in (folder / "trials").iterdir() if p.is_dir())
    assert [p.name.rsplit("-", 2)[0] for p in run_dirs] == [f"tiny-sweep-trial-{i:04d}" for i in range(3)]
    for trial in trials:   # each trial is an ordinary run with the trial's values in its config
        run = folder / "trials" / trial.user_attrs["run"]
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        assert cfg["compile"]["optimizer"]["Adam"]["learning_rate"] == pytest.approx(
            trial.params["compile.optimizer.Adam.learning_rate"])
        assert cfg["model"]["layers"][0]["Dense"]["units"] == trial.params["model.layers[0].Dense.units"]
        history = json.loads((run / "history.json").read_text())
        assert trial.value == pytest.approx(max(r["val_accuracy"] for r in history))
        # every epoch's metric is kept as an intermediate value: later trials are pruned against them
        assert trial.intermediate_values == {r["epoch"] - 1: pytest.approx(r["val_accuracy"]) for r in history}
    best = max(trials, key=lambda t: t.value)
    shown = run_cli("sweep", "show", folder)
    assert shown.exit_code == 0 and f"best: trial {best.number}" in shown.stdout
    best_cfg = yaml.safe_load((folder / "best.yaml").read_text())
    assert best_cfg["model"]["layers"][0]["Dense"]["units"] == best.params["model.layers[0].Dense.units"]
    assert "sweep" not in best_cfg and run_cli("validate", folder / "best.yaml").exit_code == 0
    drawn = run_cli("plot", folder)   # the metric per trial and each parameter against it
    assert drawn.exit_code == 0 and (folder / "sweep.png").read_bytes().startswith(b"\x89PNG")


def _wait_for_training(folder: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run_json in folder.glob("trials/*/run.json"):
            with_state = (run_json.parent / "checkpoints" / "state.npz").is_file()
            if with_state and json.loads(run_json.read_text()).get("status") == "running":
                return
        time.sleep(0.05)
    raise AssertionError("no trial started training")


def test_a_killed_sweep_continues_without_losing_or_repeating_trials(tmp_path: Path) -> None:
    config = project(tmp_path, epochs=25, trials=2)
    runs = tmp_path / "runs"
    folder = runs / "tiny-sweep"
    command = [sys.executable, "-m", "kcli", "sweep", str(config), "--runs-dir", str(runs)]
    sweep = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_training(folder)
        sweep.send_signal(signal.SIGKILL)
        sweep.wait(timeout=30)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    deadline = time.monotonic() + 10   # the trial process dies with the sweep (PR_SET_PDEATHSIG)
    while time.monotonic() < deadline and _trainers(runs):
        time.sleep(0.1)
    assert not _trainers(runs)
    assert [t.state for t in study(folder).trials] == [optuna.trial.TrialState.RUNNING]

    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "trial 0: resuming" in result.stdout
    trials = study(folder).trials
    assert [t.number for t in trials] == [0, 1]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    run_dirs = sorted(p for p in (folder / "trials").iterdir() if p.is_dir())
    assert len(run_dirs) == 2   # trial 0 went on in its own directory
    assert len(json.loads((run_dirs[0] / "history.json").read_text())) == 25


def _trainers(runs: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"kcli train .*--runs-dir {runs}"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_a_lagging_trial_is_pruned(first_sweep: Path) -> None:
    folder = first_sweep
    config = folder.parent.parent / "config.yaml"
    existing = study(folder)
    dists = existing.trials[0].distributions
    for _ in range(5):   # earlier trials far better than anything this one reaches: the median pruner stops it
        existing.add_trial(optuna.trial.create_trial(
            params=existing.trials[0].params, distributions=dists, value=1.0,
            intermediate_values={0: 1.0, 1: 1.0, 2: 1.0}))
    result = run_cli("sweep", config, "--runs-dir", folder.parent, "--trials", "9")
    assert result.exit_code == 0, (result.stdout[-3000:], result.stderr)
    last = study(folder).trials[-1]
    assert last.number == 8 and len(finished(folder)) == 9
    assert last.state == optuna.trial.TrialState.PRUNED and last.user_attrs["pruned_at_epoch"] == 1
    run = folder / "trials" / last.user_attrs["run"]
    assert json.loads((run / "run.json").read_text())["pruned_at_epoch"] == 1
    assert len(json.loads((run / "history.json").read_text())) == 1
    assert "pruned" in run_cli("sweep", "show", folder).stdout


@pytest.mark.parametrize("sweep,expected", [
    ({"parameters": {"fit.epoch": {"choices": [1, 2]}}},
     "sweep.parameters[\"fit.epoch\"]: fit.epoch: unknown key 'epoch' in fit (did you mean 'epochs'?)"),
    ({"parameters": {"model.layers[0].Dense.unit": {"choices": [4]}}}, "unknown argument 'unit'"),
    ({"parameters": {"fit.epochs": {"low": 5, "high": 1}}}, "the range is empty: low (5) must be below high (1)"),
    ({"metric": "val_acuracy"}, "sweep.metric: 'val_acuracy' is never logged (did you mean 'val_accuracy'?)"),
    ({"method": "grid", "parameters": {"compile.optimizer.Adam.learning_rate": {"low": 0.001, "high": 0.1}}},
     "method grid needs `choices`, an int range or a `step`"),
])
def test_sweep_mistakes_stop_before_any_trial(tmp_path: Path, sweep: dict, expected: str) -> None:
    result = run_cli("sweep", project(tmp_path, **sweep), "--runs-dir", tmp_path / "runs")
    assert_user_error(result, expected)
    assert not (tmp_path / "runs").exists()


def test_logged_names_follow_keras() -> None:
    from kcli.config.models import Config
    from kcli.sweep.checks import logged_names

    cfg = Config.model_validate({
        "data": {"validation_split": 0.2},
        "model": {"input_shape": [4], "layers": ["Dense"]},
        "compile": {"loss": "mse", "metrics": ["mae", "AUC", "MeanSquaredError", {"Precision": {"name": "p"}}]}})
    assert logged_names(cfg) == ["loss", "mae", "auc", "mean_squared_error", "p",
                                       "val_loss", "val_mae", "val_auc", "val_mean_squared_error", "val_p"]


def test_a_changed_config_is_another_sweep(first_sweep: Path, tmp_path: Path) -> None:
    config = first_sweep.parent.parent / "config.yaml"
    changed = tmp_path / "config.yaml"
    raw = yaml.safe_load(config.read_text())
    raw["fit"]["epochs"] = 3
    changed.write_text(yaml.safe_dump(raw))
    for name in ("train.npz", "val.npz", "test.npz"):
        (tmp_path / name).write_bytes((config.parent / name).read_bytes())
    assert_user_error(run_cli("sweep", changed, "--runs-dir", first_sweep.parent),
                      "holds a sweep with a different config")
