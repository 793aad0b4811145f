"""Long runs: kill and resume, Ctrl-C, callbacks from YAML, checkpoints, --set, validate, runs, progress."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from tests.conftest import REPO, only_run, run_cli, run_json, tiny_npz, write_config
from tests.helpers import assert_same_run, assert_same_weight_files

SIGNALLER = '''\
import os, signal
import keras


class Signaller(keras.callbacks.Callback):
    """Test helper: sends itself KCLI_TEST_SIGNAL at the end of epoch KCLI_TEST_EPOCH (before kcli saves it)."""

    def on_epoch_end(self, epoch, logs=None):
        if os.environ.get("KCLI_TEST_SIGNAL") and epoch + 1 == int(os.environ["KCLI_TEST_EPOCH"]):
            os.kill(os.getpid(), getattr(signal, os.environ["KCLI_TEST_SIGNAL"]))
'''

CONFIG = """\
name: long
seed: 21
imports: [signaller.py]
data:
  source: npz
  path: train.npz
  validation: {path: val.npz}
  batch_size: 8
  shuffle: true
  one_hot: true
model:
  input_shape: [4]
  layers:
    - Dense: {units: 16, activation: relu}
    - Dropout: {rate: 0.3}
    - Dense: {units: 3}
compile:
  optimizer: {Adam: {learning_rate: 0.01}}
  loss: {CategoricalCrossentropy: {from_logits: true}}
  metrics: [accuracy]
  steps_per_execution: 3
fit:
  epochs: 6
  validation_freq: 2
  callbacks: [Signaller]
"""


# SIGINT back to Python's KeyboardInterrupt handler inside the child (not with preexec_fn, which Python
# documents as unsafe in a threaded process such as one that imported TensorFlow): a test run launched in the
# background (`cmd &`) inherits SIGINT ignored, and a Python started so never raises KeyboardInterrupt.
_WITH_SIGINT = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                "sys.argv[0] = 'kcli'; runpy.run_module('kcli', run_name='__main__')")


def _kcli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _WITH_SIGINT, *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, **(env or {})}, timeout=300)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("long")
    tiny_npz(folder, "train.npz", n=60, seed=0)
    tiny_npz(folder, "val.npz", n=20, seed=1)
    (folder / "signaller.py").write_text(SIGNALLER)
    write_config(folder, CONFIG)
    return folder


@pytest.fixture(scope="module")
def reference(project: Path) -> Path:
    """The uninterrupted run (in this process: only the runs that get a signal need their own)."""
    result = run_cli("train", project / "config.yaml", "--runs-dir", project / "reference")
    assert result.exit_code == 0, result.stderr
    return only_run(project / "reference")


EACH_EPOCH = ("--set", "data.shuffle=each_epoch")
NO_PERIODIC = ("--set", "fit.checkpoint.interval=1000")


@pytest.fixture(scope="module")
def reference_each_epoch(project: Path) -> Path:
    """The uninterrupted run with kcli's own per-epoch shuffle."""
    result = run_cli("train", project / "config.yaml", *EACH_EPOCH, "--runs-dir", project / "reference-each-epoch")
    assert result.exit_code == 0, result.stderr
    return only_run(project / "reference-each-epoch")


def test_sigkill_then_resume_equals_an_uninterrupted_run(project: Path, reference: Path) -> None:
    """SIGKILL in epoch 3, resume: the same run as an uninterrupted one. With fit.checkpoint.interval 0 the killed
    run's last.weights.h5 already holds its last saved epoch (the default interval writes it every 10 s;
    state.npz is written every epoch either way, and test_best_snapshots_travel_through_a_kill resumes with the
    .weights.h5 files behind)."""
    runs_dir = project / "killed"
    proc = _kcli("train", project / "config.yaml", "--set", "fit.checkpoint.interval=0", "--runs-dir", runs_dir,
                 env={"KCLI_TEST_SIGNAL": "SIGKILL", "KCLI_TEST_EPOCH": "3"})
    assert proc.returncode == -9
    run_dir = only_run(runs_dir)
    assert run_json(run_dir)["status"] == "running"            # killed: it never got to say otherwise
    assert not (run_dir / "model.keras").exists()
    assert json.loads((run_dir / "checkpoints" / "state.json").read_text())["epoch"] == 2  # killed in epoch 3
    with np.load(run_dir / "checkpoints" / "state.npz") as state:
        kernel = state["arr_0"]          # the first Dense layer's kernel after epoch 2
    model = keras.models.load_model(reference / "model.keras")
    model.load_weights(run_dir / "checkpoints" / "last.weights.h5")
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), kernel)
    resumed = run_cli("train", "--resume", run_dir)   # the run's saved config has interval 0; in this process
    assert resumed.exit_code == 0, resumed.stderr
    record = run_json(run_dir)
    assert record["status"] == "completed" and record["resumed"][0]["epoch"] == 2
    assert [r["epoch"] for r in json.loads((run_dir / "history.json").read_text())] == [1, 2, 3, 4, 5, 6]
    assert_same_run(run_dir, reference)
    # the .weights.h5 files are written every fit.checkpoint.interval seconds; a resumed run still ends with
    # the right best epoch's weights (its snapshot travels in state.npz until written)
    assert run_json(run_dir)["best"] == run_json(reference)["best"]
    assert_same_weight_files(run_dir / "checkpoints" / "best.weights.h5", reference / "checkpoints" / "best.weights.h5")
    assert_same_weight_files(run_dir / "checkpoints" / "last.weights.h5", reference / "checkpoints" / "last.weights.h5")


BEST_BEHIND = (
    # loss with mode max: the best epoch is the first (the loss falls), so after epoch 2 it is behind; an interval
    # of 1000 s keeps best.weights.h5 unwritten until the end: only state.npz carries the best snapshot
    "--set", "fit.checkpoint={monitor: loss, mode: max, interval: 1000}",
    # EarlyStopping on val_loss (validated every 2nd epoch; it rises on this tiny set after epoch 2): its best
    # weights are epoch 2's, held in memory and restored at the end, and with patience 2 it stops after epoch 6
    # of 10. A resume after epoch 4 must carry both: the best weights, and `wait` (1; else it stops at 8)
    "--set", "fit.epochs=10",
    "--set", "fit.callbacks=[Signaller, {EarlyStopping: {monitor: val_loss, mode: min, patience: 2, "
             "restore_best_weights: true}}]",
)


def test_best_snapshots_travel_through_a_kill(project: Path) -> None:
    """A SIGKILL while the best checkpoint is behind the last epoch: the resumed run ends with the same best
    checkpoint, the same EarlyStopping-restored final weights and the same last.weights.h5 as an uninterrupted
    run; last.weights.h5 holds the last epoch, not the restored best."""
    result = run_cli("train", project / "config.yaml", *BEST_BEHIND, "--runs-dir", project / "best-reference")
    assert result.exit_code == 0, result.stderr
    reference = only_run(project / "best-reference")
    proc = _kcli("train", project / "config.yaml", *BEST_BEHIND, "--runs-dir", project / "best-killed",
                 env={"KCLI_TEST_SIGNAL": "SIGKILL", "KCLI_TEST_EPOCH": "5"})
    assert proc.returncode == -9
    run_dir = only_run(project / "best-killed")
    assert not (run_dir / "checkpoints" / "best.weights.h5").exists()
    with np.load(run_dir / "checkpoints" / "state.npz") as saved:
        info = json.loads(str(saved["info"]))
        assert (info["epoch"], info["best_epoch"]) == (4, 1) and "best_0" in saved.files
        assert "cb1_w0" in saved.files          # EarlyStopping's best weights (epoch 2's)
    assert json.loads((run_dir / "checkpoints" / "state.json").read_text())["callbacks"][1]["wait"] == 1
    assert run_cli("train", "--resume", run_dir).exit_code == 0
    assert len(json.loads((reference / "history.json").read_text())) == 6   # stopped early, after epoch 6
    assert run_json(run_dir)["best"] == run_json(reference)["best"]
    assert run_json(reference)["best"]["epoch"] == 1
    for name in ("best.weights.h5", "last.weights.h5"):
        assert_same_weight_files(run_dir / "checkpoints" / name, reference / "checkpoints" / name)
    assert_same_run(run_dir, reference)
    final = keras.models.load_model(reference / "model.keras")
    last = keras.models.clone_model(final)
    last.load_weights(reference / "checkpoints" / "last.weights.h5")
    assert any(not np.array_equal(a, b) for a, b in zip(final.get_weights(), last.get_weights()))


def test_keep_best_follows_the_mode(tmp_path: Path) -> None:
    """--keep-best with mode max keeps the epoch with the highest value (here: the first epoch's loss)."""
    tiny_npz(tmp_path, "train.npz", n=40, seed=0)
    config = write_config(tmp_path, """\
        seed: 4
        data: {source: npz, path: train.npz, one_hot: true}
        model: {input_shape: [4], layers: [{Dense: {units: 3}}]}
        compile: {optimizer: {Adam: {learning_rate: 0.05}}, loss: {CategoricalCrossentropy: {from_logits: true}}}
        fit: {epochs: 4, checkpoint: {monitor: loss, mode: max}}
        """)
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs", "--keep-best")
    assert result.exit_code == 0, result.stderr
    run_dir = only_run(tmp_path / "runs")
    losses = [row["loss"] for row in json.loads((run_dir / "history.json").read_text())]
    assert losses.index(max(losses)) == 0 and losses[-1] < losses[0]
    assert run_json(run_dir)["best"]["epoch"] == 1
    kept = keras.models.load_model(run_dir / "model.keras")
    first = keras.models.clone_model(kept)
    first.load_weights(run_dir / "checkpoints" / "best.weights.h5")
    for a, b in zip(kept.get_weights(), first.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert "restored the best weights (loss = " in result.stdout and "at epoch 1)" in result.stdout


def test_ctrl_c_stops_cleanly_and_tells_how_to_resume(project: Path, reference_each_epoch: Path) -> None:
    runs_dir = project / "interrupted"
    # an interval of 1000 s: no periodic .weights.h5 write can happen, so last.weights.h5 proves the Ctrl-C flush
    proc = _kcli("train", project / "config.yaml", *EACH_EPOCH, *NO_PERIODIC, "--runs-dir", runs_dir,
                 env={"KCLI_TEST_SIGNAL": "SIGINT", "KCLI_TEST_EPOCH": "4"})
    assert proc.returncode == 130, proc.stderr
    run_dir = only_run(runs_dir)
    assert run_json(run_dir)["status"] == "interrupted"
    assert (run_dir / "checkpoints" / "last.weights.h5").is_file()   # flushed on Ctrl-C
    assert f"kcli train --resume {run_dir}" in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"kcli train --resume {run_dir}" in errors[0] and "Traceback" not in proc.stderr
    # CONFIG may be given if it matches (with the same --set)
    resumed = run_cli("train", project / "config.yaml", *EACH_EPOCH, *NO_PERIODIC, "--resume", run_dir)
    assert resumed.exit_code == 0, resumed.stderr
    assert_same_run(run_dir, reference_each_epoch)


def test_resume_refusals(project: Path, reference: Path, tmp_path: Path) -> None:
    result = run_cli("train", "--resume", reference)
    assert result.exit_code == 2 and "is completed" in result.stderr
    other = write_config(project, CONFIG.replace("epochs: 6", "epochs: 8"), name="other.yaml")
    interrupted = tmp_path / reference.name
    import shutil
    shutil.copytree(reference, interrupted)
    record = run_json(interrupted)
    (interrupted / "run.json").write_text(json.dumps({**record, "status": "interrupted"}))
    result = run_cli("train", other, "--resume", interrupted)
    assert result.exit_code == 2 and "fit.epochs: 6 -> 8" in result.stderr
    state = interrupted / "checkpoints" / "state.npz"
    state.write_bytes(state.read_bytes()[:1000])   # truncated (a disk that filled, a copy cut short)
    result = run_cli("train", "--resume", interrupted)
    assert result.exit_code == 2 and "no usable training state to resume from" in result.stderr
    assert (interrupted / "model.keras").is_file()   # a refused resume removes nothing
    shutil.rmtree(interrupted / "checkpoints")
    result = run_cli("train", "--resume", interrupted)
    assert result.exit_code == 2 and "no usable training state to resume from" in result.stderr
    result = run_cli("train")
    assert result.exit_code == 2 and "--resume" in result.stderr


def test_checkpoints_and_keep_best(project: Path, reference: Path, tmp_path: Path) -> None:
    checkpoints = reference / "checkpoints"
    assert (checkpoints / "last.weights.h5").is_file() and (checkpoints / "best.weights.h5").is_file()
    best = run_json(reference)["best"]
    assert best["monitor"] == "val_loss" and best["epoch"] in (2, 4, 6)
    rows = json.loads((reference / "history.json").read_text())
    assert best["value"] == pytest.approx(min(r["val_loss"] for r in rows if r["val_loss"] is not None))
    result = run_cli("train", project / "config.yaml", "--runs-dir", tmp_path, "--keep-best",
                     "--set", "fit.checkpoint.monitor=accuracy")
    assert result.exit_code == 0, result.stderr
    run_dir = only_run(tmp_path)
    kept = run_json(run_dir)["best"]
    assert kept["monitor"] == "accuracy" and "restored the best weights" in result.stdout
    model = keras.models.load_model(run_dir / "model.keras")
    best_model = keras.models.clone_model(model)
    best_model.load_weights(run_dir / "checkpoints" / "best.weights.h5")
    for a, b in zip(model.get_weights(), best_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_shuffle_is_seeded_and_reproducible(project: Path, reference: Path, reference_each_epoch: Path,
                                            tmp_path: Path) -> None:
    result = run_cli("train", project / "config.yaml", "--runs-dir", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert_same_run(only_run(tmp_path), reference)
    # each_epoch is a different order from Keras's (which repeats one permutation under a seed)
    losses = [[r["loss"] for r in json.loads((run / "history.json").read_text())]
              for run in (reference, reference_each_epoch)]
    assert losses[0] != pytest.approx(losses[1], abs=1e-4)


# ---- callbacks from YAML ----

def _callback_run(folder: Path, callbacks: str, extra: str = "", epochs: int = 6, lr: str = "0.01") -> Path:
    tiny_npz(folder, "train.npz", n=48, seed=0)
    tiny_npz(folder, "val.npz", n=16, seed=1)
    config = write_config(folder, f"""\
        seed: 2
        data: {{source: npz, path: train.npz, validation: {{path: val.npz}}, batch_size: 16, one_hot: true}}
        model: {{input_shape: [4], layers: [{{Dense: {{units: 3}}}}]}}
        compile:
          optimizer: {{SGD: {{learning_rate: {lr}}}}}
          loss: {{CategoricalCrossentropy: {{from_logits: true}}}}
        fit:
          epochs: {epochs}
          callbacks: {callbacks}
        {extra}
        save: [keras]
        """)
    return config


def test_early_stopping_with_validation_every_other_epoch(tmp_path: Path) -> None:
    config = _callback_run(tmp_path, "[{EarlyStopping: {monitor: val_loss, patience: 1, min_delta: 10}}]",
                           epochs=12, extra="")
    text = config.read_text().replace("epochs: 12", "epochs: 12\n  validation_freq: 2")
    config.write_text(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    assert not [w for w in caught if "not available" in str(w.message)], [str(w.message) for w in caught]
    record = run_json(only_run(tmp_path / "runs"))
    # min_delta 10 never improves: the first validation (epoch 2) sets `best`, the next (epoch 4) stops it.
    assert record["status"] == "completed" and record["epochs_completed"] == 4


def test_reduce_lr_tensorboard_csvlogger_and_scheduler(tmp_path: Path) -> None:
    config = _callback_run(tmp_path, """
            - {ReduceLROnPlateau: {monitor: loss, factor: 0.5, patience: 0, min_delta: 10}}
            - TensorBoard
            - {CSVLogger: {filename: log.csv}}
            - TerminateOnNaN""", epochs=3)
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    run_dir = only_run(tmp_path / "runs")
    rows = json.loads((run_dir / "history.json").read_text())
    # epoch 1 improves on `best=inf`; from epoch 2 on, each epoch logs its rate and then halves it
    assert [r["learning_rate"] for r in rows] == pytest.approx([0.01, 0.01, 0.005], rel=1e-6)
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert len(list(csv.DictReader((run_dir / "log.csv").open()))) == 3


def test_learning_rate_scheduler_from_a_named_schedule(tmp_path: Path) -> None:
    config = _callback_run(tmp_path, "[{LearningRateScheduler: {schedule: {ExponentialDecay: "
                                     "{initial_learning_rate: 0.1, decay_steps: 1, decay_rate: 0.5}}}}]", epochs=3)
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    rows = json.loads((only_run(tmp_path / "runs") / "history.json").read_text())
    assert [r["learning_rate"] for r in rows] == pytest.approx([0.1, 0.05, 0.025], rel=1e-6)


def test_custom_callback_from_imports(tmp_path: Path) -> None:
    (tmp_path / "cb.py").write_text(
        "import keras, pathlib\n"
        "class Mark(keras.callbacks.Callback):\n"
        "    def __init__(self, path):\n        super().__init__(); self.path = path\n"
        "    def on_epoch_end(self, epoch, logs=None):\n"
        "        pathlib.Path(self.path).write_text(str(epoch + 1))\n")
    config = _callback_run(tmp_path, f"[{{Mark: {{path: {tmp_path / 'mark.txt'}}}}}]", epochs=2,
                           extra="imports: [cb.py]")
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "mark.txt").read_text() == "2"


@pytest.mark.parametrize("callbacks, expected", [
    ("[EarlyStoping]", "unknown callback 'EarlyStoping' (did you mean 'EarlyStopping'?)"),
    ("[{EarlyStopping: {patiense: 2}}]", "fit.callbacks[0].EarlyStopping: unknown argument 'patiense'"),
    ("[BackupAndRestore]", "--resume"),
])
def test_callback_errors(tmp_path: Path, callbacks: str, expected: str) -> None:
    config = _callback_run(tmp_path, callbacks)
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2 and expected in result.stderr, result.stderr
    assert not (tmp_path / "runs").exists()
    checked = run_cli("validate", config)     # the same verdict without TensorFlow
    assert (checked.exit_code, checked.stderr) == (2, result.stderr)


def test_monitor_that_is_never_logged(tmp_path: Path) -> None:
    config = _callback_run(tmp_path, "[{EarlyStopping: {monitor: val_acc}}]", epochs=2)
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2 and "monitor 'val_acc' is never logged" in result.stderr
    assert not (tmp_path / "runs").exists()   # caught before a run directory exists


# ---- --set, validate, runs, progress ----

def test_set_overrides_are_applied_and_recorded(tmp_path: Path) -> None:
    config = _callback_run(tmp_path, "[]", epochs=5)
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs", "--set", "fit.epochs=2",
                     "--set", "model.layers[0].Dense.units=3", "--set", "data.batch_size=12")
    assert result.exit_code == 0, result.stderr
    run_dir = only_run(tmp_path / "runs")
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["fit"]["epochs"] == 2 and saved["data"]["batch_size"] == 12
    assert run_json(run_dir)["overrides"] == ["fit.epochs=2", "model.layers[0].Dense.units=3", "data.batch_size=12"]
    assert run_json(run_dir)["epochs_completed"] == 2


@pytest.mark.parametrize("override, expected", [
    ("fit.epoch=3", "--set fit.epoch=3: fit.epoch: unknown key 'epoch' in fit (did you mean 'epochs'?)"),
    ("model.layers[5].Dense.units=3", "model.layers has 1 entries"),
    ("model.layers[0].Dense.unit=3", "--set model.layers[0].Dense.unit=3: model.layers[0].Dense: unknown argument"),
    ("fit.epochs", "expected KEY=VALUE"),
    ("fit.epochs=[1", "not valid YAML"),
    ("fit.epochs=many", "--set fit.epochs=many: fit.epochs"),
])
def test_set_errors(tmp_path: Path, override: str, expected: str) -> None:
    config = _callback_run(tmp_path, "[]")
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs", "--set", override)
    assert result.exit_code == 2, result.stdout
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_validate(tmp_path: Path) -> None:
    config = _callback_run(tmp_path, "[]")
    result = run_cli("validate", config)
    assert result.exit_code == 0 and "valid" in result.stdout
    printed = run_cli("validate", config, "--print", "--set", "fit.epochs=9")
    assert printed.exit_code == 0
    resolved = yaml.safe_load(printed.stdout)
    assert resolved["fit"]["epochs"] == 9 and isinstance(resolved["seed"], int)
    assert resolved["data"]["path"] == str(tmp_path / "train.npz")
    bad = run_cli("validate", config, "--set", "model.layers[0].Dense.unit=3")
    assert bad.exit_code == 2 and "unknown argument 'unit'" in bad.stderr and "--set" in bad.stderr
    (tmp_path / "train.npz").unlink()
    missing = run_cli("validate", config)
    assert missing.exit_code == 2 and "data.path: data file not found" in missing.stderr


def test_runs_table(project: Path, reference: Path) -> None:
    result = run_cli("runs", "--runs-dir", reference.parent)
    assert result.exit_code == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if reference.name in line)
    assert "completed" in line and "val_loss" in line and " 6 " in line and "ago" in line
    empty = run_cli("runs", "--runs-dir", project / "nothing-here")
    assert empty.exit_code == 0


def test_progress_is_one_plain_line_per_epoch_when_not_a_terminal(tmp_path: Path) -> None:
    config = _callback_run(tmp_path, "[]", epochs=3)
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    lines = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    assert "val_loss" in lines[0] and "\x1b[" not in result.stdout


def test_optimizer_learning_rate_schedule_from_yaml(tmp_path: Path) -> None:
    config = _callback_run(tmp_path, "[]", epochs=2)
    config.write_text(config.read_text().replace(
        "optimizer: {SGD: {learning_rate: 0.01}}",
        "optimizer: {SGD: {learning_rate: {ExponentialDecay: {initial_learning_rate: 0.1, decay_steps: 3, "
        "decay_rate: 0.5}}}}"))
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    model = keras.models.load_model(only_run(tmp_path / "runs") / "model.keras")
    assert model.optimizer.get_config()["learning_rate"]["class_name"] == "ExponentialDecay"
    assert int(model.optimizer.iterations) == 6  # 48 rows / batch 16, 2 epochs
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1 * 0.5 ** (6 / 3), rel=1e-6)
    bad = run_cli("train", config, "--runs-dir", tmp_path / "runs", "--set",
                  "compile.optimizer.SGD.learning_rate={ExponentialDecai: {initial_learning_rate: 0.1}}")
    assert bad.exit_code == 2 and "did you mean 'ExponentialDecay'?" in bad.stderr
