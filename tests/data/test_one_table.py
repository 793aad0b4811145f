"""One table path: a CSV / Parquet table read the seed's way (`model.input_shape`, its number columns as one matrix)
streams like a table of columns (`data.stream`), with the numbers of the in-memory read; features of very different
scales get a hint; a text column names the table path and `kcli init --data`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CliResult, run_cli, run_json, write_config
from tests.helpers import assert_same_run, assert_user_error, train_ok

SCALES = [0.01, 1.0, 10.0, 1000.0]


def write_table(path: Path, rows: int, seed: int, scales: list[float] = SCALES) -> None:
    """A learnable 2-class table of number columns a..d of the given scales and an integer label."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(scales))) * scales
    y = ((x / scales) @ [1.0, -0.5, 0.8, 0.3] > 0).astype(int)
    names = "abcd"[:len(scales)]
    lines = [",".join([*names, "label"])] + [",".join(f"{v:.6g}" for v in r) + f",{t}" for r, t in zip(x, y)]
    path.write_text("\n".join(lines) + "\n")


CONFIG = """\
    seed: 5
    data:
      source: csv
      path: train.csv
      label: label
      shuffle: false
      validation: {path: val.csv}
      batch_size: 64
    model:
      input_shape: [4]
      layers: [{Dense: {units: 8, activation: relu}}, {Dense: {units: 2}}]
    compile:
      optimizer: adam
      loss: {SparseCategoricalCrossentropy: {from_logits: true}}
      metrics: [accuracy]
    fit: {epochs: 2}
    save: [keras]
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("one-table")
    write_table(folder / "train.csv", 1000, seed=0)
    write_table(folder / "val.csv", 300, seed=1)
    write_config(folder, CONFIG)
    return folder


@pytest.fixture(scope="module")
def runs(project: Path) -> dict[str, tuple[Path, CliResult]]:
    """The same config read whole and streamed (one run each, shared by the tests below)."""
    made = {}
    for how in ("false", "true"):
        result = run_cli("train", project / "config.yaml", "--runs-dir", project / f"runs-{how}",
                         "--set", f"data.stream={how}")
        assert result.exit_code == 0, (result.stdout[-2000:], result.stderr)
        made[how] = (next((project / f"runs-{how}").glob("config-*")), result)
    return made


def test_a_streamed_input_shape_table_trains_like_the_table_read_whole(runs: dict[str, tuple[Path, CliResult]]
                                                                     ) -> None:
    (whole, read_whole), (streamed, read_streamed) = runs["false"], runs["true"]
    assert "train 1000" in " ".join(read_whole.stdout.split())
    assert "train 16 batches, validation 5 batches" in " ".join(read_streamed.stdout.split())
    # in file order (shuffle: false) the stream makes the very batches of the in-memory read: the same run
    assert_same_run(streamed, whole)
    config = (streamed / "config.yaml").read_text()
    assert "stream: true" in config and "columns" not in config   # input_shape's config records no columns
    assert run_json(streamed)["features"] == run_json(whole)["features"] == ["a", "b", "c", "d"]   # for predict
    # the streamed run is evaluated on its streamed validation split: the last epoch's validation metrics
    result = run_cli("evaluate", streamed)
    assert result.exit_code == 0, result.stderr
    report = json.loads((streamed / "eval-validation.json").read_text())
    last = json.loads((streamed / "history.json").read_text())[-1]
    assert report["examples"] == 300 and np.sum(report["confusion_matrix"]) == 300
    assert report["loss"] == pytest.approx(last["val_loss"], abs=1e-5)


def test_features_of_scales_far_apart_get_one_hint(runs: dict[str, tuple[Path, CliResult]]) -> None:
    for run_dir, result in runs.values():
        hints = [line for line in result.stderr.splitlines() if "scales differ" in line]
        assert len(hints) == 1 and hints[0].startswith("warning: "), result.stderr
        assert re.search(r"differ [\d,]+x \(standard deviation of 'd': [\d.]+e\+0[23], of 'a': 0\.0\d+\)", hints[0])
        assert "add a Normalization layer first" in hints[0] and "leave out model.input_shape" in hints[0]
        assert any("scales differ" in note for note in run_json(run_dir)["data_notes"])


def test_the_hint_is_for_scales_far_apart_only() -> None:
    from kcli.data.column_stats import ColumnStats, scales_apart

    assert scales_apart({"a": 0.01, "b": 1.0, "d": 1000.0}, "t.csv") is not None
    assert scales_apart({"a": 1.0, "b": 5.0, "c": 90.0}, "t.csv") is None   # similar scales: under 100x
    assert scales_apart({"a": 0.0, "b": 1.0, "c": 50.0}, "t.csv") is None   # a constant column is left out
    x = np.random.default_rng(0).normal(size=(500, 1)) * 1000 + 5
    stats = ColumnStats()
    stats.add(x[:200], "number")
    stats.add(x[200:], "number")   # block by block, as a stream gathers them
    assert stats.std == pytest.approx(float(np.std(x)), rel=1e-9)


def test_the_streamed_matrix_visits_every_row_once_in_an_order_of_seed_and_epoch(project: Path) -> None:
    """The order guarantee of the table path's stream (tests/data/test_streams.py) holds for the matrix: with
    shuffle the in-memory read uses Keras's own order instead, so there the two paths differ by design."""
    from kcli.config import loading as config_mod
    from kcli.config import model_io as ports_mod
    from kcli.config.resolve import resolve
    from kcli.data import column_stats, stream, stream_pass, table_files

    cfg = resolve(config_mod.load(project / "config.yaml", ["data.shuffle=true", "data.stream=true"]))
    files = table_files.table_files(cfg.data.path or "", "csv", "data")
    learned = stream_pass.learn(files, cfg.data, numbers_only=True)
    table = cfg.data.model_copy(update={"columns": column_stats.learn(learned.columns, learned.stats)})
    ports = ports_mod.of(cfg.model, cfg.data)

    def epoch(e: int, seed: int = 5) -> np.ndarray:
        reader = stream.TableReader(files, table, ports, "data", seed, True, "label", None, rows=1000,
                                    matrix=("a", "b", "c", "d"))
        reader.epoch = e
        return np.concatenate([b[0] for b in reader.batches()])

    every = np.loadtxt(files[0], delimiter=",", skiprows=1)[:, :4].astype(np.float32)
    first, second = epoch(0), epoch(1)
    assert first.shape == (1000, 4)
    order = np.lexsort(every.T)
    np.testing.assert_array_equal(first[np.lexsort(first.T)], every[order])   # each row once, whole
    np.testing.assert_array_equal(second[np.lexsort(second.T)], every[order])
    assert not np.array_equal(first, second)            # a new order each epoch
    np.testing.assert_array_equal(epoch(1), second)     # ... that (seed, epoch) fixes
    assert not np.array_equal(epoch(1, seed=6), second)


STOPPER = '''\
import os
import keras

class Stopper(keras.callbacks.Callback):
    """Ctrl-C in the middle of epoch 3 (the first two are saved) when KCLI_TEST_STOP is set."""
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
    def on_train_batch_end(self, batch, logs=None):   # (called every steps_per_execution batches)
        if os.environ.get("KCLI_TEST_STOP") and self.epoch == 2 and batch > 0:
            raise KeyboardInterrupt
'''


def test_an_interrupted_streamed_run_resumes_exactly(project: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process, as the table path's SIGKILL test (tests/data/test_streams.py) does in another one."""
    (tmp_path / "stopper.py").write_text(STOPPER)
    text = (project / "config.yaml").read_text().replace("shuffle: false", "shuffle: true")
    for name in ("train.csv", "val.csv"):
        (tmp_path / name).write_bytes((project / name).read_bytes())
    text = text.replace("fit: {epochs: 2}", "fit: {epochs: 4, callbacks: [Stopper]}")
    text = "imports: [stopper.py]\n" + text.replace("label: label", "label: label\n  stream: true")
    config = write_config(tmp_path, text, "stopped.yaml")
    reference = train_ok(config, tmp_path / "reference")
    monkeypatch.setenv("KCLI_TEST_STOP", "1")
    assert run_cli("train", config, "--runs-dir", tmp_path / "stopped").exit_code != 0
    run_dir = next((tmp_path / "stopped").glob("stopped-*"))
    assert run_json(run_dir)["epochs_completed"] == 2
    monkeypatch.delenv("KCLI_TEST_STOP")
    resumed = run_cli("train", "--resume", run_dir)
    assert resumed.exit_code == 0, resumed.stderr
    assert run_json(run_dir)["resumed"][0]["epoch"] == 2
    assert [r["epoch"] for r in json.loads((run_dir / "history.json").read_text())] == [1, 2, 3, 4]
    assert_same_run(run_dir, reference)


@pytest.mark.parametrize("stream", ["false", "true"])
def test_a_text_column_names_the_table_path_and_kcli_init(tmp_path: Path, stream: str) -> None:
    lines = ["a,city,b,label"] + [f"{i / 7:.3f},{['paris', 'rome'][i % 2]},{i % 5},{i % 2}" for i in range(40)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    text = CONFIG.replace("train.csv", "t.csv").replace("validation: {path: val.csv}", "test_split: null")
    config = write_config(tmp_path, text.replace("[4]", "[3]"))
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs", "--set", f"data.stream={stream}")
    where = f"data.path: {tmp_path / 't.csv'}: "
    line = assert_user_error(result, where + "column 'city' holds text ('paris' in data row 1)")
    assert "leave out model.input_shape" in line and f"kcli init --data {tmp_path / 't.csv'}" in line
    # one cell mistyped in a column of numbers is that cell's own line
    lines = ["a,b,c,label"] + [f"{i / 7:.3f},{'x' if i == 2 else i % 5},{i},{i % 2}" for i in range(40)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs", "--set", f"data.stream={stream}")
    assert_user_error(result, "data row 3")
    assert_user_error(result, "column 'b' is 'x', not a number")
    assert not (tmp_path / "runs").exists()


def test_a_parquet_table_with_a_normalization_reads_whole_and_streamed_alike(project: Path, tmp_path: Path) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    for name in ("train", "val"):
        pq.write_table(pacsv.read_csv(project / f"{name}.csv"), tmp_path / f"{name}.parquet")
    text = CONFIG.replace("source: csv", "source: parquet").replace(".csv", ".parquet")
    text = text.replace("layers: [", "layers: [Normalization, ")   # adapted on the split, or from the stream's pass
    config = write_config(tmp_path, text.replace("fit: {epochs: 2}", "fit: {epochs: 1}"))
    whole = train_ok(config, tmp_path / "whole", "--set", "data.stream=false")
    streamed = train_ok(config, tmp_path / "streamed", "--set", "data.stream=true")
    assert "data_notes" not in run_json(streamed)   # with a Normalization, no hint on the scales
    # the stream's Normalization takes float64 moments (its pass's sums), the split read whole numpy's float32 ones:
    # they differ in the 6th digit (2e-6 of the variance), and so do the weights after an epoch
    import keras

    models = [keras.models.load_model(run / "model.keras") for run in (whole, streamed)]
    for a, b in zip(*(m.get_weights() for m in models), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    history = [json.loads((run / "history.json").read_text())[0] for run in (whole, streamed)]
    assert history[0] == pytest.approx(history[1], rel=1e-5)
    norm = models[1].layers[0]
    table = np.loadtxt(project / "train.csv", delimiter=",", skiprows=1)[:, :4].astype(np.float32)
    np.testing.assert_allclose(np.asarray(norm.mean).ravel(), table.mean(axis=0, dtype=np.float64), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(norm.variance).ravel(), table.var(axis=0, dtype=np.float64), rtol=1e-5)
    # kcli predict of such a run takes the Parquet file too (its columns by name, the label column optional)
    rows = tmp_path / "val.parquet"
    out_parquet, out_csv = tmp_path / "p.csv", tmp_path / "c.csv"
    assert run_cli("predict", whole, "--input", rows, "--output", out_parquet).exit_code == 0
    assert run_cli("predict", whole, "--input", project / "val.csv", "--output", out_csv).exit_code == 0
    assert out_parquet.read_text() == out_csv.read_text() and len(out_csv.read_text().splitlines()) == 301
    # and kcli evaluate --data: the same metrics from the Parquet file as from the CSV
    metrics = []
    for rows in (tmp_path / "val.parquet", project / "val.csv"):
        result = run_cli("evaluate", whole, "--data", rows)
        assert result.exit_code == 0, result.stderr
        found = json.loads((whole / "eval-val.json").read_text())
        metrics.append([found["examples"], found["loss"], found["accuracy"]])
    assert metrics[0] == pytest.approx(metrics[1], rel=1e-6) and metrics[0][0] == 300
