"""One path rebase: every relative file a config names is relative to the file that names it, through `extends`
from another folder and in the file itself (TensorFlow-free: load and resolve only)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from kcli.config.loading import load
from kcli.config.models import Config
from kcli.config.resolve import resolve

BASE: dict[str, Any] = {"model": {"input_shape": [4], "layers": [{"Dense": {"units": 3}}]}, "compile": {"loss": "mse"}}


def _model(**extra: Any) -> dict[str, Any]:
    return {"model": {"input_shape": [4], **extra}}


def _file(ref: str) -> str:
    """The file part of a `file.py:Name` reference (or a path itself)."""
    return ref.rsplit(":", 1)[0] if ref.count(":") and not ref.endswith(":") else ref


def _only_key(mapping: dict[str, Any]) -> str:
    (key,) = mapping
    return key


# key -> (the config sections that name a relative file, the resolved value naming it)
CASES: dict[str, tuple[dict[str, Any], Callable[[Config], str]]] = {
    "data.path": ({"data": {"source": "npz", "path": "d.npz"}}, lambda c: c.data.path),
    "data.validation.path": ({"data": {"source": "npz", "path": "/elsewhere/d.npz", "validation": {"path": "v.npz"}}},
                             lambda c: c.data.validation.path),
    "data.test.path": ({"data": {"source": "npz", "path": "/elsewhere/d.npz", "test": {"path": "t.npz"}}},
                       lambda c: c.data.test.path),
    "data.function": ({"data": {"source": "python", "function": "data_fn.py:make"}}, lambda c: c.data.function),
    "imports": ({"imports": ["my_layers.py"]}, lambda c: c.imports[0]),
    "model.class": (_model(**{"class": "net.py:Net"}), lambda c: c.model.class_),
    "model.layers": (_model(layers=[{"my_layers.py:MyDense": {"units": 3}}]), lambda c: c.model.layers[0].name),
    "model.layers weights": (_model(layers=[{"MobileNetV2": {"weights": "w.h5"}}]),
                             lambda c: c.model.layers[0].args["weights"]),
    "model.graph layer": (_model(graph=[{"name": "a", "layer": {"my_layers.py:MyDense": {"units": 3}}}]),
                          lambda c: c.model.graph[0].layer.name),
    "model.graph weights": (_model(graph=[{"name": "a", "layer": {"MobileNetV2": {"weights": "w.h5"}}}]),
                            lambda c: c.model.graph[0].layer.args["weights"]),
    "model.init_from": (_model(layers=[{"Dense": {"units": 3}}], init_from="old.weights.h5"),
                        lambda c: c.model.init_from),
    "compile.optimizer": ({"compile": {"loss": "mse", "optimizer": "my_opt.py:MyOpt"}},
                          lambda c: c.compile.optimizer.name),
    "compile.optimizer schedule": (
        {"compile": {"loss": "mse", "optimizer": {"Adam": {"learning_rate": {"sched.py:Warm": {"steps": 2}}}}}},
        lambda c: _only_key(c.compile.optimizer.args["learning_rate"])),
    "compile.loss": ({"compile": {"loss": "my_loss.py:MyLoss"}}, lambda c: c.compile.loss.name),
    "compile.metrics": ({"compile": {"loss": "mse", "metrics": ["my_metric.py:MyMetric"]}},
                        lambda c: c.compile.metrics[0].name),
    "fit.callbacks": ({"fit": {"callbacks": ["my_cb.py:MyCallback"]}}, lambda c: c.fit.callbacks[0].name),
    "fit.callbacks schedule": ({"fit": {"callbacks": [{"LearningRateScheduler": {"schedule": "sched.py:lr"}}]}},
                               lambda c: c.fit.callbacks[0].args["schedule"]),
}


def _write(path: Path, content: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def _resolved(tmp_path: Path, base: dict[str, Any], child: dict[str, Any], sets: list[str] | None = None) -> Config:
    _write(tmp_path / "base" / "base.yaml", base)
    child_file = _write(tmp_path / "exp" / "child.yaml", {"extends": "../base/base.yaml", **child})
    return resolve(load(child_file, sets))


@pytest.mark.parametrize("key", CASES)
def test_a_relative_file_in_a_base_in_another_folder_is_relative_to_the_base(tmp_path: Path, key: str) -> None:
    sections, value = CASES[key]
    cfg = _resolved(tmp_path, {**BASE, **sections}, {})
    found = Path(_file(value(cfg)))
    assert found.parent == (tmp_path / "base").resolve(), (key, found)


@pytest.mark.parametrize("key", CASES)
def test_a_relative_file_in_the_extending_file_is_relative_to_it(tmp_path: Path, key: str) -> None:
    sections, value = CASES[key]
    cfg = _resolved(tmp_path, {k: v for k, v in BASE.items() if k not in sections}, sections)
    found = Path(_file(value(cfg)))
    assert found.parent == (tmp_path / "exp").resolve(), (key, found)


def test_a_set_path_is_relative_to_the_extending_file_and_names_stay_names(tmp_path: Path) -> None:
    cfg = _resolved(tmp_path, {**BASE, "data": {"source": "npz", "path": "d.npz"},
                               "compile": {"loss": "mse", "metrics": ["accuracy", "pkg.metrics:Mine"]}},
                    {}, ["data.path=other.npz"])
    assert cfg.data.path == str((tmp_path / "exp" / "other.npz").resolve())
    assert [m.name for m in cfg.compile.metrics] == ["accuracy", "pkg.metrics:Mine"]   # a module, not a file


def test_absolute_paths_and_latest_runs_are_kept(tmp_path: Path) -> None:
    cfg = _resolved(tmp_path, {**BASE, "data": {"source": "npz", "path": str(tmp_path / "abs.npz")},
                               "model": {**BASE["model"], "init_from": "latest:mlp"}}, {})
    assert cfg.data.path == str((tmp_path / "abs.npz").resolve())
    assert cfg.model.init_from == "latest:mlp"
