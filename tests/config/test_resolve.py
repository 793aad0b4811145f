"""Resolve: every default filled once, on a copy, with mistakes located to the file and line (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kcli.config.loading import load
from kcli.config.resolve import DEFAULT_STEPS_PER_EXECUTION, resolve
from kcli.errors import ConfigError, RunError

MODEL = "model: {input_shape: [4], layers: [Dense: {units: 2}]}\ncompile: {loss: mse}\n"


def _config(tmp_path: Path, text: str, name: str = "my run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_are_filled_on_a_copy(tmp_path: Path) -> None:
    loaded = load(_config(tmp_path, MODEL))
    cfg = resolve(loaded)
    assert cfg.name == "my-run" and isinstance(cfg.seed, int)
    assert cfg.data.name == "digits"
    assert cfg.compile.steps_per_execution == DEFAULT_STEPS_PER_EXECUTION
    assert cfg.save == ["keras", "h5", "weights", "savedmodel"]
    assert loaded.config.name is None and loaded.config.seed is None and loaded.config.save is None   # untouched


@pytest.mark.parametrize(("data", "expected"), [
    ("{source: npz, path: d.npz}", {"x_key": "x", "y_key": "y"}),
    ("{source: synthetic}", {"samples": 1000, "classes": 2}),
    ("{source: images, path: pics}", {"image_size": (256, 256), "color_mode": "rgb", "interpolation": "bilinear"}),
])
def test_each_source_gets_its_readers_defaults(tmp_path: Path, data: str, expected: dict) -> None:
    cfg = resolve(load(_config(tmp_path, f"data: {data}\n{MODEL}")))
    assert {k: getattr(cfg.data, k) for k in expected} == expected


def test_distribution_takes_one_step_per_execution(tmp_path: Path) -> None:
    assert resolve(load(_config(tmp_path, f"distribute: mirrored\n{MODEL}"))).compile.steps_per_execution == 1
    with pytest.raises(ConfigError) as caught:
        resolve(load(_config(tmp_path, f"distribute: mirrored\n{MODEL}", "spe.yaml"),
                     ["compile.steps_per_execution=4"]))
    assert str(caught.value).startswith("--set compile.steps_per_execution=4: compile.steps_per_execution: "
                                        "distribute: mirrored needs steps_per_execution 1")


def test_latest_run_is_resolved_by_the_callers_finder(tmp_path: Path) -> None:
    text = MODEL.replace("layers:", "init_from: latest:mlp, layers:")
    loaded = load(_config(tmp_path, text))
    assert resolve(loaded).model.init_from == "latest:mlp"   # no finder: kept (validate, sweeps)
    assert resolve(loaded, latest=lambda name: tmp_path / "runs" / name).model.init_from == \
        str((tmp_path / "runs" / "mlp").resolve())

    def missing(name: str) -> Path:
        raise RunError(f"no completed run named {name!r}", key="model.init_from")

    with pytest.raises(RunError) as caught:
        resolve(loaded, latest=missing)
    assert str(caught.value) == f"{tmp_path / 'my run.yaml'}:1: model.init_from: no completed run named 'mlp'"


def test_whole_config_checks_name_the_line(tmp_path: Path) -> None:
    text = ("model:\n  input_shape: [4]\n  graph:\n    - {name: a, layer: ReLU}\n    - {name: b, layer: ReLU, "
            "inputs: [c]}\ncompile: {loss: mse}\n")
    with pytest.raises(ConfigError) as caught:
        resolve(load(_config(tmp_path, text)))
    assert str(caught.value) == f"{tmp_path / 'my run.yaml'}:5: model.graph[1].inputs: 'c' is not a node"


def test_h5_of_a_model_class_names_save(tmp_path: Path) -> None:
    text = "model: {input_shape: [4], class: net.py:Net}\ncompile: {loss: mse}\nsave: [h5]\n"
    with pytest.raises(ConfigError) as caught:
        resolve(load(_config(tmp_path, text)))
    assert str(caught.value).startswith(f"{tmp_path / 'my run.yaml'}:3: save: h5 cannot hold a subclassed")


def test_multi_worker_takes_several_steps_per_execution(tmp_path: Path) -> None:
    """Fewer function calls: TensorFlow keeps memory per all-reduce per call (distributed/multiworker_fix.py)."""
    config = _config(tmp_path, f"distribute: multi_worker\n{MODEL}")
    assert resolve(load(config)).compile.steps_per_execution == DEFAULT_STEPS_PER_EXECUTION
    assert resolve(load(config, ["compile.steps_per_execution=4"])).compile.steps_per_execution == 4
