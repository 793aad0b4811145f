"""The sweep's Optuna study (kcli.sweep.study) and its folder record (kcli.sweep.record), without any trial run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kcli.errors import ConfigError, RunError
from kcli.sweep import record, study
from kcli.sweep.spec import Sweep, open_sweep
from tests.sweep.conftest import LR, write_project

optuna = pytest.importorskip("optuna")


def opened(config: Path, runs: Path) -> Sweep:
    sw = open_sweep(config, None, runs, [], None)
    record.write_record(sw)
    return sw


def test_distributions_follow_the_parameters(tmp_path: Path) -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    config = write_project(tmp_path, parameters={
        LR: {"low": 0.001, "high": 0.1, "log": True}, "fit.epochs": {"low": 1, "high": 5, "step": 2},
        "model.layers[0].Dense.units": {"choices": [4, 8]}})
    found = study.distributions(open_sweep(config, None, tmp_path / "runs", [], None).spec)
    assert found == {LR: FloatDistribution(0.001, 0.1, log=True),
                     "fit.epochs": IntDistribution(1, 5, step=2),
                     "model.layers[0].Dense.units": CategoricalDistribution([4, 8])}


def test_a_seeded_sweep_draws_per_trial_the_same_values_anywhere(tmp_path: Path) -> None:
    config = write_project(tmp_path)
    first, second = (study.open_study(opened(config, tmp_path / "runs")) for _ in range(2))   # one shared study
    elsewhere = study.open_study(opened(config, tmp_path / "elsewhere"))
    space = study.distributions(open_sweep(config, None, tmp_path, [], None).spec)
    a, b, c = first.ask(space), second.ask(space), elsewhere.ask(space)
    assert (a.number, b.number, c.number) == (0, 1, 0)
    assert a.params[LR] != b.params[LR] and a.params[LR] == c.params[LR]


def test_a_grid_visits_every_combination_once(tmp_path: Path) -> None:
    config = write_project(tmp_path, method="grid", trials=None,
                           parameters={"fit.epochs": {"choices": [1, 2]}, "seed": {"low": 0, "high": 1}})
    sw = opened(config, tmp_path / "runs")
    opened_study = study.open_study(sw)
    drawn = [opened_study.ask(study.distributions(sw.spec)).params for _ in range(sw.trials)]
    assert sorted((p["fit.epochs"], p["seed"]) for p in drawn) == [(1, 0), (1, 1), (2, 0), (2, 1)]


def test_the_record_refuses_another_sweep_in_its_folder(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    sw = opened(write_project(tmp_path), runs)
    written = json.loads((sw.folder / "sweep.json").read_text())
    assert (written["name"], written["trials"], written["direction"]) == ("tiny-sweep", 2, "maximize")
    opened(write_project(tmp_path, trials=9), runs)   # only the number of trials may change
    with pytest.raises(ConfigError, match="holds a sweep with a different direction, sweep; give this one another"):
        opened(write_project(tmp_path, metric="val_loss"), runs)
    with pytest.raises(ConfigError, match=r"different config \(its contents changed\)"):
        record.write_record(open_sweep(write_project(tmp_path), None, runs, ["fit.epochs=4"], None))
    (sw.folder / "sweep.json").write_text("[1]")
    with pytest.raises(ConfigError, match="is damaged"):
        opened(write_project(tmp_path), runs)


def test_find_looks_in_the_folder_then_under_runs_dir(tmp_path: Path) -> None:
    sw = opened(write_project(tmp_path), tmp_path / "runs")
    assert record.find(str(sw.folder), tmp_path / "elsewhere") == sw.folder
    assert record.find("tiny-sweep", tmp_path / "runs") == tmp_path / "runs" / "tiny-sweep"
    assert record.is_sweep("tiny-sweep", tmp_path / "runs") and not record.is_sweep("tiny", tmp_path / "runs")
    with pytest.raises(RunError, match="no sweep 'nope' "):
        record.find("nope", tmp_path / "runs")


def study_with_trials(sw: Sweep, values: list[float | None]) -> Any:
    """The sweep's study with one trial per value (None: left running)."""
    opened_study = study.open_study(sw)
    for value in values:
        trial = opened_study.ask(study.distributions(sw.spec))
        trial.set_user_attr("run", f"run-{trial.number}")
        if value is not None:
            opened_study.tell(trial, value)
    return opened_study


def test_results_open_the_folders_study_read_only(tmp_path: Path) -> None:
    sw = opened(write_project(tmp_path), tmp_path / "runs")
    study_with_trials(sw, [0.5, 0.7])
    before = (sw.folder / "sweep.db").read_bytes()
    spec, found = record.results(sw.folder)
    assert (spec["name"], spec["metric"], spec["direction"], list(spec["parameters"])) == \
        ("tiny-sweep", "val_accuracy", "maximize", [LR])
    assert [t.value for t in found.trials] == [0.5, 0.7]
    assert (sw.folder / "sweep.db").read_bytes() == before


def test_results_refuse_a_study_kept_elsewhere(tmp_path: Path) -> None:
    sw = opened(write_project(tmp_path, storage=f"sqlite:///{tmp_path / 'other.db'}"), tmp_path / "runs")
    with pytest.raises(RunError, match="`kcli sweep show` opens only"):
        record.results(sw.folder)
    assert not (tmp_path / "other.db").exists()   # refused, never opened
