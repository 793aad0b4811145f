"""README promises that had no test of their own: each test fails if its promise breaks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from kcli.model.load import load_model
from kcli.run import find
from tests.conftest import run_cli, run_json, write_config
from tests.helpers import assert_user_error, train_ok

PROMISES = """\
name: promises
seed: 8
data:
  source: npz
  path: data.npz
  x_key: features
  y_key: target
  validation_split: 0.25
  batch_size: 8
model: {input_shape: [3], layers: [{Dense: {units: 4, activation: relu}}, {Dense: {units: 1}}]}
compile: {optimizer: {SGD: {learning_rate: 0.05}}, loss: mse, metrics: [mae]}
fit:
  epochs: 6
  validation_freq: 2
  callbacks: [{ReduceLROnPlateau: {monitor: val_loss, factor: 0.5, patience: 0, min_delta: 1000}}]
"""


@pytest.fixture(scope="module")
def promised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("promises")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(48, 3)).astype(np.float32)
    np.savez(folder / "data.npz", features=x, target=(x @ np.array([1.0, -2.0, 0.5])).astype(np.float32))
    with _no_warnings():   # no "monitor not available" warnings on the epochs without validation
        return train_ok(write_config(folder, PROMISES), folder / "runs")


class _no_warnings:  # noqa: N801 - a context manager read like a statement
    def __enter__(self) -> None:
        import warnings
        self._catch = warnings.catch_warnings(record=True)
        self.caught = self._catch.__enter__()
        warnings.simplefilter("always")

    def __exit__(self, *exc: object) -> None:
        self._catch.__exit__(*exc)
        relevant = [w for w in self.caught if "monitor" in str(w.message).lower()]
        assert not relevant, [str(w.message) for w in relevant]


def test_mse_alias_loss_reloads_from_h5(promised: Path) -> None:
    model = keras.models.load_model(promised / "model.h5")
    x = np.load(promised.parent.parent / "data.npz")["features"][:5]
    reference = keras.models.load_model(promised / "model.keras")
    np.testing.assert_allclose(model.predict(x, verbose=0), reference.predict(x, verbose=0), atol=1e-6)


def test_reduce_lr_on_a_val_monitor_acts_on_validation_epochs_only(promised: Path) -> None:
    rows = json.loads((promised / "history.json").read_text())
    rates = [row["learning_rate"] for row in rows]
    assert [row["val_loss"] is not None for row in rows] == [False, True] * 3
    # epoch 2's val_loss is the first (an improvement); epoch 4's does not improve by min_delta, so the rate is
    # halved after epoch 4 (and again after 6); epochs without validation never count (patience 0)
    assert rates == pytest.approx([0.05] * 4 + [0.025] * 2)
    assert "val_learning_rate" not in (promised / "history.csv").read_text()


def test_evaluate_falls_back_to_validation_and_takes_other_files(promised: Path, tmp_path: Path) -> None:
    result = run_cli("evaluate", promised)
    assert result.exit_code == 0, result.stderr
    assert (promised / "eval-validation.json").is_file() and "on validation (12 examples)" in result.stdout
    x = np.random.default_rng(5).normal(size=(6, 3)).astype(np.float32)
    y = x @ np.array([1.0, -2.0, 0.5], np.float32)
    (tmp_path / "more.csv").write_text("p,q,r,goal\n" + "".join(f"{a},{b},{c},{t}\n" for (a, b, c), t in zip(x, y)))
    result = run_cli("evaluate", promised, "--data", tmp_path / "more.csv", "--label", "goal")
    assert result.exit_code == 0, result.stderr
    expected = keras.models.load_model(promised / "model.keras").evaluate(x, y, verbose=0, return_dict=True)
    written = json.loads((promised / "eval-more.json").read_text())
    assert written["loss"] == pytest.approx(expected["loss"], abs=1e-5) and written["examples"] == 6


def test_predict_reads_the_runs_x_key(promised: Path, tmp_path: Path) -> None:
    x = np.ones((4, 3), np.float32)
    np.savez(tmp_path / "in.npz", features=x, target=np.arange(4.0))
    out = tmp_path / "p.csv"
    result = run_cli("predict", promised, "--input", tmp_path / "in.npz", "--output", out)
    assert result.exit_code == 0, result.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "target,output_0" and [line.split(",")[0] for line in lines[1:]] == ["0", "1", "2", "3"]


def test_summary_txt_holds_layers_counts_and_variables(promised: Path) -> None:
    text = (promised / "summary.txt").read_text()
    for expected in ("Dense", "(None, 4)", "(None, 1)", "Total params: 21", "Trainable params: 21",
                     "Non-trainable params: 0", "sequential/dense/kernel", "(3, 4)"):
        assert expected in text, expected


def test_runs_table_shows_the_test_metric(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    np.savez(tmp_path / "data.npz", features=x, target=x.sum(axis=1))
    config = write_config(tmp_path, PROMISES.replace("validation_split: 0.25", "test_split: 0.25")
                          .replace("validation_freq: 2", "validation_freq: 1")
                          .replace("  callbacks: [{ReduceLROnPlateau: {monitor: val_loss, factor: 0.5, patience: 0, "
                                   "min_delta: 1000}}]\n", ""))
    run_dir = train_ok(config, tmp_path / "runs")
    mae = json.loads((run_dir / "metrics.json").read_text())["mae"]
    result = run_cli("runs", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0
    row = next(line for line in result.stdout.splitlines() if run_dir.name in line)
    assert f"mae {mae:.4f}" in row and "completed" in row


def test_loss_names_match_case_and_underscore_insensitively(tmp_path: Path) -> None:
    np.savez(tmp_path / "data.npz", features=np.ones((8, 3), np.float32), target=np.zeros(8, np.float32))
    config = write_config(tmp_path, PROMISES.replace("loss: mse", "loss: Mean_Squared_ERROR")
                          .replace("validation_split: 0.25", "validation_split: 0.5"))
    run_dir = train_ok(config, tmp_path / "runs", "--set", "fit.epochs=1", "--set", "fit.callbacks=[]")
    loss = keras.models.load_model(run_dir / "model.keras").loss
    assert type(loss).__name__ == "MeanSquaredError"


def test_models_load_with_safe_mode(promised: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    real = keras.models.load_model

    def spy(*args: object, **kwargs: object) -> keras.Model:
        seen.append(bool(kwargs.get("safe_mode")))
        return real(*args, **kwargs)

    monkeypatch.setattr(keras.models, "load_model", spy)
    run = find.open_run(str(promised), promised.parent)
    load_model(run)
    assert seen == [True]


def test_resume_refuses_a_run_that_is_still_running(promised: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(promised, copy)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = run_json(copy)
        (copy / "run.json").write_text(json.dumps({**record, "status": "running", "pid": alive.pid}))
        assert_user_error(run_cli("train", "--resume", copy), f"is still running (pid {alive.pid})")
    finally:
        alive.kill()
        alive.wait()
