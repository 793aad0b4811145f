"""The one CSV reader (kcli/data/csv_reader.py) and the CSV files read through it: pyarrow's numbers, the
row-naming fallback, and the messages that name a row. No TensorFlow."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kcli.data import csv_files, csv_reader
from kcli.errors import DataError

CELLS = ["1.5", " 2.25 ", "1e5", "+.5", "-0", "0.1000000000000000055511151231257827", "4.9e-324", "1e400", "nan",
         "-inf", "Infinity", "7", "-3.", "123456789.123456789"]


def test_numbers_are_the_very_floats_numpy_reads() -> None:
    body = "".join(f"{cell},{i}\n" for i, cell in enumerate(CELLS)).encode()
    table, names = csv_reader.numbers(body, 2, threads=False)
    expected = np.loadtxt(io.BytesIO(body), delimiter=",", ndmin=2, dtype=np.float64)
    assert names is None and table.dtype == np.float64 and table.shape == (len(CELLS), 2)
    np.testing.assert_array_equal(table, expected)   # bit for bit, NaN where NaN
    np.testing.assert_array_equal(np.signbit(table), np.signbit(expected))   # -0 stays -0


def test_the_fallback_reads_what_pyarrow_reads() -> None:
    body = "".join(f"{cell},{i}\n" for i, cell in enumerate(CELLS))
    fast, _ = csv_reader.numbers(body.encode(), 2)
    slow, _ = csv_reader.by_rows(body, 2)
    np.testing.assert_array_equal(fast, slow)


def test_a_text_column_of_class_names_comes_back_as_names() -> None:
    table, names = csv_reader.numbers(b"1,cat\n2, dog \n", 2, text=1)
    assert names.tolist() == ["cat", "dog"]
    assert table[:, 0].tolist() == [1.0, 2.0] and np.isnan(table[:, 1]).all()
    table, names = csv_reader.numbers(b"1, 3\n2,4\n", 2, text=1)   # numbers after all: parsed as numbers
    assert names is None and table.tolist() == [[1.0, 3.0], [2.0, 4.0]]


@pytest.mark.parametrize("body, index, problem", [
    ("1,2\n3,x\n", 1, "column 'b' is 'x', not a number"),
    ("1,2\n\n3,\n", 1, "column 'b' is '', not a number"),   # blank lines are not counted
    ("1,2\n3,4,5\n6,7\n", 1, "3 values, the first line 2"),
    ("1,2\n3,1_0\n", 0, "cannot be read as numbers"),   # Python's float reads 1_0; numpy and pyarrow do not
])
def test_a_row_pyarrow_refuses_is_named_by_the_fallback(body: str, index: int, problem: str) -> None:
    with pytest.raises(csv_reader.BadRow) as caught:
        csv_reader.numbers(body.encode(), 2, columns=["a", "b"])
    assert (caught.value.index, caught.value.problem) == (index, problem)


def test_rows_all_of_another_width_come_back_for_the_caller_to_name() -> None:
    table, _ = csv_reader.numbers(b"1,2,3\n4,5,6\n", 2)
    assert table.shape == (2, 3)


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.csv"
    path.write_text(text)
    return path


def test_a_csv_file_is_read_once_with_class_names(tmp_path: Path) -> None:
    arrays = csv_files.read_csv(_csv(tmp_path, "a,b,y\n1,2,cat\n3,4,dog\n"), "y")
    assert arrays.x.tolist() == [[1.0, 2.0], [3.0, 4.0]] and arrays.y.tolist() == ["cat", "dog"]
    arrays = csv_files.read_csv(_csv(tmp_path, "a,b,y\n1,2,0\n3,4,1\n"), "y")
    assert arrays.y.dtype == np.int64 and arrays.y.tolist() == [0, 1]


@pytest.mark.parametrize("text, message", [
    # a cell mistyped among numbers (a column mostly of text is a text column: tests/data/test_one_table.py)
    ("a,b,y\n1,x,0\n2,3,1\n3,4,0\n", "data row 1: column 'b' is 'x', not a number; every row must hold 3 numbers"),
    ("a,b,y\n1,2,cat\n3,x,dog\n",
     "data row 2: column 'b' is 'x', not a number; every row must hold 3 values, numbers in the features"),
    ("a,b,y\n1,2\n3,4\n", "rows have 2 values, the header 3"),
    ("a,b,y\n", "has a header but no rows"),
    ("a,b,y", "has a header but no rows"),
    ("a,b,y\n1,nan,0\n", "nan at data row 1, column 'b'; 1 value(s) are NaN or infinite. Remove or fill those "
                           "rows before training"),
    # a short row among class names: the names and the rows no longer pair up (it read 2 rows and 1 name)
    ("a,b,y\n1,2,cat\n3,4\n",
     "data row 2: 2 values, the first line 3; every row must hold 3 values, numbers in the features"),
])
def test_csv_mistakes_name_the_row(tmp_path: Path, text: str, message: str) -> None:
    path = _csv(tmp_path, text)
    with pytest.raises(DataError) as caught:
        csv_files.read_csv(path, "y")
    assert caught.value.message.removeprefix(f"{path}").lstrip(": ") == message
    assert caught.value.key == "data.path"


def test_a_line_of_blanks_is_no_row(tmp_path: Path) -> None:
    """np.loadtxt refused it ("data row 1: cannot be read as numbers"); predict's reader always skipped it."""
    arrays = csv_files.read_csv(_csv(tmp_path, "a,b,y\n1,2,0\n   \n3,4,1\n"), "y")
    assert arrays.x.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_reading_data_needs_no_tensorflow(tmp_path: Path) -> None:
    """The readers and the plans of the data stage load without TensorFlow (a config check, `kcli init`)."""
    code = (f"import sys; from pathlib import Path; from kcli.data import csv_files, load, stream_pass, table_files; "
            f"csv_files.read_csv(Path({str(_csv(tmp_path, 'a,y' + chr(10) + '1,0' + chr(10)))!r}), 'y'); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow loaded'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
