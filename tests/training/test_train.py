"""kcli train end to end: the run directory, its artifacts reloading with the same predictions, history, status."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from kcli.files import atomic
from kcli.run import layout
from tests.conftest import only_run, run_cli, run_json, shipped_config
from tests.helpers import tiny_project

TINY = {   # tiny_project's config with a Dropout layer, the Keras 2 `lr` alias, validation every 2nd epoch
    "data": {"batch_size": 16, "one_hot": 3},
    "model": {"layers": [{"Dense": {"units": 8, "activation": "relu"}}, {"Dropout": {"rate": 0.1}},
                         {"Dense": {"units": 3}}]},
    "compile": {"optimizer": {"Adam": {"lr": 0.01}}},
    "fit": {"epochs": 5, "validation_freq": 2},
}
SPLITS = (("train.npz", 0, 48), ("val.npz", 1, 48), ("test.npz", 2, 48))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    folder = tmp_path_factory.mktemp("tiny")
    config = tiny_project(folder, SPLITS, **TINY)
    result = run_cli("train", config, "--runs-dir", folder / "runs")
    assert result.exit_code == 0, result.stderr
    return only_run(folder / "runs"), folder, result.stdout


def test_run_directory_layout(tiny_run: tuple[Path, Path, str]) -> None:
    run_dir, _, _ = tiny_run
    assert run_dir.name.startswith("tiny-")
    names = {p.name for p in run_dir.iterdir()}
    assert names == {"config.yaml", "summary.txt", "history.csv", "history.json", "history.png", "metrics.json",
                     "model.keras", "model.h5", "model.weights.h5", "saved_model", "run.json", "checkpoints"}
    assert {p.name for p in (run_dir / "checkpoints").iterdir()} == {"last.weights.h5", "best.weights.h5",
                                                                      "state.npz", "state.json"}
    record = run_json(run_dir)
    assert record["status"] == "completed" and record["epochs_completed"] == 5
    assert len(record["epoch_seconds"]) == 5 and all(t > 0 for t in record["epoch_seconds"])
    assert record["versions"]["tensorflow"] == tf.__version__ and record["versions"]["keras"] == keras.__version__
    assert record["started"] <= record["ended"]
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".tmp-")]


def test_output_order_and_content(tiny_run: tuple[Path, Path, str]) -> None:
    run_dir, _, out = tiny_run
    marks = ["seed 5", 'Model: "sequential"', "Total params: 67", "epoch 1/5", "History", "Test metrics",
             f"run completed: {run_dir}"]
    positions = [out.index(m) for m in marks]
    assert positions == sorted(positions), out


def test_history_has_empty_validation_cells_where_none_ran(tiny_run: tuple[Path, Path, str]) -> None:
    run_dir, _, _ = tiny_run
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert [bool(r["val_loss"]) for r in rows] == [False, True, False, True, False]
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    as_json = json.loads((run_dir / "history.json").read_text())
    assert as_json[0]["val_loss"] is None and as_json[1]["val_loss"] == pytest.approx(float(rows[1]["val_loss"]))


def test_resolved_config_reproduces_the_run(tiny_run: tuple[Path, Path, str], tmp_path: Path) -> None:
    run_dir, folder, _ = tiny_run
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["seed"] == 5 and saved["save"] == ["keras", "h5", "weights", "savedmodel"]
    assert saved["data"]["path"] == str(folder / "train.npz")  # absolute: runnable from anywhere
    assert saved["compile"]["steps_per_execution"] == 32
    again = run_cli("train", run_dir / "config.yaml", "--runs-dir", tmp_path)
    assert again.exit_code == 0, again.stderr
    rerun = only_run(tmp_path)
    assert (rerun / "history.csv").read_text() == (run_dir / "history.csv").read_text()


def test_artifacts_reload_with_the_same_predictions(tiny_run: tuple[Path, Path, str]) -> None:
    run_dir, folder, _ = tiny_run
    x = np.load(folder / "test.npz")["x"]
    reference = keras.models.load_model(run_dir / "model.keras")
    expected = reference.predict(x, verbose=0)
    from_h5 = keras.models.load_model(run_dir / "model.h5")
    np.testing.assert_allclose(from_h5.predict(x, verbose=0), expected, atol=1e-6)
    rebuilt = keras.models.clone_model(reference)
    rebuilt.load_weights(run_dir / "model.weights.h5")
    np.testing.assert_allclose(rebuilt.predict(x, verbose=0), expected, atol=1e-6)
    saved = tf.saved_model.load(str(run_dir / "saved_model"))
    np.testing.assert_allclose(saved.serve(tf.constant(x)).numpy(), expected, atol=1e-6)
    # the stored test metrics are those of the saved model
    metrics = json.loads((run_dir / "metrics.json").read_text())
    y = np.eye(3)[np.load(folder / "test.npz")["y"]]
    assert reference.evaluate(x, y, verbose=0, return_dict=True)["loss"] == pytest.approx(metrics["loss"], abs=1e-6)


def test_keras_file_keeps_its_optimizer_despite_h5_bug(tiny_run: tuple[Path, Path, str]) -> None:
    """Keras 3.15 strips the optimizer when saving .h5; kcli writes .keras first."""
    run_dir, _, _ = tiny_run
    model = keras.models.load_model(run_dir / "model.keras")
    assert type(model.optimizer).__name__ == "Adam"
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    assert int(model.optimizer.iterations) == 5 * 3  # 48 samples / batch 16, 5 epochs


def test_summary_numbers_of_the_reference_example() -> None:
    result = run_cli("summary", Path(__file__).parents[2] / "configs" / "seed_example.yaml")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    rows = [line for line in out.splitlines() if "(Dense)" in line or "(ReLU)" in line]
    assert [r.split("|")[-2].strip() for r in rows] == ["15", "0", "12", "0"]
    assert "Total params: 27" in out and "Trainable params: 27" in out and "Non-trainable params: 0" in out
    assert "sequential/dense/kernel" in out and "(4, 3)" in out and "sequential/dense_1/bias" in out


def test_nan_loss_fails_the_run_with_exit_1(tmp_path: Path) -> None:
    data = {"batch_size": 16, "one_hot": 3, "validation": None, "test": None}
    config = tiny_project(tmp_path, (("train.npz", 0, 64),), **{**TINY, "data": data,
                                                                 "compile": {"optimizer": {"Adam": {"lr": 1e30}}}})
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 1, result.stdout
    assert "NaN" in result.stderr and "Traceback" not in result.stderr
    run_dir = only_run(tmp_path / "runs")
    record = run_json(run_dir)
    assert record["status"] == "failed" and "NaN" in record["error"]
    assert not (run_dir / "model.keras").exists()


def test_run_directories_are_never_reused(tmp_path: Path) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5)
    first = layout.new_run_dir(tmp_path, "x", now)
    (first / "marker").write_text("earlier run")
    second = layout.new_run_dir(tmp_path, "x", now)
    third = layout.new_run_dir(tmp_path, "x", now)
    assert [first.name, second.name, third.name] == ["x-20260102-030405", "x-20260102-030405-2",
                                                     "x-20260102-030405-3"]
    assert (first / "marker").read_text() == "earlier run"


def test_a_failed_save_leaves_no_artifact(tmp_path: Path) -> None:
    target = tmp_path / "model.keras"
    with pytest.raises(RuntimeError):
        with atomic.target(target) as tmp:
            tmp.write_text("half written")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["seed_example.yaml", "digits_cnn.yaml", "custom_layer.yaml", "custom_model.yaml",
                                  "digits_residual.yaml", "digits_tfdata.yaml"])
def test_shipped_configs_train_and_reload(name: str, tmp_path: Path) -> None:
    config = shipped_config(name, tmp_path, fit={"epochs": 2})
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    run_dir = only_run(tmp_path / "runs")
    record = run_json(run_dir)
    assert record["status"] == "completed"
    classes = {}
    for copied in record["imports"]["files"]:  # the user's code is copied into the run
        assert (run_dir / copied).is_file()
    for py in tmp_path.glob("*.py"):
        namespace: dict = {}
        exec(compile(py.read_text(), str(py), "exec"), namespace)
        classes.update({k: v for k, v in namespace.items() if isinstance(v, type)})
    model = keras.models.load_model(run_dir / "model.keras", custom_objects=classes)
    input_shape = yaml.safe_load((run_dir / "config.yaml").read_text())["model"]["input_shape"]
    x = np.random.default_rng(0).normal(size=(5, *input_shape)).astype("float32")
    expected = model.predict(x, verbose=0)
    saved = tf.saved_model.load(str(run_dir / "saved_model"))
    np.testing.assert_allclose(saved.serve(tf.constant(x)).numpy(), expected, atol=1e-5)
    if "h5" in record["artifacts"]:
        from_h5 = keras.models.load_model(run_dir / "model.h5", custom_objects=classes)
        np.testing.assert_allclose(from_h5.predict(x, verbose=0), expected, atol=1e-5)
    else:
        assert name == "custom_model.yaml"


def test_quickstart_reaches_095_test_accuracy(tmp_path: Path) -> None:
    config = Path(__file__).parents[2] / "configs" / "digits_mlp.yaml"
    result = run_cli("train", config, "--runs-dir", tmp_path)
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((only_run(tmp_path) / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.95, metrics
