"""The data stage's plans, called directly: class ids and weights, one-hot rows, synthetic data, fingerprints, a
table's files, and the pass over a streamed table before training. No TensorFlow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kcli.config.models import ColumnConfig, DataConfig
from kcli.data import column_stats, fingerprint, labels, stream_pass, table_files
from kcli.data.splits import Arrays, Splits
from kcli.data.synthetic import synthetic
from kcli.errors import DataError


def test_class_names_become_ids_in_the_training_order_and_a_stranger_is_named() -> None:
    splits = Splits(Arrays(np.zeros((3, 1)), np.array(["b", "a", "b"])),
                    validation=Arrays(np.zeros((1, 1)), np.array(["a"])))
    assert labels.encode_class_names(splits, ["a", "b"]) == ["a", "b"]
    assert splits.train.y.tolist() == [1, 0, 1] and splits.validation.y.tolist() == [0]
    stranger = Splits(Arrays(np.zeros((1, 1)), np.array(["a"])), test=Arrays(np.zeros((1, 1)), np.array(["c"])))
    with pytest.raises(DataError) as caught:
        labels.encode_class_names(stranger, ["a", "b"])
    assert caught.value.message == "the test labels hold class(es) 'c' that the training split does not have ('a', 'b')"
    assert caught.value.key == "data.test"


def test_one_hot_refuses_a_label_outside_its_classes() -> None:
    splits = Splits(Arrays(np.zeros((2, 1)), np.array([0, 3])))
    with pytest.raises(DataError, match="label 3 does not fit one_hot: 2 classes"):
        labels.one_hot(splits, 2)
    with pytest.raises(DataError, match="one non-negative integer label per row"):
        labels.one_hot(Splits(Arrays(np.zeros((2, 1)), np.array([0.5, 1.0]))), True)


def test_balanced_class_weights_are_sklearns() -> None:
    weights = labels.balanced_class_weight(Arrays(np.zeros((6, 1)), np.array([0, 0, 0, 0, 1, 2])))
    assert weights == {0: 6 / (3 * 4), 1: 6 / 3, 2: 6 / 3}
    one_hot = np.eye(3, dtype=np.float32)[[0, 0, 0, 0, 1, 2]]
    assert labels.balanced_class_weight(Arrays(np.zeros((6, 1)), one_hot)) == weights


def test_synthetic_data_is_seeded_and_needs_a_known_shape() -> None:
    a, b = synthetic(50, 3, (4,), seed=7), synthetic(50, 3, (4,), seed=7)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.x.dtype == np.float32 and set(a.y.tolist()) <= {0, 1, 2}
    with pytest.raises(DataError, match="fully known model.input_shape"):
        synthetic(5, 2, (None, 4), seed=0)


def test_fingerprints_notice_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,y\n1,0\n")
    recorded = fingerprint.fingerprints(DataConfig(source="csv", path=str(path), label="y"))
    assert recorded[str(path)]["bytes"] == 8 and fingerprint.changed_files(recorded) == []
    path.write_text("a,y\n2,0\n")
    assert fingerprint.changed_files(recorded) == [str(path)]


def _shards(tmp_path: Path) -> Path:
    folder = tmp_path / "shards"
    folder.mkdir()
    for part, rows in enumerate(((1.0, "cat", 0), (2.0, "dog", 1), (4.0, "cat", 2))):
        (folder / f"part-{part}.csv").write_text(f"x,kind,y\n{rows[0]},{rows[1]},{rows[2]}\n")
    (folder / "notes.txt").write_text("not a table")
    return folder


def test_a_tables_files_are_a_file_a_folder_or_a_glob(tmp_path: Path) -> None:
    folder = _shards(tmp_path)
    names = ["part-0.csv", "part-1.csv", "part-2.csv"]
    assert [f.name for f in table_files.table_files(str(folder), "csv", "data")] == names
    assert [f.name for f in table_files.table_files(str(folder / "part-*.csv"), "csv", "data")] == names
    with pytest.raises(DataError) as caught:
        table_files.table_files(str(folder / "none-*.csv"), "csv", "data.validation")
    assert caught.value.key == "data.validation.path"
    table = {"source": "csv", "path": str(folder), "label": "y"}
    assert table_files.should_stream([folder / "part-0.csv"], DataConfig(**table, stream=True))
    assert not table_files.should_stream([folder / "part-0.csv"], DataConfig(**table, stream="auto"))


def test_the_pass_before_streaming_learns_what_the_model_needs(tmp_path: Path) -> None:
    folder = _shards(tmp_path)
    files = table_files.table_files(str(folder), "csv", "data")
    learned = stream_pass.learn(files, DataConfig(source="csv", path=str(folder), label="y"))
    assert learned.rows == 3 and learned.labels == "ids" and learned.largest_id == 2
    assert {n: c.kind for n, c in learned.columns.items()} == {"x": "number", "kind": "category"}
    assert learned.ids is not None and learned.ids.outside(2) == f"{files[2]}: data row 1 holds 2"
    columns = column_stats.learn(learned.columns, learned.stats)
    assert columns["kind"].vocabulary == ["cat", "dog"] and columns["kind"].encoding == "one_hot"
    mean, variance = learned.stats["x"].filled_moments(0.0)
    assert (mean, variance) == pytest.approx((7 / 3, np.var([1.0, 2.0, 4.0])))


def test_column_stats_fill_and_width() -> None:
    columns = {"n": ColumnConfig(kind="number", missing="fill"), "c": ColumnConfig(kind="category")}
    x = {"n": np.array([[1.0], [np.nan], [3.0]]), "c": np.array([["a"], ["b"], ["a"]], dtype=object)}
    learned = column_stats.learn(columns, column_stats.stats_of(x, columns))
    assert learned["n"].fill == 2.0 and learned["n"].normalize is True
    assert learned["c"].vocabulary == ["a", "b"]
    assert column_stats.embedding_dim(10_000) == 50 and column_stats.embedding_dim(1) == 2
