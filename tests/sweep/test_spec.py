"""A sweep's spec read and checked on its own (kcli.sweep.spec) and against its config (kcli.sweep.checks), before
any trial: TensorFlow-free."""

from __future__ import annotations

from pathlib import Path

import pytest

from kcli.errors import ConfigError
from kcli.sweep import spec as sweep_spec
from kcli.sweep.checks import check, logged_names
from tests.sweep.conftest import LR, write_project


def test_open_sweep_fills_name_direction_count_and_storage(project: Path, tmp_path: Path) -> None:
    sw = sweep_spec.open_sweep(project, None, tmp_path / "runs", ["fit.epochs=2"], None)
    assert (sw.name, sw.folder, sw.direction, sw.trials) == ("tiny-sweep", tmp_path / "runs" / "tiny-sweep",
                                                            "maximize", 2)
    assert sw.storage == f"sqlite:///{(tmp_path / 'runs' / 'tiny-sweep' / 'sweep.db').resolve()}"
    assert sw.overrides == ["fit.epochs=2"] and sw.config == project.resolve()
    assert sweep_spec.open_sweep(project, None, tmp_path / "runs", [], 7).trials == 7   # --trials wins
    assert not (tmp_path / "runs").exists()   # opening writes nothing


def test_a_changed_config_changes_the_digest_but_not_the_sweep_section(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    a = sweep_spec.open_sweep(write_project(tmp_path), None, tmp_path / "runs", [], None)
    b = sweep_spec.open_sweep(write_project(tmp_path, trials=5), None, tmp_path / "runs", [], None)
    c = sweep_spec.open_sweep(write_project(tmp_path), None, tmp_path / "runs", ["fit.epochs=3"], None)
    assert a.config_sha256 == b.config_sha256 != c.config_sha256


def test_a_grid_counts_every_combination(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    config = write_project(tmp_path, method="grid", trials=None, parameters={
        LR: {"low": 0.01, "high": 0.05, "step": 0.01}, "fit.epochs": {"low": 1, "high": 3},
        "model.layers[0].Dense.units": {"choices": [4, 8]}})
    sw = sweep_spec.open_sweep(config, None, tmp_path / "runs", [], None)
    assert sw.trials == 5 * 3 * 2
    assert sweep_spec.grid_values(sw.spec.parameters[LR], LR) == [0.01, 0.02, 0.03, 0.04, 0.05]
    assert sweep_spec.grid_values(sw.spec.parameters["fit.epochs"], "fit.epochs") == [1, 2, 3]


@pytest.mark.parametrize("sweep,key,message", [
    ({"parameters": {"name": {"choices": ["a", "b"]}}}, 'sweep.parameters.name',
     "'name' cannot be searched: a trial varies keys under seed, data, model, compile, fit"),
    ({"method": "grid", "parameters": {LR: {"low": 0.001, "high": 0.1}}}, f'sweep.parameters["{LR}"]',
     "method grid needs `choices`, an int range or a `step`"),
    ({"method": "grid", "parameters": {"fit.epochs": {"low": 1, "high": 10**6},
                                       "seed": {"low": 0, "high": 1}}}, 'sweep.parameters["fit.epochs"]',
     "method grid: 2e+06 combinations, more than 100000 (fit.epochs alone has 1e+06 values)"),
])
def test_a_space_that_cannot_be_searched_is_one_located_error(tmp_path: Path, sweep: dict, key: str,
                                                              message: str) -> None:
    pytest.importorskip("optuna")
    config = write_project(tmp_path, **sweep)
    with pytest.raises(ConfigError) as caught:
        sweep_spec.open_sweep(config, None, tmp_path / "runs", [], None)
    assert (caught.value.key, caught.value.file) == (key, config)
    assert caught.value.message.startswith(message)


def test_the_sweep_section_can_come_from_its_own_file(project: Path, tmp_path: Path) -> None:
    own = tmp_path / "space.yaml"
    own.write_text("sweep:\n  name: other\n  metric: loss\n  parameters:\n    fit.epochs: {choices: [1, 2]}\n")
    sw = sweep_spec.open_sweep(project, own, tmp_path / "runs", [], None)
    assert (sw.name, sw.direction, sw.trials, list(sw.spec.parameters)) == ("other", "minimize", 10, ["fit.epochs"])
    with pytest.raises(ConfigError, match="sweep file not found"):
        sweep_spec.open_sweep(project, tmp_path / "missing.yaml", tmp_path / "runs", [], None)


def test_sets_and_param_key_quote_as_key_paths_do() -> None:
    assert sweep_spec.sets({LR: 0.5, "fit.epochs": 2, "data.source": "csv"}) == \
        [f"{LR}=0.5", "fit.epochs=2", 'data.source="csv"']
    assert sweep_spec.param_key("fit.epochs") == 'sweep.parameters["fit.epochs"]'
    assert sweep_spec.param_key("seed") == "sweep.parameters.seed"


def test_without_optuna_the_sweep_says_how_to_install_it(project: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "optuna" else object())
    with pytest.raises(ConfigError, match=r"kcli sweep needs Optuna: pip install 'kcli-keras\[sweep\]'"):
        sweep_spec.open_sweep(project, None, tmp_path / "runs", [], None)


def test_check_passes_a_good_sweep_and_names_the_metric_it_cannot_log(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    check(sweep_spec.open_sweep(write_project(tmp_path), None, tmp_path / "runs", [], None))
    config = write_project(tmp_path, metric="val_acuracy")
    with pytest.raises(ConfigError) as caught:
        check(sweep_spec.open_sweep(config, None, tmp_path / "runs", [], None))
    assert caught.value.key == "sweep.metric" and caught.value.file == config.resolve()
    assert caught.value.message.startswith("'val_acuracy' is never logged (did you mean 'val_accuracy'?)")


def test_check_tries_every_choice_before_any_trial(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    config = write_project(tmp_path, parameters={"fit.epochs": {"choices": [1, -3]}})
    with pytest.raises(ConfigError) as caught:
        check(sweep_spec.open_sweep(config, None, tmp_path / "runs", [], None))
    assert caught.value.key == 'sweep.parameters["fit.epochs"]'
    assert caught.value.message.startswith("fit.epochs: ")


def test_logged_names_of_several_outputs_and_a_metric_of_the_users_own() -> None:
    from kcli.config.models import Config

    layers = {"model": {"input_shape": [4], "layers": ["Dense"]}}
    two = Config.model_validate({
        "model": {"inputs": [{"name": "x", "shape": [4]}],
                  "graph": [{"name": "a", "layer": "Dense", "inputs": ["x"]},
                            {"name": "b", "layer": "Dense", "inputs": ["x"]}], "output": ["a", "b"]},
        "compile": {"loss": {"a": "mse", "b": "mse"}, "metrics": {"a": ["mae"], "b": ["AUC"]}}})
    assert logged_names(two) == ["loss", "a_loss", "b_loss", "a_mae", "b_auc"]
    own = Config.model_validate({**layers, "compile": {"loss": "mse", "metrics": ["my.py:Score"]}})
    assert logged_names(own) is None   # only running it tells the name a class of the user's own logs under
