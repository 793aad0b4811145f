"""evaluate / predict / export on finished runs: same numbers as plain Keras, clear errors, nothing half-written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from kcli.run import verify
from kcli.use import export as export_mod
from kcli.use.head import Head
from tests.conftest import REPO, only_run, run_cli, run_json, tiny_npz, write_config
from tests.helpers import tiny_project, train_ok

CSV_CONFIG = """\
name: csvrun
seed: 3
data:
  source: csv
  path: train.csv
  label: target
  validation_split: 0.25
model:
  input_shape: [3]
  layers:
    - Dense: {units: 2}
compile:
  loss: {SparseCategoricalCrossentropy: {from_logits: true}}
fit:
  epochs: 1
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("use")
    splits = (("train.npz", 0, 64), ("val.npz", 1, 24), ("test.npz", 2, 40), ("other.npz", 4, 20))
    config = tiny_project(folder, splits, name="use", seed=3, data={"batch_size": 16, "scale": 0.5})
    return train_ok(config, folder / "runs")


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("csvrun")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = (x[:, 0] > 0).astype(int)
    rows = "\n".join(f"{a:.6f},{t},{b:.6f},{c:.6f}" for (a, b, c), t in zip(x, y))
    (folder / "train.csv").write_text("f0,target,f1,f2\n" + rows + "\n")
    result = run_cli("train", write_config(folder, CSV_CONFIG), "--runs-dir", folder / "runs")
    assert result.exit_code == 0, result.stderr
    return only_run(folder / "runs")


def _arrays(run: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """What a hand-written script would feed Keras: float32 features * scale, one-hot labels."""
    npz = np.load(run.parent.parent / name)
    return npz["x"].astype(np.float32) * np.float32(0.5), np.eye(3, dtype=np.float32)[npz["y"]]


def _plain_model(run: Path) -> keras.Model:
    return keras.models.load_model(run / "model.keras")


# ---- evaluate ----

@pytest.mark.parametrize("args, split, file", [([], "test", "test.npz"), (["--split", "validation"], "validation",
                                                                          "val.npz")])
def test_evaluate_equals_plain_keras(run: Path, args: list[str], split: str, file: str) -> None:
    result = run_cli("evaluate", run, *args)
    assert result.exit_code == 0, result.stderr
    written = json.loads((run / f"eval-{split}.json").read_text())
    x, y = _arrays(run, file)
    plain = _plain_model(run).evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    assert written["loss"] == pytest.approx(plain["loss"], abs=1e-6)
    assert written["accuracy"] == pytest.approx(plain["accuracy"], abs=1e-6)
    assert "Evaluation" in result.stdout and "accuracy" in result.stdout


def test_evaluate_other_file_with_training_preprocessing(run: Path) -> None:
    other = run.parent.parent / "other.npz"
    result = run_cli("evaluate", run, "--data", other)
    assert result.exit_code == 0, result.stderr
    x, y = _arrays(run, "other.npz")
    plain = _plain_model(run).evaluate(x, y, verbose=0, return_dict=True)
    assert json.loads((run / "eval-other.json").read_text())["loss"] == pytest.approx(plain["loss"], abs=1e-6)


def test_evaluate_latest_finds_the_newest_completed_run(run: Path, tmp_path: Path) -> None:
    """Among an older completed run, a newer completed one and a still newer interrupted one."""
    runs_dir = tmp_path / "runs"
    for name, status, ended in (("old", "completed", "2026-01-01T00:00:00.000001+00:00"),
                                ("new", "completed", "2026-01-01T00:00:00.000002+00:00"),
                                ("newest", "interrupted", "2026-01-01T00:00:00.000003+00:00")):
        shutil.copytree(run, runs_dir / name, ignore=shutil.ignore_patterns("eval-*"))
        record = run_json(runs_dir / name)
        (runs_dir / name / "run.json").write_text(json.dumps({**record, "status": status, "ended": ended}))
    result = run_cli("evaluate", "latest", "--runs-dir", runs_dir)
    assert result.exit_code == 0, result.stderr
    assert str(runs_dir / "new") in result.stdout
    assert (runs_dir / "new" / "eval-test.json").is_file() and not (runs_dir / "old" / "eval-test.json").exists()


def test_evaluate_csv_run_train_split(csv_run: Path) -> None:
    """--split train re-creates the training rows (validation_split held out, seeded) and equals plain Keras."""
    result = run_cli("evaluate", csv_run, "--split", "train")
    assert result.exit_code == 0, result.stderr
    table = np.loadtxt(csv_run.parent.parent / "train.csv", delimiter=",", skiprows=1)
    perm = np.random.default_rng(3).permutation(len(table))   # the run's seed, as data._hold_out draws it
    train = table[np.sort(perm[round(len(table) * 0.25):])]
    x, y = train[:, [0, 2, 3]].astype(np.float32), train[:, 1].astype(np.int64)
    plain = _plain_model(csv_run).evaluate(x, y, verbose=0, return_dict=True)
    written = json.loads((csv_run / "eval-train.json").read_text())
    assert written["examples"] == 30 and written["loss"] == pytest.approx(plain["loss"], abs=1e-6)


@pytest.mark.parametrize("status", ["running", "failed", "interrupted"])
def test_unfinished_runs_are_refused(run: Path, tmp_path: Path, status: str) -> None:
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    record = run_json(copy)
    (copy / "run.json").write_text(json.dumps({**record, "status": status, "error": "boom"}))
    before = sorted(p.name for p in copy.iterdir())
    for args in (["evaluate", copy], ["predict", copy, "--input", run.parent.parent / "test.npz"],
                 ["export", copy, "--format", "keras"]):
        result = run_cli(*args)
        assert result.exit_code == 2, (args, result.stdout)
        assert status in result.stderr or "still running" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in copy.iterdir()) == before  # nothing written


def test_unknown_run(tmp_path: Path) -> None:
    result = run_cli("evaluate", tmp_path / "nope")
    assert result.exit_code == 2 and "no run directory" in result.stderr
    result = run_cli("evaluate", "latest", "--runs-dir", tmp_path)
    assert result.exit_code == 2 and "no completed run" in result.stderr


def test_run_whose_custom_code_is_missing(tmp_path: Path) -> None:
    shutil.copy(Path(__file__).parents[2] / "configs" / "my_layers.py", tmp_path / "my_layers.py")
    tiny_npz(tmp_path, n=32)
    config = write_config(tmp_path, """\
        imports: [my_layers.py]
        data: {source: npz, path: train.npz, test_split: 0.25, one_hot: true}
        model: {input_shape: [4], layers: [{MyDense: {units: 3}}]}
        compile: {loss: {CategoricalCrossentropy: {from_logits: true}}}
        save: [keras]
        """)
    assert run_cli("train", config, "--runs-dir", tmp_path / "runs").exit_code == 0
    run_dir = only_run(tmp_path / "runs")
    assert run_cli("evaluate", run_dir).exit_code == 0  # the run carries its code
    (tmp_path / "my_layers.py").unlink()
    assert run_cli("evaluate", run_dir).exit_code == 0  # ... even without the original file
    shutil.rmtree(run_dir / "code")
    result = run_cli("evaluate", run_dir)
    assert result.exit_code == 2
    assert "code/my_layers.py" in result.stderr and "is missing" in result.stderr
    record = run_json(run_dir)
    (run_dir / "run.json").write_text(json.dumps({**record, "imports": {"files": [], "modules": ["gone_mod"]}}))
    result = run_cli("evaluate", run_dir)   # a module this user never trained with: not imported at all
    assert result.exit_code == 2 and "module gone_mod" in result.stderr and "--trust-code" in result.stderr
    result = run_cli("evaluate", run_dir, "--trust-code")   # config.yaml's my_layers.py has no copy in the run now
    assert result.exit_code == 2 and "imports[0]" in result.stderr and "would run with your rights" in result.stderr


# ---- predict ----

def test_predict_csv_output_equals_plain_keras(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred.csv"
    result = run_cli("predict", run, "--input", run.parent.parent / "test.npz", "--output", out)
    assert result.exit_code == 0, result.stderr
    x, y = _arrays(run, "test.npz")
    logits = _plain_model(run).predict(x, verbose=0)
    table = np.genfromtxt(out, delimiter=",", names=True)
    assert table.dtype.names[:3] == ("y", "predicted", "probability")
    np.testing.assert_allclose(np.stack([table[f"logit_{i}"] for i in range(3)], axis=1), logits, atol=1e-6)
    np.testing.assert_array_equal(table["predicted"], logits.argmax(1))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(table["probability"], probs.max(1), atol=1e-6)
    np.testing.assert_array_equal(table["y"], y.argmax(1))  # the label is carried along
    assert "softmax" in result.stdout


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_predict_array_outputs(run: Path, tmp_path: Path, suffix: str) -> None:
    x, _ = _arrays(run, "test.npz")
    raw_input = tmp_path / "x.npy"
    np.save(raw_input, np.load(run.parent.parent / "test.npz")["x"])
    out = tmp_path / f"pred{suffix}"
    result = run_cli("predict", run, "--input", raw_input, "--output", out, "--batch-size", "7")
    assert result.exit_code == 0, result.stderr
    got = np.load(out) if suffix == ".npy" else np.load(out)["predictions"]
    np.testing.assert_allclose(got, _plain_model(run).predict(x, verbose=0), atol=1e-6)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def test_predict_preview_without_output(run: Path) -> None:
    result = run_cli("predict", run, "--input", run.parent.parent / "test.npz")
    assert result.exit_code == 0, result.stderr
    assert "first 10 of 40" in result.stdout and "Predicted classes" in result.stdout


def test_predict_csv_input_uses_the_training_columns(csv_run: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(9, 3))
    # other column order, the label column present: both are handled by name
    (tmp_path / "in.csv").write_text("target,f2,f1,f0\n" + "\n".join(
        f"1,{c:.6f},{b:.6f},{a:.6f}" for a, b, c in x) + "\n")
    out = tmp_path / "out.csv"
    result = run_cli("predict", csv_run, "--input", tmp_path / "in.csv", "--output", out)
    assert result.exit_code == 0, result.stderr
    table = np.genfromtxt(out, delimiter=",", names=True)
    expected = keras.models.load_model(csv_run / "model.keras").predict(x.astype(np.float32), verbose=0)
    np.testing.assert_allclose(np.stack([table["logit_0"], table["logit_1"]], 1), expected, atol=1e-5)
    assert list(table["target"]) == [1.0] * 9


def test_predict_feature_mismatch_writes_nothing(run: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "bad.npy", np.zeros((5, 6), np.float32))
    out = tmp_path / "out.csv"
    result = run_cli("predict", run, "--input", tmp_path / "bad.npy", "--output", out)
    assert result.exit_code == 2
    assert "--input" in result.stderr and "[4]" in result.stderr and "[6]" in result.stderr
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    result = run_cli("predict", run, "--input", tmp_path / "bad.csv", "--output", out)
    assert result.exit_code == 2 and "2 feature columns" in result.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "bad.npy"]


_PEAK_RSS = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def _peak_rss_kib(*args: str | Path) -> int:
    """Peak resident memory of `kcli ARGS` in a process of its own (all of it: TensorFlow's too)."""
    proc = subprocess.run([sys.executable, "-c", _PEAK_RSS, sys.executable, "-m", "kcli", *map(str, args)],
                          capture_output=True, text=True, check=True, cwd=REPO, timeout=600)
    return int(proc.stdout.strip())


def _csv_of(path: Path, block: np.ndarray, repeats: int) -> Path:
    text = "\n".join(",".join(f"{v:.3f}" for v in r) for r in block) + "\n"
    with path.open("w") as fh:
        fh.write("a,b,c,d\n")
        for _ in range(repeats):
            fh.write(text)
    return path


def test_predict_streams_a_million_rows_in_bounded_memory(run: Path, tmp_path: Path) -> None:
    """1,000,000 rows cost about as much memory as 200,000 (where streaming has reached its steady state):
    the input is never held whole. Measured as the peak RSS of separate processes, so it sees TensorFlow's
    memory too, whatever the core count."""
    block = np.round(np.random.default_rng(0).normal(size=(1000, 4)), 3)  # exactly what the CSV holds
    small = _peak_rss_kib("predict", run, "--input", _csv_of(tmp_path / "small.csv", block, 200),
                          "--output", tmp_path / "small.npy")
    out = tmp_path / "big.npy"
    big = _peak_rss_kib("predict", run, "--input", _csv_of(tmp_path / "big.csv", block, 1000), "--output", out)
    pred = np.load(out, mmap_mode="r")
    assert pred.shape == (1_000_000, 3)
    # measured here: +13 MiB, the 800,000 extra outputs' memory-mapped .npy pages (9.6 MB) once written; the
    # 800,000 extra inputs held whole would add 25.6 MB as float64 and 19 MB of text on top of that
    assert big - small < 22 * 1024, f"peak RSS {small / 1024:.0f} MiB for 200k rows, {big / 1024:.0f} MiB for 1M"
    x = block.astype(np.float32) * np.float32(0.5)
    np.testing.assert_allclose(pred[-1000:], _plain_model(run).predict(x, verbose=0), atol=1e-5)


def test_predict_csv_quirks_and_errors(run: Path, tmp_path: Path) -> None:
    """Spaces around values and CRLF line ends are read (the loadtxt fallback); a bad value or a short row
    is one line naming the file and the row, and nothing is written."""
    x = np.array([[1, 2, 3, 4], [0.5, -1, 2.25, 3]], np.float32)
    (tmp_path / "crlf.csv").write_bytes(b"a,b,c,d\r\n 1, 2,3 ,4\r\n0.5,-1,2.25,3\r\n\r\n")
    out = tmp_path / "out.npy"
    result = run_cli("predict", run, "--input", tmp_path / "crlf.csv", "--output", out)
    assert result.exit_code == 0, result.stderr
    np.testing.assert_allclose(np.load(out), _plain_model(run).predict(x * np.float32(0.5), verbose=0), atol=1e-6)
    out.unlink()
    for text, expected in (("a,b,c,d\n1,2,3,4\n1,2,x,4\n", "bad.csv: data row 2: column 3 is 'x', not a number"),
                           ("a,b,c,d\n1,2,3,4\n\n5,6,7,8\n1,2,3\n", "bad.csv: data row 3: 3 values, the first line 4")):
        (tmp_path / "bad.csv").write_text(text)
        result = run_cli("predict", run, "--input", tmp_path / "bad.csv", "--output", out)
        assert result.exit_code == 2, result.stderr
        assert expected in result.stderr and "bad.csv" in result.stderr and "--input" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


# ---- export ----

def _independent_outputs(fmt: str, target: Path, run: Path, x: np.ndarray) -> np.ndarray:
    """Each export loaded with its own runtime here, without kcli's code (which checks itself too)."""
    import tensorflow as tf

    if fmt == "savedmodel":
        loaded = tf.saved_model.load(str(target))   # keep a reference while calling it
        return loaded.serve(tf.constant(x)).numpy()
    if fmt in ("keras", "h5"):
        return keras.models.load_model(target).predict(x, verbose=0)
    if fmt == "weights":
        fresh = keras.models.clone_model(_plain_model(run))
        fresh.load_weights(target)
        return fresh.predict(x, verbose=0)
    if fmt == "onnx":
        import onnxruntime
        session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})[0]
    interpreter = tf.lite.Interpreter(model_path=str(target))
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.mark.parametrize("fmt", ["savedmodel", "keras", "h5", "weights", "onnx", "tflite"])
def test_export_each_format_is_checked(run: Path, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / export_mod.FILE_NAMES[fmt]
    result = run_cli("export", run, "--format", fmt, "--output", target)
    assert result.exit_code == 0, result.stderr
    assert target.exists() and f"exported {fmt}" in result.stdout and "checked" in result.stdout
    x, _ = _arrays(run, "test.npz")
    expected = _plain_model(run).predict(x, verbose=0)
    np.testing.assert_allclose(_independent_outputs(fmt, target, run, x), expected, atol=1e-4, rtol=0)


def test_export_default_location(run: Path) -> None:
    result = run_cli("export", run, "--format", "keras")
    assert result.exit_code == 0, result.stderr
    assert (run / "export" / "model.keras").is_file()
    again = run_cli("export", run, "--format", "keras")
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_export_mismatch_is_an_error_and_writes_nothing(run: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(verify.TOLERANCE, "tflite", -1.0)
    result = run_cli("export", run, "--format", "tflite", "--output", tmp_path / "m.tflite")
    assert result.exit_code == 1 and "export check failed" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_export_errors(run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_cli("export", run, "--format", "tflit")
    assert result.exit_code == 2 and "did you mean 'tflite'?" in result.stderr
    result = run_cli("export", run, "--format", "keras", "--output", tmp_path / "m.h5")
    assert result.exit_code == 2 and "must end in .keras" in result.stderr
    real = export_mod.importlib.util.find_spec
    monkeypatch.setattr(export_mod.importlib.util, "find_spec",
                        lambda name, *a: None if name == "tf2onnx" else real(name, *a))
    result = run_cli("export", run, "--format", "onnx", "--output", tmp_path / "m.onnx")
    assert result.exit_code == 2 and "pip install 'kcli-keras[onnx]'" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_saved_model_cli_reads_the_export_and_matches_predict(run: Path, tmp_path: Path) -> None:
    target = tmp_path / "sm"
    assert run_cli("export", run, "--format", "savedmodel", "--output", target).exit_code == 0
    cli = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]   # not assumed beside python
    shown = subprocess.run([*cli, "show", "--all", "--dir", target], capture_output=True, text=True, check=True)
    assert "signature_def['serve']" in shown.stdout and "(-1, 4)" in shown.stdout
    x, _ = _arrays(run, "test.npz")
    np.save(tmp_path / "x.npy", x)
    input_name = shown.stdout.split("inputs['", 1)[1].split("'", 1)[0]
    subprocess.run([*cli, "run", "--dir", target, "--tag_set", "serve", "--signature_def", "serving_default",
                    "--inputs", f"{input_name}={tmp_path / 'x.npy'}", "--outdir", tmp_path / "out"],
                   capture_output=True, text=True, check=True)
    np.save(tmp_path / "raw.npy", np.load(run.parent.parent / "test.npz")["x"])
    assert run_cli("predict", run, "--input", tmp_path / "raw.npy", "--output", tmp_path / "p.npy").exit_code == 0
    np.testing.assert_allclose(np.load(tmp_path / "out" / "output_0.npy"), np.load(tmp_path / "p.npy"), atol=1e-6)


def test_predict_head_kinds() -> None:
    raw = np.array([[2.0, 0.0, -1.0]], np.float32)
    ids, prob = Head("multiclass", True).classify(raw)
    assert ids[0] == 0 and prob[0] == pytest.approx(np.exp(2) / (np.exp(2) + 1 + np.exp(-1)))
    ids, prob = Head("binary", True).classify(np.array([[0.0], [2.0]], np.float32))
    assert list(ids) == [1, 1] and prob[1] == pytest.approx(1 / (1 + np.exp(-2)))
    assert Head("values", False).classify(raw) is None


def test_csv_columns_are_matched_by_name_not_position(csv_run: Path, tmp_path: Path) -> None:
    """evaluate --data with the same columns in another order gives the same metrics; a missing one is named."""
    lines = (csv_run.parent.parent / "train.csv").read_text().splitlines()
    rows = [line.split(",") for line in lines]
    order = [3, 2, 1, 0]   # f2, f1, target, f0
    (tmp_path / "same.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")
    (tmp_path / "shuffled.csv").write_text("\n".join(",".join(r[i] for i in order) for r in rows) + "\n")
    results = []
    for name in ("same.csv", "shuffled.csv"):
        result = run_cli("evaluate", csv_run, "--data", tmp_path / name)
        assert result.exit_code == 0, result.stderr
        results.append(json.loads((csv_run / f"eval-{Path(name).stem}.json").read_text())["loss"])
    assert results[0] == pytest.approx(results[1], abs=1e-7)
    (tmp_path / "missing.csv").write_text("f0,target,f2\n1,0,2\n")
    result = run_cli("evaluate", csv_run, "--data", tmp_path / "missing.csv")
    assert result.exit_code == 2 and "lacks the column(s) 'f1'" in result.stderr


def test_csv_validation_split_file_matched_by_name(tmp_path: Path) -> None:
    """A validation CSV with its columns in another order is read by the training columns' names."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 2))
    (tmp_path / "train.csv").write_text("a,b,y\n" + "".join(f"{p:.5f},{q:.5f},{int(p > q)}\n" for p, q in x[:20]))
    (tmp_path / "val.csv").write_text("y,b,a\n" + "".join(f"{int(p > q)},{q:.5f},{p:.5f}\n" for p, q in x[20:]))
    config = write_config(tmp_path, """\
        seed: 1
        data: {source: csv, path: train.csv, label: y, validation: {path: val.csv}}
        model: {input_shape: [2], layers: [{Dense: {units: 2}}]}
        compile: {loss: {SparseCategoricalCrossentropy: {from_logits: true}}}
        """)
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    run_dir = only_run(tmp_path / "runs")
    model = keras.models.load_model(run_dir / "model.keras")
    val_x = x[20:].round(5).astype(np.float32)
    expected = model.evaluate(val_x, (x[20:, 0] > x[20:, 1]).astype(int), verbose=0)
    assert json.loads((run_dir / "history.json").read_text())[0]["val_loss"] == pytest.approx(expected, abs=1e-5)
