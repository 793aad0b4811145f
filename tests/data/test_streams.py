"""Streamed tables (`data.stream`): CSV shards read in blocks during training, with the numbers of a hand-written
tf.data script, an epoch order that depends only on (seed, epoch), and an exact resume after SIGKILL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import REPO, only_run, run_cli, run_json, write_config
from tests.helpers import assert_same_as_plain_script, assert_same_run, assert_user_error


def write_shards(folder: Path, files: int, rows: int, seed: int) -> None:
    """Shards of a learnable 3-class table: numbers a, b, c and an integer label."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    weights = np.random.default_rng(99).normal(size=(3, 3))
    for i in range(files):
        x = rng.normal(size=(rows, 3)) * [1.0, 10.0, 100.0] + [0.0, 5.0, 50.0]
        y = np.argmax((x - [0.0, 5.0, 50.0]) / [1.0, 10.0, 100.0] @ weights, axis=1)
        lines = ["a,b,c,label"] + [f"{a:.4f},{b:.4f},{c:.4f},{int(t)}" for (a, b, c), t in zip(x, y)]
        (folder / f"part-{i:02d}.csv").write_text("\n".join(lines) + "\n")


CONFIG = """\
    seed: 3
    data:
      source: csv
      path: shards
      label: label
      stream: true
      shuffle: false
      validation: {path: val/part-00.csv}
      batch_size: 16
    model:
      layers: [{Dense: {units: 8, activation: relu}}, {Dense: {units: 3}}]
    compile:
      optimizer: adam
      loss: {SparseCategoricalCrossentropy: {from_logits: true}}
      metrics: [accuracy]
    fit: {epochs: 3}
"""

# By hand with tf.data: the shards in file order through CsvDataset, batched, with their known number of batches
# (without it Keras 3.15 trains epoch 2 on differently: its loss differs from 1e-4 on); the Normalization's mean and
# variance from one pass over the files (numpy, float64), as kcli computes them.
PLAIN = """
import json, sys
from pathlib import Path
from typing import Any
import numpy as np, keras, tensorflow as tf

folder = Path(sys.argv[1])
files = sorted(str(p) for p in (folder / "shards").glob("*.csv"))
table = np.concatenate([np.loadtxt(f, delimiter=",", skiprows=1, ndmin=2) for f in files])
mean, variance = table[:, :3].mean(axis=0), table[:, :3].var(axis=0)

def batches(paths):
    rows = tf.data.Dataset.from_tensor_slices(paths).flat_map(
        lambda f: tf.data.experimental.CsvDataset(f, [tf.float32] * 3 + [tf.int64], header=True))
    return rows.batch(16).map(lambda a, b, c, y: ({"a": a[:, None], "b": b[:, None], "c": c[:, None]}, y))

keras.utils.set_random_seed(3)
inputs = {name: keras.Input((1,), name=name) for name in "abc"}
norm = keras.layers.Normalization()
x = norm(keras.layers.Concatenate()([inputs[name] for name in "abc"]))
x = keras.layers.Dense(8, activation="relu")(x)
model = keras.Model(inputs, keras.layers.Dense(3)(x))
model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
norm.adapt_mean.assign(mean.astype(np.float32))
norm.adapt_variance.assign(variance.astype(np.float32))
norm.finalize_state()
known = lambda dataset, rows: dataset.apply(tf.data.experimental.assert_cardinality(-(-rows // 16)))
history = model.fit(known(batches(files), 150), epochs=3, verbose=0,
                    validation_data=known(batches([str(folder / "val/part-00.csv")]), 30))
np.savez(folder / "plain_weights.npz", *model.get_weights())
(folder / "plain_history.json").write_text(json.dumps(history.history))
"""


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    write_shards(tmp_path / "shards", files=3, rows=50, seed=0)
    write_shards(tmp_path / "val", files=1, rows=30, seed=1)
    return write_config(tmp_path, CONFIG)


def test_a_streamed_table_trains_like_a_hand_written_tf_data_script(tmp_path: Path, shards: Path) -> None:
    result = run_cli("train", shards, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    assert "train 10 batches" in " ".join(result.stdout.split())
    run_dir = only_run(tmp_path / "runs")
    assert_same_as_plain_script(run_dir, PLAIN, tmp_path)
    result = run_cli("predict", run_dir, "--input", tmp_path / "val" / "part-00.csv", "--output", tmp_path / "p.csv")
    assert result.exit_code == 0, result.stderr
    # kcli evaluate streams the split too: its metrics are the last epoch's validation metrics, and the confusion
    # matrix (summed batch by batch) counts every row
    result = run_cli("evaluate", run_dir)
    assert result.exit_code == 0, result.stderr
    report = json.loads((run_dir / "eval-validation.json").read_text())
    last = json.loads((run_dir / "history.json").read_text())[-1]
    assert report["examples"] == 30 and np.sum(report["confusion_matrix"]) == 30
    assert report["loss"] == pytest.approx(last["val_loss"], abs=1e-6)
    assert report["accuracy"] == pytest.approx(np.trace(report["confusion_matrix"]) / 30, abs=1e-6)
    assert report["accuracy"] == pytest.approx(last["val_accuracy"], abs=1e-6)


def write_tfrecord(csv_path: Path, target: Path) -> None:
    """A CSV's rows as tf.train.Example records (float features a, b, c; int64 label)."""
    import tensorflow as tf

    table = np.loadtxt(csv_path, delimiter=",", skiprows=1, ndmin=2)
    with tf.io.TFRecordWriter(str(target)) as writer:
        for a, b, c, label in table:
            feature = {k: tf.train.Feature(float_list=tf.train.FloatList(value=[v])) for k, v in zip("abc", (a, b, c))}
            feature["label"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def test_every_row_once_per_epoch_in_an_order_of_seed_and_epoch(tmp_path: Path, shards: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from kcli.config import loading as config_mod
    from kcli.config import model_io as ports_mod
    from kcli.config.resolve import resolve
    from kcli.data import column_stats, stream, stream_pass, table_files

    monkeypatch.setattr(stream, "WINDOW_ROWS", 40)   # several windows per epoch
    cfg = resolve(config_mod.load(shards, ["data.shuffle=true", "data.batch_size=7"]))
    files = table_files.table_files(cfg.data.path or "", "csv", "data")
    learned = stream_pass.learn(files, cfg.data)
    assert learned.rows == 150
    cfg.data.columns = column_stats.learn(learned.columns, learned.stats)
    ports = ports_mod.with_columns(ports_mod.of(cfg.model, cfg.data), cfg.data)

    def epoch(e: int, seed: int = 3) -> np.ndarray:
        reader = stream.TableReader(files, cfg.data, ports, "data", seed, True, "label", None, rows=150)
        reader.epoch = e
        batches = list(reader.batches())
        assert [len(b[1]) for b in batches] == [7] * 21 + [3]
        return np.concatenate([b[0]["a"][:, 0] for b in batches])

    every = np.sort(np.concatenate([np.loadtxt(f, delimiter=",", skiprows=1)[:, 0] for f in files]))
    first, second = epoch(0), epoch(1)
    np.testing.assert_allclose(np.sort(first), every.astype(np.float32))   # each row once
    np.testing.assert_allclose(np.sort(second), every.astype(np.float32))
    assert not np.array_equal(first, second)                               # a new order each epoch
    np.testing.assert_array_equal(epoch(1), second)                        # ... that (seed, epoch) fixes
    assert not np.array_equal(epoch(1, seed=4), second)

    # the same rows as TFRecord shards (tf.train.Example records, a feature spec): the same table, streamed
    for part in files:
        write_tfrecord(part, part.with_suffix(".tfrecord"))
    records = resolve(config_mod.load(shards, ["data.shuffle=true", "data.batch_size=7", "data.source=tfrecord",
                                               "data.path=shards/*.tfrecord", "data.validation=null",
                                               "data.features={a: float, b: float, c: float, label: int}"]))
    record_files = table_files.table_files(records.data.path or "", "tfrecord", "data")
    assert stream_pass.learn(record_files, records.data).rows == 150
    records.data.columns = cfg.data.columns
    reader = stream.TableReader(record_files, records.data, ports, "data", 3, True, "label", None, rows=150)
    reader.epoch = 1
    np.testing.assert_array_equal(np.concatenate([b[0]["a"][:, 0] for b in reader.batches()]), second)


SIGNALLER = '''\
import os, signal
import keras

class Signaller(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if os.environ.get("KCLI_TEST_EPOCH") and epoch + 1 == int(os.environ["KCLI_TEST_EPOCH"]):
            os.kill(os.getpid(), signal.SIGKILL)
'''


def test_sigkill_then_resume_of_a_shuffled_stream_equals_an_uninterrupted_run(tmp_path: Path, shards: Path) -> None:
    (tmp_path / "signaller.py").write_text(SIGNALLER)
    text = shards.read_text().replace("shuffle: false", "shuffle: true").replace("epochs: 3", "epochs: 4")
    config = write_config(tmp_path, "imports: [signaller.py]\n" + text.replace(
        "fit: {epochs: 4}", "fit: {epochs: 4, callbacks: [Signaller], checkpoint: {interval: 0}}"), "kill.yaml")
    reference = run_cli("train", config, "--runs-dir", tmp_path / "reference")   # uninterrupted, in this process
    assert reference.exit_code == 0, reference.stderr
    command = [sys.executable, "-m", "kcli", "train", str(config), "--runs-dir"]
    killed = subprocess.run([*command, str(tmp_path / "killed")], cwd=REPO, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "KCLI_TEST_EPOCH": "3"})   # killed in epoch 3
    assert killed.returncode == -9
    run_dir = only_run(tmp_path / "killed")
    resumed = run_cli("train", "--resume", run_dir)   # in this process: a fresh one is not needed to resume
    assert resumed.exit_code == 0, resumed.stderr
    assert run_json(run_dir)["resumed"][0]["epoch"] == 2
    assert [r["epoch"] for r in json.loads((run_dir / "history.json").read_text())] == [1, 2, 3, 4]
    assert_same_run(run_dir, only_run(tmp_path / "reference"))
    # the killed process's cache of the rows was removed by the resumed one, which removed its own
    assert not (tmp_path / "killed" / ".stream-cache").exists()
    assert not (tmp_path / "reference" / ".stream-cache").exists()


def test_stream_mistakes_are_one_line(tmp_path: Path, shards: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = shards.read_text()
    held_out = write_config(tmp_path, text.replace("validation: {path: val/part-00.csv}", "validation_split: 0.2"),
                            "split.yaml")
    assert_user_error(run_cli("train", held_out, "--runs-dir", tmp_path / "runs"),
                      "data.validation_split: a streamed table is split by its files")
    assert_user_error(run_cli("train", write_config(tmp_path, text.replace("path: shards", "path: nowhere/*.csv"),
                                                    "glob.yaml"), "--runs-dir", tmp_path / "runs"),
                      "no file matches")
    # a validation file with only its header: one line (it trained with 0 validation rows and Keras's warning)
    header_only = tmp_path / "empty-val"
    header_only.mkdir()
    (header_only / "part-00.csv").write_text("a,b,c,label\n")
    assert_user_error(run_cli("train", write_config(tmp_path, text.replace("val/part-00.csv", "empty-val/part-00.csv"),
                                                    "empty.yaml"), "--runs-dir", tmp_path / "runs"),
                      "data.validation.path: " + str(header_only / "part-00.csv") + " has a header but no rows")
    # a bad cell far down a later file names that file and its row, counted across blocks
    from kcli.data import stream

    monkeypatch.setattr(stream, "BLOCK_BYTES", 256)
    part = tmp_path / "shards" / "part-02.csv"
    lines = part.read_text().splitlines()
    lines[41] = "1.0,,3.0,1"
    part.write_text("\n".join(lines) + "\n")
    assert_user_error(run_cli("train", shards, "--runs-dir", tmp_path / "runs"),
                      "part-02.csv: data row 41, column 'b' is empty")
    assert not (tmp_path / "runs").exists()
    # a file that vanishes during training (no cache: the disk had no room) stops the run with its own line;
    # the epochs done stay resumable
    lines[41] = "1.0,2.0,3.0,1"
    part.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(stream.Cache, "writer", lambda self, source: None)
    blocks = stream.TableReader._blocks

    def vanishing(reader: stream.TableReader, path: Path) -> Any:
        if reader.epoch == 1 and path == part:
            path.unlink()
        return blocks(reader, path)

    monkeypatch.setattr(stream.TableReader, "_blocks", vanishing)
    line = assert_user_error(run_cli("train", shards, "--runs-dir", tmp_path / "runs"),
                             f"data.path: {part} is gone (it was there when the run began)")
    run_dir = next((tmp_path / "runs").iterdir())
    assert run_json(run_dir)["status"] == "failed" and run_json(run_dir)["epochs_completed"] == 1
    assert f"kcli train --resume {run_dir}" in line
    monkeypatch.undo()
    part.write_text("\n".join(lines) + "\n")   # put back: the run goes on from epoch 2
    resumed = run_cli("train", "--resume", run_dir)
    assert resumed.exit_code == 0, resumed.stderr
    assert run_json(run_dir)["status"] == "completed" and run_json(run_dir)["epochs_completed"] == 3
