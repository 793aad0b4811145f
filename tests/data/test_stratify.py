"""`data.stratify: true`: validation_split / test_split hold out the same share of every class (TensorFlow-free,
checked against scikit-learn's train_test_split(stratify=...))."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kcli.config import model_io
from kcli.config.models import DataConfig, ModelConfig
from kcli.data import splits as splits_mod
from kcli.data.load import load
from kcli.errors import KcliError
from tests.conftest import run_cli, write_config
from tests.helpers import assert_user_error

# 1000 rows, imbalanced 78% / 15% / 5% / 2%, the classes interleaved in file order
LABELS = np.random.default_rng(0).permutation(np.repeat(np.array(["ok", "late", "lost", "fraud"]),
                                                        [780, 150, 50, 20]))


def _split(labels: np.ndarray, seed: int, **data: float) -> tuple[splits_mod.Arrays, ...]:
    rows = splits_mod.Arrays(np.arange(len(labels), dtype=np.float32).reshape(-1, 1), labels)
    train, val, test = splits_mod.hold_out(rows, None, None, DataConfig(stratify=True, **data), seed)
    return train, val, test


def _counts(part: splits_mod.Arrays) -> dict[str, int]:
    names, counts = np.unique(part.y, return_counts=True)
    return dict(zip(names.tolist(), counts.tolist()))


def test_each_class_is_held_out_in_proportion_as_scikit_learn_does() -> None:
    from sklearn.model_selection import train_test_split

    train, val, test = _split(LABELS, seed=7, test_split=0.2, validation_split=0.1)
    assert (len(train), len(val), len(test)) == (700, 100, 200)   # the totals of the unstratified hold-out
    _, reference = train_test_split(LABELS, test_size=200, stratify=LABELS, random_state=7)
    expected = _counts(splits_mod.Arrays(None, reference))
    assert expected == {"fraud": 4, "late": 30, "lost": 10, "ok": 156}
    assert _counts(test) == expected
    assert _counts(val) == {"fraud": 2, "late": 15, "lost": 5, "ok": 78}
    assert _counts(train) == {"fraud": 14, "late": 105, "lost": 35, "ok": 546}
    # without stratify the rare class's share drifts with the seed; with it, every seed holds out 4 of 20
    plain = splits_mod.hold_out(splits_mod.Arrays(np.zeros((1000, 1)), LABELS), None, None,
                                DataConfig(test_split=0.2), 1)[2]
    assert _counts(plain)["fraud"] != 4
    assert all(_counts(_split(LABELS, seed=s, test_split=0.2)[2])["fraud"] == 4 for s in range(20))


def test_uneven_shares_match_scikit_learn_within_one_row_per_class() -> None:
    from sklearn.model_selection import train_test_split

    labels = np.repeat(np.arange(5), [101, 37, 13, 7, 3])
    for size in (0.1, 0.17, 0.33):
        test = _split(labels, seed=3, test_split=size)[2]
        _, reference = train_test_split(labels, test_size=round(len(labels) * size), stratify=labels,
                                        random_state=3)
        ours, theirs = np.bincount(test.y, minlength=5), np.bincount(reference, minlength=5)
        assert ours.sum() == theirs.sum() and np.abs(ours - theirs).max() <= 1, (size, ours, theirs)


def test_the_same_seed_holds_out_the_same_rows_in_file_order() -> None:
    first = _split(LABELS, seed=11, test_split=0.2, validation_split=0.1)
    again = _split(LABELS, seed=11, test_split=0.2, validation_split=0.1)
    other = _split(LABELS, seed=12, test_split=0.2, validation_split=0.1)
    rows = [part.x[:, 0].astype(int) for part in first]
    assert all(np.array_equal(a.x, b.x) for a, b in zip(first, again))
    assert not np.array_equal(first[2].x, other[2].x)
    assert all(np.all(np.diff(r) > 0) for r in rows)   # file order inside each part
    assert np.array_equal(np.sort(np.concatenate(rows)), np.arange(1000))   # every row exactly once
    assert all(np.array_equal(LABELS[r], part.y) for r, part in zip(rows, first))


def test_class_ids_one_hot_and_whole_numbers_stratify_too() -> None:
    one_hot = np.eye(3, dtype=np.float32)[np.repeat([0, 1, 2], [60, 30, 10])]
    test = _split(one_hot, seed=0, test_split=0.2)[2]
    assert np.bincount(np.argmax(test.y, axis=1)).tolist() == [12, 6, 2]
    assert np.bincount(_split(np.repeat([0.0, 1.0], [90, 10]), seed=0, test_split=0.3)[2].y.astype(int)).tolist() \
        == [27, 3]


def test_labels_without_classes_are_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(KcliError, match="a regression") as err:
        _split(np.linspace(0, 1, 50), seed=0, test_split=0.2)
    assert err.value.key == "data.stratify"
    with pytest.raises(KcliError, match="several outputs") as err:
        splits_mod.hold_out(splits_mod.Arrays(np.zeros((10, 1)), {"a": np.zeros(10), "b": np.ones(10)}), None,
                            None, DataConfig(stratify=True, test_split=0.2), 0)
    table = tmp_path / "t.csv"
    table.write_text("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    data = DataConfig(source="csv", path=str(table), label="y", stream=True, validation_split=0.2, stratify=True)
    with pytest.raises(KcliError, match="streamed table") as err:
        load(data, 0, model_io.of(ModelConfig(layers=[{"Dense": {"units": 1}}]), data))
    assert err.value.key == "data.stratify"
    for text, expected in (("{source: synthetic, samples: 100, stratify: true}", "give one of them"),
                           ("{source: python, function: 'f.py:f', stratify: true}", "your function makes the splits")):
        config = write_config(tmp_path, f"data: {text}\nmodel: {{input_shape: [4], layers: [Dense: {{units: 2}}]}}\n"
                                        "compile: {optimizer: adam, loss: SparseCategoricalCrossentropy}\n")
        assert_user_error(run_cli("validate", config), expected)


def test_a_csv_with_class_names_is_held_out_per_class_by_load(tmp_path: Path) -> None:
    """The path training and `kcli evaluate` take: data.load reads the CSV, holds out, then encodes the names."""
    rng = np.random.default_rng(0)
    names = rng.permutation(np.repeat(["ok", "late", "fraud"], [160, 30, 10]))
    table = tmp_path / "rows.csv"
    table.write_text("a,b,y\n" + "".join(f"{i},{rng.normal():.3f},{n}\n" for i, n in enumerate(names)))
    data = DataConfig(source="csv", path=str(table), label="y", validation_split=0.25, test_split=0.1, stratify=True)
    splits = load(data, 4, model_io.of(ModelConfig(layers=[{"Dense": {"units": 3}}]), data))
    assert splits.class_names == ["fraud", "late", "ok"]
    counts = [np.bincount(part.y, minlength=3).tolist() for part in (splits.train, splits.validation, splits.test)]
    assert counts == [[7, 19, 104], [2, 8, 40], [1, 3, 16]]   # 5 % / 15 % / 80 % in each part (within a row)
