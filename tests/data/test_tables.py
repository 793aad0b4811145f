"""Tables of named columns (CSV, Parquet) without model.input_shape: kcli builds one input per column and the
preprocessing inside the model (Normalization, StringLookup/IntegerLookup, one-hot or embedding, missing values),
with the same numbers as the hand-written Keras script that does the same."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import only_run, run_cli, write_config
from tests.helpers import assert_same_as_plain_script, assert_same_run, assert_user_error

CITIES = ("north", "south", "east")
KINDS = ("big", "mid", "small")


def write_houses(path: Path, n: int, seed: int, missing: bool = True) -> None:
    """rooms (whole numbers), area (some empty), city (text), zone (integer codes), weight, kind (class names)."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["rooms", "area", "city", "zone", "weight", "kind"])
        for i in range(n):
            rooms, area = int(rng.integers(1, 6)), round(float(rng.normal(100, 40)), 2)
            city, zone = str(rng.choice(CITIES)), int(rng.integers(1, 5))
            score = rooms * 0.5 + area / 50 + (city == "north") * 1.5 - zone * 0.3
            kind = KINDS[0] if score > 4.5 else KINDS[1] if score > 3.2 else KINDS[2]
            out.writerow([rooms, "" if missing and i % 7 == 3 else area, city, zone, 1 + i % 3, kind])


CONFIG = """\
    seed: 5
    data:
      source: csv
      path: train.csv
      label: kind
      sample_weight: weight
      missing: fill
      columns:
        zone: {kind: category, encoding: embedding, dim: 3}
      validation: {path: val.csv}
      batch_size: 16
    model:
      layers:
        - Dense: {units: 8, activation: relu}
        - Dense: {units: 3, activation: softmax}
    compile: {optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}
    fit: {epochs: 3}
"""

# The hand-written script: one keras.Input per column, the fill as a small layer of its own, one Normalization
# adapted on the training numbers, StringLookup + one-hot for the city, IntegerLookup + Embedding for the zone.
PLAIN = """
import csv, json, sys
from pathlib import Path
import numpy as np, keras, tensorflow as tf

folder = Path(sys.argv[1])

def read(name):
    rows = list(csv.DictReader((folder / name).open()))
    number = lambda c: np.array([[float(r[c]) if r[c] else np.nan] for r in rows], np.float32)
    x = {"rooms": number("rooms"), "area": number("area"),
         "city": tf.constant([[r["city"]] for r in rows]), "zone": np.array([[int(r["zone"])] for r in rows])}
    return x, [r["kind"] for r in rows], np.array([float(r["weight"]) for r in rows], np.float32)

x, kinds, w = read("train.csv")
xv, kinds_v, wv = read("val.csv")
classes = sorted(set(kinds))
y, yv = (np.array([classes.index(k) for k in ks]) for ks in (kinds, kinds_v))
fills = {c: float(np.mean(x[c][~np.isnan(x[c])].astype(np.float64))) for c in ("rooms", "area")}

class Fill(keras.layers.Layer):
    def __init__(self, value, **kw):
        super().__init__(**kw)
        self.value = value
    def call(self, t):
        return keras.ops.where(keras.ops.isnan(t), keras.ops.cast(self.value, t.dtype), t)

keras.utils.set_random_seed(5)
inputs = {"rooms": keras.Input((1,), name="rooms"), "area": keras.Input((1,), name="area"),
          "city": keras.Input((1,), name="city", dtype="string"), "zone": keras.Input((1,), name="zone", dtype="int64")}
numbers = keras.layers.Concatenate()([Fill(fills[c])(inputs[c]) for c in ("rooms", "area")])
norm = keras.layers.Normalization()
normalized = norm(numbers)
cities = sorted({r for r in x["city"].numpy()[:, 0].astype(str)})
city = keras.layers.CategoryEncoding(len(cities) + 1, output_mode="one_hot")(
    keras.layers.StringLookup(vocabulary=cities)(inputs["city"]))
zones = sorted(set(x["zone"][:, 0].tolist()))
zone = keras.layers.Reshape((3,))(keras.layers.Embedding(len(zones) + 1, 3)(
    keras.layers.IntegerLookup(vocabulary=zones)(inputs["zone"])))
h = keras.layers.Concatenate()([normalized, city, zone])
h = keras.layers.Dense(8, activation="relu")(h)
model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(h))
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
filled = {c: np.where(np.isnan(x[c]), np.float32(fills[c]), x[c]) for c in ("rooms", "area")}
norm.adapt(np.concatenate([filled["rooms"], filled["area"]], axis=1))
history = model.fit(x, y, sample_weight=w, batch_size=16, epochs=3, shuffle=True, verbose=0,
                    validation_data=(xv, yv, wv))
np.savez(folder / "plain_weights.npz", *model.get_weights())
(folder / "plain_history.json").write_text(json.dumps(history.history))
"""


@pytest.fixture
def houses(tmp_path: Path) -> Path:
    write_houses(tmp_path / "train.csv", 96, seed=1)
    write_houses(tmp_path / "val.csv", 32, seed=2)
    return write_config(tmp_path, CONFIG)


def test_columns_train_like_the_hand_written_keras_script(tmp_path: Path, houses: Path) -> None:
    result = run_cli("train", houses, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    run_dir = only_run(tmp_path / "runs")
    assert_same_as_plain_script(run_dir, PLAIN, tmp_path)
    recorded = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["columns"]
    assert recorded["city"] == {"kind": "category", "encoding": "one_hot", "missing": "fill",
                                "vocabulary": sorted(CITIES)}
    assert recorded["zone"]["vocabulary"] == [1, 2, 3, 4] and recorded["zone"]["dim"] == 3
    assert recorded["area"]["kind"] == "number" and recorded["area"]["fill"] == pytest.approx(100, abs=15)
    assert json.loads((run_dir / "run.json").read_text())["classes"] == sorted(KINDS)

    # raw rows in any column order, an empty area, a city and a zone never seen in training: class names out
    (tmp_path / "new.csv").write_text("city,zone,area,rooms\nnorth,2,,3\nmars,9,40,1\n")
    result = run_cli("predict", run_dir, "--input", tmp_path / "new.csv", "--output", tmp_path / "out.csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert len(rows) == 2 and {r["predicted"] for r in rows} <= set(KINDS)

    result = run_cli("evaluate", run_dir, "--split", "validation")
    assert result.exit_code == 0, result.stderr
    report = json.loads((run_dir / "eval-validation.json").read_text())
    assert {row["class"] for row in report["per_class"]} == set(KINDS)
    history = json.loads((run_dir / "history.json").read_text())
    assert report["loss"] == pytest.approx(history[-1]["val_loss"], abs=1e-6)
    if importlib.util.find_spec("tf2onnx") is not None:
        check_onnx_and_tflite_take_category_ids(run_dir)


def check_onnx_and_tflite_take_category_ids(run_dir: Path) -> None:
    """ONNX and TFLite have no string lookup: the export takes category ids, and is checked on the same rows."""
    for fmt in ("onnx", "tflite"):
        result = run_cli("export", run_dir, "--format", fmt)
        assert result.exit_code == 0, result.stderr
        assert "takes each category as its id (city_id, zone_id" in " ".join(result.stdout.split())
    import onnxruntime

    session = onnxruntime.InferenceSession(str(run_dir / "export" / "model.onnx"))
    assert sorted(i.name for i in session.get_inputs()) == ["area", "city_id", "rooms", "zone_id"]


def test_numbers_only_need_no_input_shape_and_empty_cells_are_errors_by_default(tmp_path: Path) -> None:
    write_houses(tmp_path / "train.csv", 40, seed=1)
    config = write_config(tmp_path, """\
        seed: 1
        data: {source: csv, path: train.csv, label: kind, columns: {city: {kind: ignore}}}
        model: {layers: [{Dense: {units: 3, activation: softmax}}]}
        compile: {loss: sparse_categorical_crossentropy}
        fit: {epochs: 1}
    """)
    assert_user_error(run_cli("train", config, "--runs-dir", tmp_path / "runs"),
                      "train.csv: data row 4, column 'area' is empty (6 missing in this column); set data.missing")
    write_houses(tmp_path / "train.csv", 40, seed=1, missing=False)
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    run_dir = only_run(tmp_path / "runs")
    columns = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["columns"]
    assert columns["city"] == {"kind": "ignore"} and columns["weight"]["kind"] == "number"
    assert "numbers_normalization" in (run_dir / "summary.txt").read_text()


@pytest.mark.parametrize(("line", "expected"), [
    ("zome: {kind: category}", "data.columns.zome: "),
    ("zone: {kind: number, encoding: one_hot}", "encoding: not used by a column of kind number"),
    ("zone: {kind: nominal}", "data.columns.zone.kind"),
])
def test_column_mistakes_name_the_key(tmp_path: Path, houses: Path, line: str, expected: str) -> None:
    text = houses.read_text().replace("zone: {kind: category, encoding: embedding, dim: 3}", line)
    config = write_config(tmp_path, text, "bad.yaml")
    command = ("train", "--runs-dir", str(tmp_path / "runs")) if "zome" in line else ("validate",)
    assert_user_error(run_cli(*command, config), expected)


def test_input_shape_and_columns_together_is_a_config_error(tmp_path: Path, houses: Path) -> None:
    text = houses.read_text().replace("model:\n", "model:\n  input_shape: [4]\n")
    assert_user_error(run_cli("validate", write_config(tmp_path, text, "both.yaml")),
                      "go(es) with the inputs kcli builds from a table's columns")


def test_the_shipped_table_examples_train_alike(tmp_path: Path) -> None:
    """The bundled listings as CSV, Parquet and TFRecord: the same columns learned and the same run (the split and
    the numbers do not depend on the file format)."""
    from tests.conftest import CONFIGS

    runs = []
    for name in ("houses_columns.yaml", "houses_parquet.yaml", "houses_tfrecord.yaml"):
        result = run_cli("train", CONFIGS / name, "--runs-dir", tmp_path / name, "--set", "fit.epochs=2",
                         "--set", "save=[keras]")
        assert result.exit_code == 0, result.stderr
        runs.append(only_run(tmp_path / name))
    columns = [yaml.safe_load((r / "config.yaml").read_text())["data"]["columns"] for r in runs]
    assert columns[0]["rooms"]["vocabulary"] == [1, 2, 3, 4, 5, 6] and columns[0]["heating"]["vocabulary"][0] == ""
    assert columns[1] == columns[0] and columns[2] == columns[0]
    assert "age_missing (IsMissing)" in (runs[0] / "summary.txt").read_text()
    for other in runs[1:]:
        assert_same_run(other, runs[0])
