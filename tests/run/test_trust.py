"""Runs you can trust: completed means verified, a run directory is data not code, hostile input ends in exit 2,
faults never leave a run stuck, predict never loses or invents rows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.conftest import REPO, only_run, run_cli, run_json, tiny_npz, write_config
from tests.helpers import assert_user_error, tiny_project, train_ok


@pytest.fixture
def project(tmp_path: Path) -> Path:
    tiny_project(tmp_path, model={"layers": [{"Dense": {"units": 6, "activation": "relu"}}, {"Dense": {"units": 3}}]})
    return tmp_path


def _config_text(project: Path) -> str:
    return (project / "config.yaml").read_text()


# ---- hostile or broken config input: exit 2, one line, bounded time, no run directory ----

BOMB = "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
               for p, c in zip(["", *"abcdefgh"], "abcdefghi"))


@pytest.mark.parametrize("command", ["validate", "train"])
@pytest.mark.parametrize("text, expected", [
    (BOMB, "expands to more than 100,000 values"),
    ("fit: {epochs: 1}\nfit: {epochs: 2}\n", "config.yaml:2: fit: duplicate key 'fit' (lines 1 and 2)"),
    ("name: x\x00\n", "not a YAML text file: unacceptable character #x0000"),
    ("name: ../../x\n", "config.yaml:1: name: a run name holds only letters, digits"),
    ("name: /abs/x\n", "name: a run name holds only letters"),
    ("name: a/b\n", "name: a run name holds only letters"),
    (f"name: {'n' * 300}\n", "name: String should have at most 100 characters"),
])
def test_hostile_configs_are_one_line_exit_2(project: Path, command: str, text: str, expected: str) -> None:
    config = project / "config.yaml"
    config.write_text(text + _config_text(project).split("\n", 1)[1])   # the text instead of the `name:` line
    started = time.monotonic()
    result = run_cli(command, config, *(["--runs-dir", project / "runs"] if command == "train" else []))
    assert time.monotonic() - started < 10
    assert_user_error(result, expected)
    assert not (project / "runs").exists()


def test_absurd_batch_size(project: Path) -> None:
    for value, expected in (("1.0e+20", "exceeded maximum size"), ("1000000000000", "less than or equal to 16777216")):
        result = run_cli("train", project / "config.yaml", "--set", f"data.batch_size={value}",
                         "--runs-dir", project / "runs")
        assert_user_error(result, f"--set data.batch_size={value}: data.batch_size: ")
        assert expected in result.stderr


def test_seeds_outside_keras_range_and_absurd_layers(project: Path) -> None:
    for seed in ("-5", "4294967296"):
        result = run_cli("validate", project / "config.yaml", "--set", f"seed={seed}")
        assert_user_error(result, f"--set seed={seed}: seed: Input should be")
    result = run_cli("train", project / "config.yaml", "--set", "model.layers[0].Dense.units=100000000000",
                     "--runs-dir", project / "runs")
    line = assert_user_error(result, "model.layers[0].Dense: ")
    assert "OOM" in line and "{{" not in line and not (project / "runs").exists()


def test_huge_config_is_refused_unread(project: Path) -> None:
    big = project / "big.yaml"
    big.write_text("# " + "x" * (1 << 20) + "\n")
    assert_user_error(run_cli("validate", big), "big.yaml: the config is 1,048,579 bytes")


def test_runs_dir_that_cannot_be_created(project: Path) -> None:
    (project / "file").write_text("")
    result = run_cli("train", project / "config.yaml", "--runs-dir", project / "file" / "runs")
    assert_user_error(result, "--runs-dir: cannot create the runs directory")


# ---- broken data: exit 2 naming file, row and column, before any run directory ----

def _with_nan() -> np.ndarray:
    x = np.ones((8, 4), np.float32)
    x[5:, 2] = np.nan
    return x


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("make, expected", [
    (lambda p: _npz(p, x=np.zeros((0, 4), np.float32), y=np.zeros(0)), "train.npz has 0 rows"),
    (lambda p: _npz(p, x=np.ones((8, 4), np.float32), y=np.array(["a"] * 8)),
     "array 'y' holds <U1 values; expected numbers (string class names"),
    (lambda p: _npz(p, x=_with_nan(), y=np.zeros(8, int)),
     "array 'x': nan at row 6, column 3 (index [5, 2]); 3 value(s) are NaN or infinite"),
    (lambda p: _npz(p, x=np.ones((8, 4), np.float32), y=np.array([0, 1, np.inf, 0, 1, 0, 1, 0])),
     "array 'y': inf at row 3, column 1"),
    (lambda p: p.write_bytes(_npz(p.with_name("ok.npz"), x=np.ones((8, 4)), y=np.zeros(8)).read_bytes()[:300]),
     "cannot read"),
])
def test_broken_npz_is_exit_2_before_a_run_exists(project: Path, make, expected: str) -> None:  # noqa: ANN001
    make(project / "train.npz")
    result = run_cli("train", project / "config.yaml", "--runs-dir", project / "runs")
    assert_user_error(result, expected)
    assert "train.npz" in result.stderr and "data.path" in result.stderr
    assert not (project / "runs").exists()


def test_nan_in_a_csv_names_the_data_row_and_column(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b,target\n1,2,0\n3,nan,1\n5,6,0\n")
    config = write_config(tmp_path, """\
        data: {source: csv, path: t.csv, label: target}
        model: {input_shape: [2], layers: [{Dense: {units: 1}}]}
        compile: {loss: mse}
        """)
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert_user_error(result, "t.csv: nan at data row 2, column 'b'")
    (tmp_path / "t.csv").write_text("a,b,target\n1,2,0\n\n3,,1\n")   # an empty cell, after a blank line
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert_user_error(result, "t.csv: data row 2: column 'b' is '', not a number; every row must hold 3 numbers")
    assert not (tmp_path / "runs").exists()


# ---- a completed run is verified and usable ----

NO_CONFIG_LAYER = '''\
import keras


class PlainDense(keras.layers.Layer):
    """Written as Keras 2-era tutorials do: no **kwargs, no get_config."""

    def __init__(self, units):
        super().__init__()
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(name="w", shape=(input_shape[-1], self.units))

    def call(self, x):
        return x @ self.w
'''

AUGMENTED = """\
name: aug
seed: 2
imports: [plain.py]
data: {source: npz, path: img.npz, validation_split: 0.25, test_split: 0.25}
model:
  input_shape: [4, 4, 1]
  layers:
    - RandomFlip: {mode: horizontal}
    - Flatten
    - PlainDense: {units: 3}
compile: {optimizer: adam, loss: {SparseCategoricalCrossentropy: {from_logits: true}}, metrics: [accuracy]}
fit: {epochs: 2}
"""


@pytest.fixture(scope="module")
def augmented_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("aug")
    rng = np.random.default_rng(0)
    np.savez(folder / "img.npz", x=rng.normal(size=(64, 4, 4, 1)).astype(np.float32), y=rng.integers(0, 3, 64))
    (folder / "plain.py").write_text(NO_CONFIG_LAYER)
    result = run_cli("train", write_config(folder, AUGMENTED), "--runs-dir", folder / "runs")
    assert result.exit_code == 0, result.stderr
    warning = [line for line in result.stderr.splitlines() if "model.keras cannot be reloaded" in line]
    assert warning and "Fix PlainDense: give __init__ a **kwargs parameter" in warning[0]
    assert "rebuild the model from config.yaml, code/ and model.weights.h5" in warning[0]
    return only_run(folder / "runs")


def test_completed_run_records_how_each_artifact_was_verified(augmented_run: Path) -> None:
    record = run_json(augmented_run)
    assert record["status"] == "completed"
    verified = record["verified"]
    assert verified["keras"].startswith("not reloadable") and "PlainDense" in verified["keras"]
    assert all(verified[f].startswith("ok") for f in ("weights", "savedmodel"))
    assert "h5" in verified


def test_unreloadable_model_keras_still_evaluates_predicts_and_exports(augmented_run: Path, tmp_path: Path) -> None:
    result = run_cli("evaluate", augmented_run)
    assert result.exit_code == 0, result.stderr
    assert "rebuilt from config.yaml + model.weights.h5" in result.stdout
    evaluated = json.loads((augmented_run / "eval-test.json").read_text())
    trained = json.loads((augmented_run / "metrics.json").read_text())
    assert evaluated["loss"] == pytest.approx(trained["loss"], abs=1e-6)
    x = np.random.default_rng(1).normal(size=(5, 4, 4, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    predicted = run_cli("predict", augmented_run, "--input", tmp_path / "x.npy", "--output", tmp_path / "p.npy")
    assert predicted.exit_code == 0, predicted.stderr
    assert np.load(tmp_path / "p.npy").shape == (5, 3)
    result = run_cli("export", augmented_run, "--format", "savedmodel", "--output", tmp_path / "sm")
    assert result.exit_code == 0, result.stderr


def test_savedmodel_of_augmentation_layers_is_inference_mode(augmented_run: Path, tmp_path: Path) -> None:
    import tensorflow as tf

    x = np.random.default_rng(3).normal(size=(16, 4, 4, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    predicted = run_cli("predict", augmented_run, "--input", tmp_path / "x.npy", "--output", tmp_path / "p.npy")
    assert predicted.exit_code == 0, predicted.stderr
    served = tf.saved_model.load(str(augmented_run / "saved_model"))
    first, second = served.serve(tf.constant(x)).numpy(), served.serve(tf.constant(x)).numpy()
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, np.load(tmp_path / "p.npy"), atol=1e-5)


def test_a_format_that_cannot_hold_the_model_is_one_line(augmented_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("tf2onnx")
    result = run_cli("export", augmented_run, "--format", "onnx", "--output", tmp_path / "m.onnx")
    assert result.exit_code == 1 and result.exception is None
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "onnx" in errors[0] and "nothing was written" in errors[0]
    assert list(tmp_path.iterdir()) == []


# ---- a run directory is data, not code ----

def test_code_runs_only_when_trained_here_or_trusted(augmented_run: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCLI_HOME", str(tmp_path / "another-user"))
    result = run_cli("evaluate", augmented_run)
    assert_user_error(result, "loading this run would run Python code with your rights")
    assert "code/plain.py" in result.stderr and "--trust-code" in result.stderr
    assert run_cli("evaluate", augmented_run, "--trust-code").exit_code == 0


def test_changed_code_is_not_trusted(augmented_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(augmented_run, copy)
    code = copy / "code" / "plain.py"
    code.write_text(code.read_text() + "\nprint('changed')\n")
    assert_user_error(run_cli("evaluate", copy), "would run Python code with your rights")


def test_run_json_cannot_point_at_code_outside_the_run(augmented_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(augmented_run, copy)
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    record = run_json(copy)
    for files in (["../evil.py"], [str(evil)], ["code/../../evil.py"]):
        (copy / "run.json").write_text(json.dumps({**record, "imports": {"files": files, "modules": []}}))
        for trust in ([], ["--trust-code"]):
            result = run_cli("evaluate", copy, *trust)
            assert_user_error(result, "run.json names code outside")
    (copy / "run.json").write_text(json.dumps({**record, "imports": {"files": [], "modules": ["antigravity"]}}))
    np.save(tmp_path / "x.npy", np.zeros((2, 4, 4, 1), np.float32))
    assert_user_error(run_cli("predict", copy, "--input", tmp_path / "x.npy"), "module antigravity")
    assert not marker.exists()


# ---- data that changed after training ----

def test_evaluate_says_when_data_changed_and_resume_refuses_it(project: Path) -> None:
    run_dir = train_ok(project / "config.yaml", project / "runs")
    assert set(run_json(run_dir)["data_files"]) == {str(project / n) for n in ("train.npz", "val.npz", "test.npz")}
    tiny_npz(project, "test.npz", n=20, seed=9)
    result = run_cli("evaluate", run_dir)
    assert result.exit_code == 0
    assert "warning:" in result.stderr and "test.npz changed since training" in result.stderr
    record = run_json(run_dir)   # pretend it was killed during its last epoch's artifacts
    (run_dir / "run.json").write_text(json.dumps({**record, "status": "failed"}))
    result = run_cli("train", "--resume", "latest", "--runs-dir", project / "runs")
    assert_user_error(result, "--resume: the data changed since this run started")
    assert "test.npz" in result.stderr and "--allow-data-change" in result.stderr
    result = run_cli("train", "--resume", "latest", "--runs-dir", project / "runs", "--allow-data-change")
    assert result.exit_code == 0, result.stderr
    assert run_json(run_dir)["data_files"][str(project / "test.npz")]["bytes"] == (project / "test.npz").stat().st_size


# ---- faults never leave a run stuck ----

def test_resume_finishes_a_run_killed_while_writing_its_artifacts(project: Path) -> None:
    run_dir = train_ok(project / "config.yaml", project / "runs")
    final = keras.models.load_model(run_dir / "model.keras").get_weights()
    record = run_json(run_dir)
    # what a SIGKILL during the final artifacts leaves: status running (dead pid), some artifacts, a temp file
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run_dir / "run.json").write_text(json.dumps({**record, "status": "running", "pid": dead.pid, "ended": None}))
    (run_dir / "model.keras").unlink()
    shutil.rmtree(run_dir / "saved_model")
    (run_dir / ".tmp-0123456789ab-model.keras").write_bytes(b"half")
    result = run_cli("train", "--resume", run_dir)
    assert result.exit_code == 0, result.stderr
    assert run_json(run_dir)["status"] == "completed"
    assert not list(run_dir.glob(".tmp-*"))
    for a, b in zip(keras.models.load_model(run_dir / "model.keras").get_weights(), final, strict=True):
        np.testing.assert_array_equal(a, b)


def test_resume_latest_means_the_newest_run_that_did_not_complete(project: Path) -> None:
    result = run_cli("train", "--resume", "latest", "--runs-dir", project / "runs")
    assert_user_error(result, "--resume: no run that did not complete (nothing to resume)")


SMALL_DISK = 1200 * 1024


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                    reason="needs root to mount a small tmpfs")
def test_full_disk_is_exit_1_one_line_and_resumable(project: Path) -> None:
    disk = project / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK}", "tmpfs", disk]).returncode != 0:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        wide = [{"Dense": {"units": 256, "activation": "relu"}}, {"Dense": {"units": 256}}, {"Dense": {"units": 3}}]
        config = tiny_project(project, model={"layers": wide}, fit={"epochs": 3})   # ~67k parameters: state.npz
        # (weights and Adam's two slots) is ~0.8 MB, so a second one does not fit beside it
        proc = subprocess.run([sys.executable, "-m", "kcli", "train", config, "--runs-dir", disk / "runs"],
                              capture_output=True, text=True, cwd=REPO, timeout=300)
        assert proc.returncode == 1, proc.stderr
        errors = proc.stderr.strip().splitlines()
        assert len(errors) == 1 and errors[0].startswith("error: the disk is full"), proc.stderr
        run_dir = only_run(disk / "runs")
        assert run_json(run_dir)["status"] in ("failed", "running")
        assert not list(run_dir.rglob(".tmp-*"))
        subprocess.run(["mount", "-o", "remount,size=64m", disk], check=True)
        resumed = run_cli("train", "--resume", run_dir)   # in this process: only the failing one's stderr is read
        assert resumed.exit_code == 0, resumed.stderr
        assert run_json(run_dir)["status"] == "completed"
    finally:
        subprocess.run(["umount", "-l", disk])


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                    reason="needs root to mount a read-only tmpfs (root ignores file permissions)")
def test_read_only_runs_dir_is_exit_2(project: Path) -> None:
    disk = project / "ro"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", disk]).returncode != 0:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        result = run_cli("train", project / "config.yaml", "--runs-dir", disk)
        assert_user_error(result, f"--runs-dir: cannot create a run directory in {disk}: Read-only file system")
    finally:
        subprocess.run(["umount", "-l", disk])


# ---- predict never loses or invents rows ----

@pytest.fixture(scope="module")
def csv_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("csvtrust")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    rows = "\n".join(f"{a:.4f},{b:.4f},{c:.4f},{int(a + b > 0)}" for a, b, c in x)
    (folder / "t.csv").write_text("a,b,c,target\n" + rows + "\n")
    config = write_config(folder, """\
        seed: 1
        data: {source: csv, path: t.csv, label: target, test_split: 0.25}
        model: {input_shape: [3], layers: [{Dense: {units: 1}}]}
        compile: {loss: {BinaryCrossentropy: {from_logits: true}}}
        fit: {epochs: 1}
        """)
    return train_ok(config, folder / "runs")


def test_headerless_csv_keeps_every_row(csv_run: Path, tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("0.5,1,2\n-1,0,3\n2,2,2\n4,0,1\n7,1,0\n")
    out = tmp_path / "p.csv"
    result = run_cli("predict", csv_run, "--input", tmp_path / "x.csv", "--output", out)
    assert result.exit_code == 0, result.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "predicted,probability,logit_0" and len(lines) == 6
    assert "wrote 5 predictions" in result.stdout


def test_predict_output_is_not_overwritten_by_accident(csv_run: Path, tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b,c\n1,2,3\n")
    out = tmp_path / "p.csv"
    out.write_text("precious\n")
    assert_user_error(run_cli("predict", csv_run, "--input", tmp_path / "x.csv", "--output", out),
                      "--output: " + str(out) + " already exists; pass --overwrite")
    assert out.read_text() == "precious\n"
    assert run_cli("predict", csv_run, "--input", tmp_path / "x.csv", "--output", out, "--overwrite").exit_code == 0
    assert out.read_text().count("\n") == 2
    assert_user_error(run_cli("predict", csv_run, "--input", tmp_path / "x.csv", "--output", tmp_path / "no" / "p.csv"),
                      "--output: the folder")


def test_predict_nan_rows_and_extra_columns(csv_run: Path, tmp_path: Path) -> None:
    (tmp_path / "nan.csv").write_text("a,b,c\n1,2,3\n4,nan,6\n")
    assert_user_error(run_cli("predict", csv_run, "--input", tmp_path / "nan.csv"),
                      "nan.csv: data row 2, column 'b' is nan")
    (tmp_path / "wide.csv").write_text("1,2,3,4\n")
    assert_user_error(run_cli("predict", csv_run, "--input", tmp_path / "wide.csv"), "add a header line and name it")
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    (tmp_path / "zero.npy").write_bytes(b"")
    assert_user_error(run_cli("predict", csv_run, "--input", tmp_path / "empty.npy"), "the input has 0 rows")
    assert_user_error(run_cli("predict", csv_run, "--input", tmp_path / "zero.npy"), "cannot read")


@pytest.mark.parametrize("labels", [np.array([[0], [1], [1]]), np.eye(2)[[0, 1, 1]]])
def test_predict_preview_with_column_or_one_hot_labels(csv_run: Path, tmp_path: Path, labels: np.ndarray) -> None:
    np.savez(tmp_path / "x.npz", x=np.ones((3, 3), np.float32), y=labels)
    result = run_cli("predict", csv_run, "--input", tmp_path / "x.npz")
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "p.csv"
    assert run_cli("predict", csv_run, "--input", tmp_path / "x.npz", "--output", out).exit_code == 0
    assert [line.split(",")[0] for line in out.read_text().splitlines()[1:]] == ["0", "1", "1"]


# ---- stderr carries only kcli's lines ----

FILTER_PROBE = """
import os, sys
from kcli.output import quiet
quiet.install()
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
os.write(2, b"I0000 00:00:1732712345.123456   1234 port.cc:153] oneDNN custom operations are on. x\\n")
os.write(2, b"W0000 00:00:1732712345.123456   1234 cpu_feature_guard.cc:210] This TensorFlow binary\\n")
os.write(2, b"E0000 00:00:1732712345.123456   1234 kernel.cc:1] a real TensorFlow error\\n")
os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
print("error: kcli's own line", file=sys.stderr)
os.write(2, b"no newline at the end")
"""


def test_native_tensorflow_chatter_is_filtered_from_stderr() -> None:
    proc = subprocess.run([sys.executable, "-c", FILTER_PROBE], capture_output=True, text=True, cwd=REPO,
                          timeout=60)
    assert proc.returncode == 0
    assert proc.stderr.splitlines() == ["E0000 00:00:1732712345.123456   1234 kernel.cc:1] a real TensorFlow error",
                                        "error: kcli's own line", "no newline at the end"]


def test_a_real_kcli_error_is_the_only_stderr_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, "model: {input_shape: [64], layers: [Dense: {unit: 3}]}\ncompile: {loss: mse}\n")
    proc = subprocess.run([sys.executable, "-m", "kcli", "train", config, "--runs-dir", tmp_path / "runs"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"error: {config}:1: model.layers[0].Dense: unknown argument 'unit' "
                                        "(did you mean 'units'?)"]
