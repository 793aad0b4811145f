"""Data sources beyond the bundled digits and npz/CSV files: keras.datasets by name.

Nothing here downloads: Keras's cache (KERAS_HOME, as Keras read it at import) is pointed at a temporary folder
holding files made here, and the download function is replaced by one that fails as an offline machine does.
"""

from __future__ import annotations

import gzip
import json
import urllib.error
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.conftest import only_run, run_cli, write_config
from tests.helpers import assert_same_as_plain_script, assert_same_run, assert_user_error


@pytest.fixture
def keras_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Keras cache for this test, and no network."""
    from keras.src.backend import config
    from keras.src.utils import file_utils

    home = tmp_path / "keras-home"
    (home / "datasets").mkdir(parents=True)
    monkeypatch.setattr(config, "_KERAS_DIR", str(home))

    def offline(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    return home


def _fashion_mnist(home: Path, train: int, test: int) -> tuple[np.ndarray, ...]:
    """Tiny Fashion-MNIST files in Keras's format (gzipped IDX; Keras checks no hash for this set)."""
    rng = np.random.default_rng(0)
    folder = home / "datasets" / "fashion-mnist"
    folder.mkdir()
    arrays = []
    for prefix, n in (("train", train), ("t10k", test)):
        y = rng.integers(0, 10, size=n, dtype=np.uint8)
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0" * 8 + y.tobytes()))
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\0" * 16 + x.tobytes()))
        arrays += [x, y]
    return tuple(arrays)


CONFIG = """\
    seed: 3
    data: {source: keras, name: fashion_mnist, validation_split: 0.25, scale: 0.00392156862745098, batch_size: 16}
    model:
      input_shape: [28, 28]
      layers: [Flatten: {}, {Dense: {units: 10}}]
    compile:
      loss: {SparseCategoricalCrossentropy: {from_logits: true}}
      metrics: [accuracy]
    fit: {epochs: 2}
    save: [keras]
    """


def test_a_keras_dataset_trains_from_kerass_cache(keras_home: Path, tmp_path: Path) -> None:
    """`source: keras` loads through keras.datasets from the cache: its train part is split by validation_split,
    its test part is the run's test split (evaluate agrees with the model on Keras's x_test)."""
    _, _, x_test, y_test = _fashion_mnist(keras_home, train=64, test=20)
    config = write_config(tmp_path, CONFIG)
    shown = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert shown.exit_code == 0, shown.stderr
    assert "keras: fashion_mnist [train 48, validation 16, test 20]" in " ".join(shown.stdout.split())
    run_dir = only_run(tmp_path / "runs")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    model = keras.models.load_model(run_dir / "model.keras")
    expected = model.evaluate(x_test.astype(np.float32) * np.float32(1 / 255), y_test, verbose=0, return_dict=True)
    assert metrics["loss"] == pytest.approx(expected["loss"], abs=1e-5)
    assert metrics["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-6)


def test_a_keras_dataset_offline_and_not_cached_is_one_line(keras_home: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, CONFIG.replace("fashion_mnist", "mnist"))
    line = assert_user_error(run_cli("train", config, "--runs-dir", tmp_path / "runs"),
                             "data.name: keras dataset 'mnist' is not in Keras's cache")
    assert str(keras_home / "datasets" / "mnist.npz") in line and "KERAS_HOME" in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("change", "expected"), [
    ("name: mnst", "source keras needs `name`, one of mnist, fashion_mnist"),
    ("name: mnist, test_split: 0.2", "brings its own test split"),
    ("name: mnist, maxlen: 20", "num_words and maxlen are for the word sequences"),
])
def test_keras_dataset_mistakes_are_found_without_tensorflow(tmp_path: Path, change: str, expected: str) -> None:
    config = write_config(tmp_path, CONFIG.replace("name: fashion_mnist", change))
    line = assert_user_error(run_cli("validate", config), expected)
    assert "data" in line
    if "mnst" in change:
        assert "did you mean 'mnist'" in line


# ---- source: python (your own tf.data) ----

DATA_FN = '''\
import numpy as np
import tensorflow as tf


def make(data, seed, rows=96, batch=16):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 4)).astype("float32")
    y = (x @ rng.normal(size=(4,)) > 0).astype("int64")
    def batches(lo, hi, shuffle):
        ds = tf.data.Dataset.from_tensor_slices((x[lo:hi], y[lo:hi]))
        return (ds.shuffle(hi - lo, seed=seed) if shuffle else ds).batch(batch)
    return {"train": batches(0, 64, True), "validation": batches(64, 80, False), "test": batches(80, rows, False)}


def features_of_the_wrong_shape(data, seed):
    return tf.data.Dataset.from_tensor_slices((np.zeros((8, 3), "float32"), np.zeros(8))).batch(4)


def not_a_dataset(data, seed):
    return np.zeros((8, 4))


def broken(data, seed):
    raise RuntimeError("the bucket is gone")
'''

PY_CONFIG = """\
    seed: 9
    data: {source: python, function: "data_fn.py:make", args: {batch: 16}}
    model: {input_shape: [4], layers: [{Dense: {units: 8, activation: relu}}, {Dense: {units: 2}}]}
    compile:
      optimizer: {SGD: {learning_rate: 0.1, momentum: 0.9}}
      loss: {SparseCategoricalCrossentropy: {from_logits: true}}
      metrics: [accuracy]
    fit: {epochs: 3}
    save: [keras, weights]
    """

PLAIN_FIT = '''\
import importlib.util, json, sys
import keras, numpy as np
folder = sys.argv[1]
spec = importlib.util.spec_from_file_location("data_fn", folder + "/data_fn.py")
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
keras.utils.set_random_seed(9)
made = module.make({}, 9, batch=16)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
history = model.fit(made["train"], validation_data=made["validation"], epochs=3, verbose=0)
np.savez(folder + "/plain_weights.npz", *model.get_weights())
json.dump(history.history, open(folder + "/plain_history.json", "w"))
'''


def test_your_own_tf_data_trains_like_a_hand_written_fit(tmp_path: Path) -> None:
    """`source: python`: the function's datasets go to fit as they are (the seed chapter's
    `fit(train_db, validation_data=val_db)`): weights and history equal a hand-written script; the test part
    gives the test metrics, and `kcli evaluate` makes it again from the run's copy of the file."""
    (tmp_path / "data_fn.py").write_text(DATA_FN)
    config = write_config(tmp_path, PY_CONFIG)
    shown = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert shown.exit_code == 0, shown.stderr
    assert "[train 4 batches, validation 1 batches, test 1 batches]" in " ".join(shown.stdout.split())
    run_dir = only_run(tmp_path / "runs")
    assert_same_as_plain_script(run_dir, PLAIN_FIT, tmp_path)
    assert (run_dir / "code" / "data_fn.py").is_file()
    (tmp_path / "data_fn.py").unlink()   # evaluate uses the run's own copy
    result = run_cli("evaluate", run_dir)
    assert result.exit_code == 0, result.stderr
    evaluated = json.loads((run_dir / "eval-test.json").read_text())
    tested = json.loads((run_dir / "metrics.json").read_text())
    assert evaluated["examples"] == 16 and evaluated["loss"] == pytest.approx(tested["loss"], abs=1e-6)


@pytest.mark.parametrize(("function", "expected"), [
    ("data_fn.py:nothing", "data.function: data_fn.py defines no function 'nothing'; it defines: make"),
    ("data_fn.py:features_of_the_wrong_shape", "the train batches have features of shape [3]"),
    ("data_fn.py:not_a_dataset", "the train part is a ndarray, not a tf.data.Dataset"),
    ("data_fn.py:broken", "data_fn.py:broken raised RuntimeError: the bucket is gone"),
])
def test_a_data_function_that_does_not_deliver_is_one_line(tmp_path: Path, function: str, expected: str) -> None:
    (tmp_path / "data_fn.py").write_text(DATA_FN)
    config = write_config(tmp_path, PY_CONFIG.replace('"data_fn.py:make", args: {batch: 16}', f'"{function}"'))
    assert_user_error(run_cli("train", config, "--runs-dir", tmp_path / "runs"), expected)
    assert not (tmp_path / "runs").exists()


def test_python_source_keys_are_checked_without_tensorflow(tmp_path: Path) -> None:
    config = write_config(tmp_path, PY_CONFIG.replace("args: {batch: 16}", "args: {batch: 16}, validation_split: 0.2"))
    assert_user_error(run_cli("validate", config), "validation_split: your function makes the splits")
    config = write_config(tmp_path, PY_CONFIG.replace('"data_fn.py:make"', "make"))
    assert_user_error(run_cli("validate", config), "source python needs `function`")


# ---- preprocessing layers adapted on the training split ----

NORM_CONFIG = """\
    seed: 5
    data: {source: npz, path: train.npz, validation: {path: val.npz}, batch_size: 16}
    model:
      input_shape: [4]
      layers: [Normalization, {Dense: {units: 8, activation: relu}}, {Dense: {units: 1}}]
    compile: {optimizer: {Adam: {learning_rate: 0.01}}, loss: mse}
    fit: {epochs: 3}
    save: [keras, weights]
    """

PLAIN_NORM = '''\
import json, sys
import keras, numpy as np
folder = sys.argv[1]
keras.utils.set_random_seed(5)
train, val = np.load(folder + "/train.npz"), np.load(folder + "/val.npz")
x, y = train["x"].astype("float32"), train["y"].astype("float32")
norm = keras.layers.Normalization()
model = keras.Sequential([keras.Input((4,)), norm, keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
norm.adapt(x)
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
history = model.fit(x, y, batch_size=16, epochs=3, shuffle=True, verbose=0,
                    validation_data=(val["x"].astype("float32"), val["y"].astype("float32")))
np.savez(folder + "/plain_weights.npz", *model.get_weights())
json.dump(history.history, open(folder + "/plain_history.json", "w"))
'''


def test_a_normalization_layer_is_adapted_on_the_training_split(tmp_path: Path) -> None:
    """Features on scales 1..1000: the config's Normalization layer learns each feature's mean and variance
    from the training split only (not validation), as `norm.adapt(x_train)` in a hand-written script: weights
    and history equal that script; the run's artifacts take raw features."""
    rng = np.random.default_rng(1)
    for name, rows, shift in (("train", 64, 0.0), ("val", 16, 50.0)):
        x = (rng.normal(size=(rows, 4)) * [1, 10, 100, 1000] + shift).astype("float32")
        np.savez(tmp_path / f"{name}.npz", x=x, y=(x / [1, 10, 100, 1000]).sum(axis=1).astype("float32"))
    config = write_config(tmp_path, NORM_CONFIG)
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    run_dir = only_run(tmp_path / "runs")
    model = keras.models.load_model(run_dir / "model.keras")
    norm = model.layers[0]
    with np.load(tmp_path / "train.npz") as train:
        np.testing.assert_allclose(np.asarray(norm.mean).ravel(), train["x"].mean(axis=0), rtol=1e-5)
    assert_same_as_plain_script(run_dir, PLAIN_NORM, tmp_path)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"   # artifacts verified


def test_a_normalization_that_does_not_see_an_input_must_be_given_its_statistics(tmp_path: Path) -> None:
    np.savez(tmp_path / "train.npz", x=np.ones((8, 4), "float32"), y=np.ones(8, "float32"))
    np.savez(tmp_path / "val.npz", x=np.ones((4, 4), "float32"), y=np.ones(4, "float32"))
    config = write_config(tmp_path, NORM_CONFIG.replace("layers: [Normalization, {Dense: {units: 8, activation: "
                                                        "relu}}", "layers: [{Dense: {units: 8}}, Normalization"))
    assert_user_error(run_cli("train", config, "--runs-dir", tmp_path / "runs"),
                      "model.layers[1]: the Normalization layer 'normalization' does not see a model input")
    assert not (tmp_path / "runs").exists()


# ---- source: images (a folder with one sub-folder per class) ----

def _image_folder(root: Path, per_class: int = 12) -> Path:
    """Two learnable classes of small PNGs: dark and bright."""
    import tensorflow as tf

    rng = np.random.default_rng(2)
    for name, level in (("dark", 40), ("bright", 200)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(level, 30, size=(12, 10, 3)), 0, 255).astype(np.uint8)
            (root / name / f"{i}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    return root


IMG_CONFIG = """\
    seed: 4
    data: {source: images, path: pics, image_size: [8, 8], validation_split: 0.25, batch_size: 8}
    model:
      input_shape: [8, 8, 3]
      layers: [{Rescaling: {scale: 0.00392156862745098}}, Flatten, {Dense: {units: 2}}]
    compile:
      optimizer: {SGD: {learning_rate: 0.5}}
      loss: {SparseCategoricalCrossentropy: {from_logits: true}}
      metrics: [accuracy]
    fit: {epochs: 3}
    save: [keras, savedmodel]
    """

PLAIN_IMAGES = '''\
import json, sys
import keras, numpy as np
folder = sys.argv[1]
keras.utils.set_random_seed(4)
train, val = keras.utils.image_dataset_from_directory(folder + "/pics", image_size=(8, 8), batch_size=8, seed=4,
                                                      validation_split=0.25, subset="both", verbose=False)
model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                          keras.layers.Dense(2)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
history = model.fit(train, validation_data=val, epochs=3, verbose=0)
np.savez(folder + "/plain_weights.npz", *model.get_weights())
json.dump(history.history, open(folder + "/plain_history.json", "w"))
'''


def test_an_image_folder_trains_like_image_dataset_from_directory(tmp_path: Path) -> None:
    """`source: images` equals a hand-written image_dataset_from_directory + fit (weights and history, 1e-6);
    the class names are kept; `kcli predict` of a folder writes file, class name, probability."""
    _image_folder(tmp_path / "pics")
    config = write_config(tmp_path, IMG_CONFIG)
    shown = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert shown.exit_code == 0, shown.stderr
    run_dir = only_run(tmp_path / "runs")
    assert json.loads((run_dir / "run.json").read_text())["classes"] == ["bright", "dark"]
    assert_same_as_plain_script(run_dir, PLAIN_IMAGES, tmp_path)
    out = tmp_path / "predictions.csv"
    result = run_cli("predict", run_dir, "--input", tmp_path / "pics", "--output", out)
    assert result.exit_code == 0, result.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "file,class,probability" and len(lines) == 25
    predicted = {Path(line.split(",")[0]).parent.name: line.split(",")[1] for line in lines[1:]}
    assert predicted == {"bright": "bright", "dark": "dark"}   # one class per folder, named


def test_a_file_that_is_not_an_image_is_one_line_naming_it(tmp_path: Path) -> None:
    _image_folder(tmp_path / "pics", per_class=2)
    (tmp_path / "pics" / "dark" / "notes.png").write_text("not a picture")
    config = write_config(tmp_path, IMG_CONFIG)
    line = assert_user_error(run_cli("train", config, "--runs-dir", tmp_path / "runs"),
                             "is not a JPEG, PNG, GIF or BMP image")
    assert "data.path" in line and str(tmp_path / "pics" / "dark" / "notes.png") in line
    assert not (tmp_path / "runs").exists()
    config = write_config(tmp_path, IMG_CONFIG.replace("image_size: [8, 8]", "image_size: [9, 8]"))
    (tmp_path / "pics" / "dark" / "notes.png").unlink()
    assert_user_error(run_cli("train", config, "--runs-dir", tmp_path / "runs"),
                      "data.image_size: the train batches have features of shape [9, 8, 3]")


def test_bad_images_are_skipped_and_counted_when_the_config_says_so(tmp_path: Path) -> None:
    """data.skip_bad_images: the damaged files are left out (and said, and kept in run.json); the good ones train
    exactly as a run on the folder without them (which equals the hand-written script, tested above)."""
    _image_folder(tmp_path / "pics")
    config = write_config(tmp_path, IMG_CONFIG.replace("batch_size: 8}", "batch_size: 8, skip_bad_images: true}"))
    (tmp_path / "pics" / "dark" / "0a-notes.png").write_text("not a picture")
    (tmp_path / "pics" / "bright" / "empty.jpg").write_bytes(b"")
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    said = " ".join((result.stdout + result.stderr).split())
    assert "skipped 2 file(s) of" in said and "dark/0a-notes.png" in said
    run_dir = only_run(tmp_path / "runs")
    assert json.loads((run_dir / "run.json").read_text())["data_notes"][0].startswith("skipped 2 file(s)")
    for bad in ("dark/0a-notes.png", "bright/empty.jpg"):
        (tmp_path / "pics" / bad).unlink()
    result = run_cli("train", config, "--runs-dir", tmp_path / "clean")
    assert result.exit_code == 0, result.stderr
    assert_same_run(run_dir, only_run(tmp_path / "clean"))


# ---- CSV labels that are class names ----

def test_csv_class_names_are_learned_on_train_and_predicted_by_name(tmp_path: Path) -> None:
    """A label column of names: the vocabulary is the training split's sorted names (kept in run.json); labels
    become class ids; `kcli predict` writes names; a test file with a name the training split lacks is one line."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=(90, 2))
    names = np.where(x[:, 0] > 0.4, "virginica", np.where(x[:, 1] > 0, "setosa", "versicolor"))
    lines = ["a,species,b"] + [f"{a:.4f},{n},{b:.4f}" for (a, b), n in zip(x, names)]
    (tmp_path / "flowers.csv").write_text("\n".join(lines) + "\n")
    config = write_config(tmp_path, """\
        seed: 2
        data: {source: csv, path: flowers.csv, label: species, validation_split: 0.2, batch_size: 16}
        model: {input_shape: [2], layers: [{Dense: {units: 16, activation: relu}}, {Dense: {units: 3}}]}
        compile: {optimizer: {Adam: {learning_rate: 0.05}}, loss: {SparseCategoricalCrossentropy: {from_logits: true}},
                  metrics: [accuracy]}
        fit: {epochs: 20}
        save: [keras]
        """)
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    run_dir = only_run(tmp_path / "runs")
    assert json.loads((run_dir / "run.json").read_text())["classes"] == ["setosa", "versicolor", "virginica"]
    assert json.loads((run_dir / "history.json").read_text())[-1]["val_accuracy"] > 0.8
    (tmp_path / "new.csv").write_text("a,b\n1.5,0.0\n-1.0,1.0\n-1.0,-1.0\n")
    out = tmp_path / "p.csv"
    result = run_cli("predict", run_dir, "--input", tmp_path / "new.csv", "--output", out)
    assert result.exit_code == 0, result.stderr
    assert [line.split(",")[0] for line in out.read_text().splitlines()[1:]] == ["virginica", "setosa", "versicolor"]
    (tmp_path / "odd.csv").write_text("a,species,b\n1.0,tulip,0.0\n")
    line = assert_user_error(run_cli("evaluate", run_dir, "--data", tmp_path / "odd.csv"),
                             "odd.csv: the labels hold class(es) 'tulip' that the run was not trained on")
    assert line.startswith("error: --data: ")


def test_the_shipped_image_folder_example_trains(tmp_path: Path) -> None:
    from tests.conftest import CONFIGS

    result = run_cli("train", CONFIGS / "shapes_images.yaml", "--runs-dir", tmp_path, "--set", "fit.epochs=2",
                     "--set", "save=[keras]")
    assert result.exit_code == 0, result.stderr
    record = json.loads((only_run(tmp_path) / "run.json").read_text())
    assert record["classes"] == ["circle", "square"]
    assert record["data_notes"] == [f"skipped 1 file(s) of {CONFIGS / 'data' / 'shapes'} that are not images "
                                    "(data.skip_bad_images): square/notes.png"]
