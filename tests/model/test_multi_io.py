"""Graphs with named inputs and several outputs: the same numbers as a hand-written functional script with
dict inputs and per-output losses, runs that evaluate, predict and export (every format verified), and
mistakes named by their key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import yaml

from tests.conftest import REPO, run_cli, run_json
from tests.helpers import assert_same_as_plain_script, assert_user_error, train_ok

HEADER = "a,b,c,code,amount,kind"


def write_table(path: Path, rows: int, seed: int) -> None:
    """Three numeric features, an integer code 0..3, a regression target and a 3-class label."""
    rng = np.random.default_rng(seed)
    num = rng.normal(size=(rows, 3))
    code = rng.integers(0, 4, rows)
    amount = num @ [0.5, -1.0, 0.3] + 0.2 * code
    kind = np.argmax(np.column_stack([num[:, 0], num[:, 1], 0.5 * code - 0.75]), axis=1)
    table = np.column_stack([num, code, amount, kind])
    np.savetxt(path, table, delimiter=",", header=HEADER, comments="", fmt="%.6g")


CONFIG: dict[str, Any] = {
    "name": "multi",
    "seed": 3,
    "data": {"source": "csv", "path": "train.csv", "validation": {"path": "val.csv"}, "test": {"path": "test.csv"},
             "labels": {"amount": "amount", "kind": "kind"}, "batch_size": 16},
    "model": {
        "inputs": [{"name": "num", "shape": [3], "columns": ["a", "b", "c"]},
                   {"name": "code", "shape": [1], "dtype": "int32", "columns": ["code"]}],
        "graph": [
            {"name": "emb", "layer": {"Embedding": {"input_dim": 4, "output_dim": 2}}, "inputs": ["code"]},
            {"name": "flat", "layer": "Flatten"},
            {"name": "both", "layer": "Concatenate", "inputs": ["num", "flat"]},
            {"name": "hidden", "layer": {"Dense": {"units": 8, "activation": "relu"}}},
            {"name": "amount", "layer": {"Dense": {"units": 1}}, "inputs": ["hidden"]},
            {"name": "kind", "layer": {"Dense": {"units": 3, "activation": "softmax"}}, "inputs": ["hidden"]},
        ],
        "output": ["amount", "kind"],
    },
    "compile": {"optimizer": {"Adam": {"learning_rate": 0.01}},
                "loss": {"amount": "MeanSquaredError", "kind": "SparseCategoricalCrossentropy"},
                "loss_weights": {"amount": 1.0, "kind": 0.5},
                "metrics": {"amount": ["mae"], "kind": ["accuracy"]}},
    "fit": {"epochs": 3},
}

PLAIN = """
import json, sys
import keras, numpy as np
folder = sys.argv[1]
def read(name):
    t = np.loadtxt(f"{folder}/{name}", delimiter=",", skiprows=1)
    x = {"num": t[:, 0:3].astype("float32"), "code": t[:, 3:4].astype("int32")}
    return x, {"amount": t[:, 4].astype("float32"), "kind": t[:, 5].astype("int64")}
(x, y), (vx, vy) = read("train.csv"), read("val.csv")
keras.utils.set_random_seed(3)
num = keras.Input(shape=(3,), name="num")
code = keras.Input(shape=(1,), name="code", dtype="int32")
emb = keras.layers.Embedding(4, 2, name="emb")(code)
flat = keras.layers.Flatten(name="flat")(emb)
both = keras.layers.Concatenate(name="both")([num, flat])
hidden = keras.layers.Dense(8, activation="relu", name="hidden")(both)
amount = keras.layers.Dense(1, name="amount")(hidden)
kind = keras.layers.Dense(3, activation="softmax", name="kind")(hidden)
model = keras.Model({"num": num, "code": code}, [amount, kind])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
              loss={"amount": keras.losses.MeanSquaredError(), "kind": keras.losses.SparseCategoricalCrossentropy()},
              loss_weights={"amount": 1.0, "kind": 0.5}, metrics={"amount": ["mae"], "kind": ["accuracy"]})
history = model.fit(x, y, batch_size=16, epochs=3, validation_data=(vx, vy), shuffle=True, verbose=0)
np.savez(f"{folder}/plain_weights.npz", *model.get_weights())
json.dump(history.history, open(f"{folder}/plain_history.json", "w"))
"""


def project(folder: Path, **changes: Any) -> Path:
    """CSV splits and a config.yaml in `folder`; `changes` replace top-level sections (deep-merged one level)."""
    for name, seed, rows in (("train.csv", 0, 96), ("val.csv", 1, 32), ("test.csv", 2, 32)):
        write_table(folder / name, rows, seed)
    raw = json.loads(json.dumps(CONFIG))
    for key, value in changes.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) else value
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("multi")
    return train_ok(project(folder), folder / "runs")


def test_equals_a_hand_written_multi_io_script(multi_run: Path) -> None:
    history = assert_same_as_plain_script(multi_run, PLAIN, multi_run.parent.parent)
    assert {"amount_mae", "kind_accuracy", "val_kind_loss"} <= set(history)


def test_run_is_verified_and_evaluates(multi_run: Path) -> None:
    verified = run_json(multi_run)["verified"]
    assert set(verified) == {"weights", "keras", "savedmodel", "h5"}
    assert all(v.startswith("ok") for v in verified.values()), verified
    result = run_cli("evaluate", multi_run)
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((multi_run / "eval-test.json").read_text())
    test = json.loads((multi_run / "metrics.json").read_text())
    for key in ("loss", "amount_mae", "kind_accuracy"):
        assert metrics[key] == pytest.approx(test[key], abs=1e-6)
    assert "scores" not in metrics and "Scores" not in result.stdout   # several outputs: no scores yet


def test_predict_takes_csv_columns_or_npz_arrays_by_input(multi_run: Path, tmp_path: Path) -> None:
    folder = multi_run.parent.parent
    model = keras.models.load_model(multi_run / "model.keras")
    table = np.loadtxt(folder / "test.csv", delimiter=",", skiprows=1)
    x = {"num": table[:, :3].astype("float32"), "code": table[:, 3:4].astype("int32")}
    expected = np.concatenate([o.reshape(len(table), -1) for o in model.predict(x, verbose=0)], axis=1)

    out_csv = tmp_path / "p.csv"
    assert run_cli("predict", multi_run, "--input", folder / "test.csv", "--output", out_csv).exit_code == 0
    lines = out_csv.read_text().splitlines()
    assert lines[0] == "amount,kind_0,kind_1,kind_2"
    got = np.loadtxt(out_csv, delimiter=",", skiprows=1)
    np.testing.assert_allclose(got, expected, atol=1e-6)

    np.savez(tmp_path / "in.npz", num=x["num"], code=x["code"])
    out_npy = tmp_path / "p.npy"
    assert run_cli("predict", multi_run, "--input", tmp_path / "in.npz", "--output", out_npy).exit_code == 0
    np.testing.assert_allclose(np.load(out_npy), expected, atol=1e-6)

    np.savez(tmp_path / "half.npz", num=x["num"])
    assert_user_error(run_cli("predict", multi_run, "--input", tmp_path / "half.npz"), "no array 'code'")


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "savedmodel"])
def test_every_export_of_a_multi_io_model_verifies(multi_run: Path, tmp_path: Path, fmt: str) -> None:
    suffix = {"onnx": ".onnx", "tflite": ".tflite", "savedmodel": ""}[fmt]
    result = run_cli("export", multi_run, "--format", fmt, "--output", tmp_path / f"m{suffix}")
    assert result.exit_code == 0, result.stderr
    assert "max |difference|" in result.stdout


def test_npz_source_feeds_inputs_and_outputs_by_array_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name, rows in (("train.npz", 64), ("val.npz", 16)):
        np.savez(tmp_path / name, features=rng.normal(size=(rows, 3)), code=rng.integers(0, 4, (rows, 1)),
                 amount=rng.normal(size=rows), kind=rng.integers(0, 3, rows))
    inputs = [{"name": "num", "shape": [3], "array": "features"}, {"name": "code", "shape": [1], "dtype": "int32"}]
    config = project(tmp_path, data={"source": "npz", "path": "train.npz", "validation": {"path": "val.npz"},
                                     "test": None, "labels": None},
                     model={"inputs": inputs})
    raw = yaml.safe_load(config.read_text())
    raw["data"] = {k: v for k, v in raw["data"].items() if v is not None}
    config.write_text(yaml.safe_dump(raw))
    run = train_ok(config, tmp_path / "runs")
    assert json.loads((run / "history.json").read_text())[-1]["val_kind_accuracy"] is not None


MISTAKES = [
    ({"compile": {"loss": {"amount": "MeanSquaredError", "knid": "SparseCategoricalCrossentropy"}}},
     "compile.loss.knid: 'knid' is not an output (did you mean 'kind'?)"),
    ({"compile": {"loss": "MeanSquaredError"}}, "compile.loss: several outputs take one loss each"),
    ({"compile": {"loss": {"amount": "MeanSquaredError"}}}, "compile.loss: output 'kind' has no loss"),
    ({"compile": {"loss_weights": {"amount": 1.0, "price": 2.0}}}, "compile.loss_weights.price"),
    ({"data": {"labels": {"amount": "amount"}}}, "data.labels: name the label column of output 'kind'"),
    ({"data": {"labels": {"amount": "amount", "kind": "knd"}}}, "lacks the column(s) 'knd'"),
    ({"model": {"output": ["amount", "kinds"]}}, "model.output[1]: no node 'kinds' (did you mean 'kind'?)"),
]


@pytest.mark.parametrize("changes,expected", MISTAKES)
def test_per_output_mistakes_name_the_key(tmp_path: Path, changes: dict, expected: str) -> None:
    assert_user_error(run_cli("train", project(tmp_path, **changes), "--runs-dir", tmp_path / "runs"), expected)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def _with_inputs(tmp_path: Path, inputs: list[dict], graph: list[dict] | None = None) -> Path:
    model = {**CONFIG["model"], "inputs": inputs, **({"graph": graph} if graph else {})}
    return project(tmp_path, model=model)


INPUT_MISTAKES = [
    ([{"name": "num", "shape": [3]}, {"name": "code", "shape": [1], "columns": ["code"]}],
     "model.inputs[0].columns: source csv: name the columns"),
    ([{"name": "num", "shape": [2], "columns": ["a", "b", "c"]}, {"name": "code", "shape": [1], "columns": ["code"]}],
     "model.inputs[0].shape: 3 columns feed shape [2]"),
    ([{"name": "num", "shape": [3], "columns": ["a", "b", "x"]},
      {"name": "code", "shape": [1], "dtype": "int32", "columns": ["code"]}], "lacks the column(s) 'x'"),
    ([{"name": "num", "shape": [3], "columns": ["a", "b", "c"]}, {"name": "num", "shape": [1], "columns": ["code"]}],
     "model.inputs[1].name: input name 'num' is used twice"),
]


@pytest.mark.parametrize("inputs,expected", INPUT_MISTAKES)
def test_input_mistakes_name_the_input(tmp_path: Path, inputs: list[dict], expected: str) -> None:
    result = run_cli("train", _with_inputs(tmp_path, inputs), "--runs-dir", tmp_path / "runs")
    assert_user_error(result, expected)


def test_first_node_must_pick_an_input(tmp_path: Path) -> None:
    graph = [{"name": "hidden", "layer": {"Dense": {"units": 4}}}, *CONFIG["model"]["graph"][4:]]
    graph[1]["inputs"] = graph[2]["inputs"] = ["hidden"]
    config = _with_inputs(tmp_path, CONFIG["model"]["inputs"], graph)
    assert_user_error(run_cli("validate", config), "model.graph[0].inputs: the first node must say which")


def test_the_bundled_two_input_example_runs(tmp_path: Path) -> None:
    result = run_cli("train", REPO / "configs" / "houses_two_inputs.yaml", "--fast-dev-run")
    assert result.exit_code == 0, result.stderr
    assert "fast dev run ok" in result.stdout
