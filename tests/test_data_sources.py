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
from tests.helpers import assert_user_error


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
    assert shown.exit_code == 0 and "keras: fashion_mnist  [train 48, validation 16, test 20]" in shown.stdout
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
