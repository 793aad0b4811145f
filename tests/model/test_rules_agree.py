"""`kcli validate` (Keras's source, no TensorFlow) and the model build (live Keras) apply one set of rules, owned by
kcli.config.keras_rules: the same mistake is the same line from both. Also the one `layers` loop of kcli.model.build,
for a Sequential stack and for the same stack on a table's columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import pytest

from kcli.config import loading as config_mod
from kcli.config.check import check
from kcli.config.code import load_imports
from kcli.config.models import Config
from kcli.config.resolve import resolve
from kcli.errors import ConfigError
from kcli.model.build import build
from kcli.model.compile import compile_model
from kcli.training import callbacks
from tests.helpers import tiny_project


def _config(folder: Path, **sections: Any) -> Config:
    return resolve(config_mod.load(tiny_project(folder, **sections)))


def _built(cfg: Config) -> keras.Model:
    registry = load_imports(cfg.imports)
    model = build(cfg, registry)
    compile_model(model, cfg.compile, registry)
    return model


MISTAKES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown layer", {"model": {"layers": [{"Dence": {"units": 3}}]}},
     "model.layers[0].Dence: unknown layer 'Dence' (did you mean 'Dense'?); layers come from keras.layers or from "
     "`imports`"),
    ("unknown argument", {"model": {"layers": [{"Dense": {"unitz": 3}}]}},
     "model.layers[0].Dense: unknown argument 'unitz' (did you mean 'units'?)"),
    ("missing argument", {"model": {"layers": [{"Dense": {"activation": "relu"}}]}},
     "model.layers[0].Dense: missing required argument 'units'"),
    ("graph node", {"model": {"layers": None, "graph": [{"name": "out", "layer": {"Dense": {"unit": 3}}}]}},
     "model.graph[0].Dense: unknown argument 'unit' (did you mean 'units'?)"),
    ("unknown optimizer", {"compile": {"optimizer": "Adum"}},
     "compile.optimizer: unknown optimizer 'Adum' (did you mean 'Adam'?)"),
    ("lr twice", {"compile": {"optimizer": {"Adam": {"lr": 0.1, "learning_rate": 0.1}}}},
     "compile.optimizer.Adam: give `learning_rate` or its old alias `lr`, not both"),
    ("schedule", {"compile": {"optimizer": {"SGD": {"learning_rate": {"ExponentialDecai": {"decay_steps": 5}}}}}},
     "compile.optimizer.SGD.learning_rate: unknown learning-rate schedule 'ExponentialDecai' (did you mean "
     "'ExponentialDecay'?)"),
    ("schedule argument", {"compile": {"optimizer": {"SGD": {"learning_rate": {"ExponentialDecay": {
        "initial_learning_rate": 0.1, "decay_step": 5, "decay_rate": 0.9}}}}}},
     "compile.optimizer.SGD.learning_rate.ExponentialDecay: unknown argument 'decay_step' (did you mean "
     "'decay_steps'?)"),
    ("loss argument", {"compile": {"loss": {"CategoricalCrossentropy": {"from_logit": True}}}},
     "compile.loss.CategoricalCrossentropy: unknown argument 'from_logit' (did you mean 'from_logits'?)"),
    ("unknown metric", {"compile": {"metrics": ["acuracy"]}},
     "compile.metrics[0]: unknown metric 'acuracy' (did you mean 'accuracy'?)"),
    ("metric argument", {"compile": {"metrics": [{"AUC": {"curv": "PR"}}]}},
     "compile.metrics[0].AUC: unknown argument 'curv' (did you mean 'curve'?)"),
    ("application", {"model": {"input_shape": [32, 32, 3], "layers": [{"MobileNetV2": {"alhpa": 0.35}}]}},
     "model.layers[0].MobileNetV2: unknown argument 'alhpa' (did you mean 'alpha'?)"),
]


@pytest.mark.parametrize(("sections", "expected"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_validate_and_build_say_the_same(tmp_path: Path, sections: dict[str, Any], expected: str) -> None:
    cfg = _config(tmp_path, **sections)
    with pytest.raises(ConfigError) as static:
        check(cfg)
    with pytest.raises(ConfigError) as built:
        _built(cfg)
    assert str(static.value) == expected
    assert str(built.value) == expected


@pytest.mark.parametrize(("callback", "expected"), [
    ("EarlyStoping", "fit.callbacks[0].EarlyStoping: unknown callback 'EarlyStoping' (did you mean 'EarlyStopping'?)"),
    ({"EarlyStopping": {"patiense": 2}}, "fit.callbacks[0].EarlyStopping: unknown argument 'patiense' (did you mean "
     "'patience'?)"),
    ("BackupAndRestore", "fit.callbacks[0].BackupAndRestore: kcli checkpoints every epoch itself; continue a run with "
     "`kcli train --resume RUN` instead of BackupAndRestore"),
])
def test_validate_and_the_callbacks_say_the_same(tmp_path: Path, callback: Any, expected: str) -> None:
    cfg = _config(tmp_path, fit={"callbacks": [callback]})
    with pytest.raises(ConfigError) as static:
        check(cfg)
    with pytest.raises(ConfigError) as built:
        callbacks.check(cfg, load_imports(cfg.imports))
    assert str(static.value) == expected
    assert str(built.value) == expected


def test_a_shape_problem_names_the_layer_and_what_reaches_it(tmp_path: Path) -> None:
    cfg = _config(tmp_path, model={"layers": [{"Dense": {"units": 8}}, {"Conv1D": {"filters": 2, "kernel_size": 3}}]})
    check(cfg)   # shapes need Keras
    with pytest.raises(ConfigError, match=r"^model\.layers\[1\]\.Conv1D: .*\(its input has shape \(None, 8\)\)$"):
        _built(cfg)


def test_the_layers_stack_on_columns_is_the_same_stack(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b,label\n1,2,0\n3,4,1\n5,6,0\n")
    data = {"source": "csv", "path": "t.csv", "label": "label", "validation": None, "test": None, "one_hot": None,
            "columns": {"a": {"kind": "number"}, "b": {"kind": "number"}}}
    compile_ = {"loss": "sparse_categorical_crossentropy"}
    cfg = _config(tmp_path, data=data, compile=compile_,
                  model={"input_shape": None, "layers": [{"Dense": {"units": 8}}, {"Dense": {"units": 2}}]})
    model = _built(cfg)
    assert isinstance(model.input, dict) and sorted(model.input) == ["a", "b"]
    assert [type(layer).__name__ for layer in model.layers][-2:] == ["Dense", "Dense"]
    assert tuple(model.output.shape) == (None, 2)
    bad = _config(tmp_path, data=data, compile=compile_,
                  model={"input_shape": None, "layers": [{"Dense": {"units": 8}}, {"Reshape": {"target_shape": [3]}}]})
    with pytest.raises(ConfigError, match=r"^model\.layers\[1\]\.Reshape: .*\(its input has shape \(None, 8\)\)$"):
        _built(bad)
