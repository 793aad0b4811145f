"""Same numbers as hand-written Keras: with a seed, kcli's weights and history equal a plain script's,
with and without `shuffle` (kcli's own `shuffle: each_epoch` order is covered in tests/training/test_long_runs.py)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from tests.conftest import only_run, run_cli, tiny_npz, write_config
from tests.helpers import assert_same_as_plain_script, run_plain_script, train_ok

CONFIG = """\
seed: {seed}
data:
  source: npz
  path: train.npz
  validation: {{path: val.npz}}
  batch_size: 16
  shuffle: {shuffle}
  cache: {cache}
  one_hot: 3
model:
  input_shape: [4]
  layers:
    - Dense: {{units: 16, activation: relu}}
    - Dropout: {{rate: 0.2}}
    - Dense: {{units: 3}}
compile:
  optimizer: {{Adam: {{learning_rate: 0.01}}}}
  loss: {{CategoricalCrossentropy: {{from_logits: true}}}}
  metrics: [accuracy]
fit:
  epochs: 6
  validation_freq: {validation_freq}
"""

PLAIN_SCRIPT = """
import json, sys
import keras, numpy as np
folder, seed, shuffle, validation_freq = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "true", json.loads(sys.argv[4])
train, val = np.load(f"{folder}/train.npz"), np.load(f"{folder}/val.npz")
x, y = train["x"].astype("float32"), np.eye(3, dtype="float32")[train["y"]]
vx, vy = val["x"].astype("float32"), np.eye(3, dtype="float32")[val["y"]]
keras.utils.set_random_seed(seed)
model = keras.Sequential([
    keras.Input(shape=(4,)),
    keras.layers.Dense(16, activation="relu"),
    keras.layers.Dropout(0.2),
    keras.layers.Dense(3),
])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
              loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
history = model.fit(x, y, batch_size=16, epochs=6, validation_data=(vx, vy), validation_freq=validation_freq,
                    shuffle=shuffle, verbose=0)
np.savez(f"{folder}/plain_weights.npz", *model.get_weights())
json.dump(history.history, open(f"{folder}/plain_history.json", "w"))
"""


def _kcli_run(folder: Path, seed: int, shuffle: bool, validation_freq: object, cache: bool, extra: str = "") -> Path:
    tiny_npz(folder, "train.npz", n=100, seed=0)
    tiny_npz(folder, "val.npz", n=30, seed=1)
    config = write_config(folder, CONFIG.format(seed=seed, shuffle=str(shuffle).lower(), cache=str(cache).lower(),
                                                validation_freq=json.dumps(validation_freq)) + extra)
    result = run_cli("train", config, "--runs-dir", folder / "runs")
    assert result.exit_code == 0, result.stderr
    return only_run(folder / "runs")


def _plain(folder: Path, seed: int, shuffle: bool, validation_freq: object) -> tuple[list[np.ndarray], dict]:
    """The hand-written script, run in the plain-Keras process (never kcli's)."""
    run_plain_script(PLAIN_SCRIPT, folder, str(seed), str(shuffle).lower(), json.dumps(validation_freq))
    with np.load(folder / "plain_weights.npz") as npz:
        weights = [npz[f"arr_{i}"] for i in range(len(npz.files))]
    return weights, json.loads((folder / "plain_history.json").read_text())


def _assert_same(run_dir: Path, weights: list[np.ndarray], history: dict, epochs: list[int]) -> None:
    model = keras.models.load_model(run_dir / "model.keras")
    ours = model.get_weights()
    assert len(ours) == len(weights)
    for a, b in zip(ours, weights):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)
    rows = json.loads((run_dir / "history.json").read_text())
    for key, values in history.items():
        if key.startswith("val_"):  # Keras's list is shorter: one value per validation epoch
            ours_val = [rows[e - 1][key] for e in epochs]
            assert all(rows[i][key] is None for i in range(len(rows)) if i + 1 not in epochs)
            np.testing.assert_allclose(ours_val, values, atol=1e-6, rtol=0)
        else:
            np.testing.assert_allclose([r[key] for r in rows], values, atol=1e-6, rtol=0)


# cache: kcli's cached batches (the default) or the arrays handed to fit as they are
@pytest.mark.parametrize("shuffle, validation_freq, val_epochs, cache", [
    (True, 1, [1, 2, 3, 4, 5, 6], True),
    (True, 2, [2, 4, 6], False),
    (False, 2, [2, 4, 6], True),
    (False, [1, 5], [1, 5], False),
])
def test_same_weights_and_history_as_plain_keras(tmp_path: Path, shuffle: bool, validation_freq: object,
                                                 val_epochs: list[int], cache: bool) -> None:
    run_dir = _kcli_run(tmp_path, 11, shuffle, validation_freq, cache)
    weights, history = _plain(tmp_path, 11, shuffle, validation_freq)
    assert len(history["loss"]) == 6 and len(history["val_loss"]) == len(val_epochs)
    _assert_same(run_dir, weights, history, val_epochs)


def test_mirrored_strategy_gives_the_same_numbers(tmp_path: Path) -> None:
    """`distribute: mirrored` builds, compiles and fits under tf.distribute.MirroredStrategy (here: the CPU)
    with steps_per_execution 1 by default, and equals the plain script."""
    run_dir = _kcli_run(tmp_path, 11, True, 1, True, extra="distribute: mirrored\n")
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["distribute"] == "mirrored" and saved["compile"]["steps_per_execution"] == 1
    weights, history = _plain(tmp_path, 11, True, 1)
    _assert_same(run_dir, weights, history, [1, 2, 3, 4, 5, 6])
    refused = run_cli("validate", tmp_path / "config.yaml", "--set", "compile.steps_per_execution=4")
    assert refused.exit_code == 2 and "compile.steps_per_execution: distribute: mirrored needs" in refused.stderr


PLAIN_CLASS_WEIGHT = '''\
import json, sys
import keras, numpy as np
folder = sys.argv[1]
keras.utils.set_random_seed(3)
train, val = np.load(folder + "/train.npz"), np.load(folder + "/val.npz")
x, y = train["x"].astype("float32"), train["y"]
counts = np.bincount(y)
weights = {c: len(y) / (len(counts) * n) for c, n in enumerate(counts)}   # sklearn's "balanced"
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
history = model.fit(x, y, batch_size=16, epochs=3, shuffle=True, class_weight=weights, verbose=0,
                    validation_data=(val["x"].astype("float32"), val["y"]))
np.savez(folder + "/plain_weights.npz", *model.get_weights())
json.dump(history.history, open(folder + "/plain_history.json", "w"))
'''


def test_balanced_class_weight_equals_a_hand_written_fit(tmp_path: Path) -> None:
    """fit.class_weight: balanced counts the training labels (not validation) as sklearn's "balanced" does and
    gives Keras's fit(class_weight=...): weights and history equal the hand-written script; the counted weights
    are recorded in the run's config."""
    rng = np.random.default_rng(4)
    for name, rows in (("train", 60), ("val", 20)):
        x = rng.normal(size=(rows, 4)).astype(np.float32)
        y = np.where(x[:, 0] > 0.8, 2, np.where(x[:, 1] > 0.5, 1, 0))   # imbalanced: most rows are class 0
        np.savez(tmp_path / f"{name}.npz", x=x, y=y)
    config = write_config(tmp_path, """\
        seed: 3
        data: {source: npz, path: train.npz, validation: {path: val.npz}, batch_size: 16}
        model: {input_shape: [4], layers: [{Dense: {units: 8, activation: relu}}, {Dense: {units: 3}}]}
        compile: {optimizer: adam, loss: {SparseCategoricalCrossentropy: {from_logits: true}}, metrics: [accuracy]}
        fit: {epochs: 3, class_weight: balanced}
        save: [keras]
        """)
    run_dir = train_ok(config, tmp_path / "runs")
    assert_same_as_plain_script(run_dir, PLAIN_CLASS_WEIGHT, tmp_path)
    recorded = yaml.safe_load((run_dir / "config.yaml").read_text())["fit"]["class_weight"]
    y = np.load(tmp_path / "train.npz")["y"]
    assert {int(c): w for c, w in recorded.items()} == pytest.approx(
        {c: len(y) / (3 * n) for c, n in enumerate(np.bincount(y))})
