"""Data logic without TensorFlow: hold-out, one-hot, numeric checks, CSV columns and line blocks."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

from kcli.config.models import DataConfig
from kcli.data import checks, csv_files, csv_reader, labels
from kcli.data import splits as splits_mod
from kcli.errors import KcliError


def test_hold_out_is_seeded_and_keeps_file_order() -> None:
    arrays = splits_mod.Arrays(np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10))
    data = DataConfig(validation_split=0.2, test_split=0.3)
    train, val, test = splits_mod.hold_out(arrays, None, None, data, seed=3)
    assert (len(train), len(val), len(test)) == (5, 2, 3)
    for part in (train, val, test):
        assert list(part.y) == sorted(part.y)
    assert sorted([*train.y, *val.y, *test.y]) == list(range(10))
    again = splits_mod.hold_out(arrays, None, None, data, seed=3)
    assert list(again[1].y) == list(val.y)


def test_one_hot_infers_classes_from_every_split() -> None:
    splits = splits_mod.Splits(splits_mod.Arrays(np.zeros((3, 1)), np.array([0, 1, 1])),
                             test=splits_mod.Arrays(np.zeros((1, 1)), np.array([3])))
    assert labels.one_hot(splits, True) == 4
    assert splits.train.y.shape == (3, 4) and splits.test.y[0, 3] == 1


def test_check_numbers_names_the_first_bad_cell() -> None:
    x = np.ones((4, 3))
    x[2, 1] = np.inf
    with pytest.raises(KcliError) as err:
        checks.check_numbers(x, "f.csv", "data", ["a", "b", "c"])
    assert "inf at data row 3, column 'b'; 1 value(s)" in str(err.value)


def test_csv_matched_by_column_name(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("c,target,a,b\n3,1,1,2\n6,0,4,5\n")
    arrays = csv_files.read_csv_columns(path, csv_reader.csv_header(path), ["a", "b", "c"], "target", "data")
    np.testing.assert_array_equal(arrays.x, [[1, 2, 3], [4, 5, 6]])
    assert list(arrays.y) == [1, 0]
    with pytest.raises(KcliError, match="lacks the column"):
        csv_files.read_csv_columns(path, csv_reader.csv_header(path), ["a", "z"], "target", "data")


def test_line_blocks_end_at_line_breaks() -> None:
    from kcli.use.predict_input import _line_blocks

    text = b"".join(f"{i},{i}\n".encode() for i in range(1000)) + b"1000,1000"
    blocks = list(_line_blocks(io.BytesIO(text), 97, Path("x.csv")))
    assert all(b.endswith(b"\n") for b in blocks) and b"".join(blocks) == text + b"\n"


def test_parse_threads_follow_this_process_cpus() -> None:
    from kcli.use.predict_input import PARSE_THREADS

    assert 2 <= PARSE_THREADS <= max(2, min(8, len(os.sched_getaffinity(0))))
