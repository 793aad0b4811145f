"""The one CSV reader: pyarrow parses every CSV kcli reads (tables whole or in blocks, feature files, prediction
inputs), and its complaints become one line naming the file, data row and column.

Besides pyarrow, only two small readers: `csv_header` reads a header line on its own (Python's csv module, with
messages of its own), and `by_rows`, the row-naming fallback: pyarrow names no row when it reads threaded, so
where it refuses a file or block of numbers, the text is parsed again row by row to name the first bad one.
"""

from __future__ import annotations

import contextlib
import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kcli.data.checks import file_key, is_number
from kcli.errors import DataError

CSV_BLOCK_BYTES = 1 << 20   # bytes of CSV pyarrow parses per block (its default); a line must fit in one


class BadRow(ValueError):
    """A CSV row that is not `width` values with numbers where numbers belong: its index among the non-blank lines,
    and why; `names`: whether the text column held class names (then only the others must be numbers)."""

    def __init__(self, index: int, problem: str, names: bool = False) -> None:
        super().__init__(problem)
        self.index = index
        self.problem = problem
        self.names = names


def csv_header(path: Path, key: str = "data") -> list[str]:
    """The column names of a CSV file (its first line, read on its own: its own messages)."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), None)
    except FileNotFoundError:
        raise DataError(f"data file not found: {path}", key=file_key(key)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}", key=file_key(key)) from None
    except csv.Error as exc:   # "field larger than field limit (131072)": a huge cell or a quote left open
        raise DataError(f"cannot read the first line of {path}: {exc}", key=file_key(key)) from None
    if not header:
        raise DataError(f"{path} is empty; expected a header line with column names", key=file_key(key))
    return [h.strip() for h in header]


def read_table(path: Path) -> Any:
    """A CSV file read whole as a pyarrow Table: the header line's names, each column's kind inferred."""
    from pyarrow import csv

    return csv.read_csv(path, read_options=csv.ReadOptions(block_size=CSV_BLOCK_BYTES), convert_options=_kinds())


def open_blocks(path: Any, block_bytes: int) -> Any:
    """A CSV file (a path or an open input file) as pyarrow record batches of about `block_bytes` (each
    column's kind from the first block)."""
    from pyarrow import csv

    return csv.open_csv(path, read_options=csv.ReadOptions(block_size=block_bytes, use_threads=True),
                        convert_options=_kinds())


def open_rows(path: Path, block_bytes: int) -> Any:
    """A CSV file as pyarrow record batches, rows of the wrong width skipped (for reading its names)."""
    from pyarrow import csv

    return csv.open_csv(path, read_options=csv.ReadOptions(block_size=block_bytes),
                        parse_options=csv.ParseOptions(invalid_row_handler=lambda row: "skip"))


@contextlib.contextmanager
def reading(path: Path, key: str) -> Iterator[None]:
    """pyarrow's complaint about reading `path` as one line naming it."""
    import pyarrow as pa

    try:
        yield
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read {path}: {arrow_problem(exc)}", key=key) from None


def text_blocks(path: Path, header: list[str], block_bytes: int, key: str) -> Iterator[Any]:
    """The rows as pyarrow Tables of about `block_bytes`, every column text (empty cells, NA, ... null); a row of
    the wrong width or a cell pyarrow refuses is one line naming the data row."""
    import pyarrow as pa
    from pyarrow import csv

    bad: list[Any] = []

    def wrong_width(row: Any) -> str:
        bad.append(row)
        return "error"

    options = csv.ConvertOptions(column_types={name: pa.string() for name in header}, strings_can_be_null=True)
    try:
        with csv.open_csv(path, read_options=csv.ReadOptions(block_size=block_bytes, use_threads=False),
                          parse_options=csv.ParseOptions(invalid_row_handler=wrong_width),
                          convert_options=options) as reader:
            for batch in reader:
                yield pa.Table.from_batches([batch])
    except (pa.ArrowException, OSError) as exc:
        if bad:   # pyarrow counts the header as row 1
            raise DataError(f"{path}: data row {bad[0].number - 1} has {bad[0].actual_columns} values, the header "
                            f"{bad[0].expected_columns}", key=key) from None
        text = arrow_problem(exc)
        raise DataError(located(path, header, text) or f"cannot read {path}: {text}", key=key) from None


def _kinds() -> Any:
    """How pyarrow converts the cells of a table (whole and streamed reads alike): an empty text cell is missing."""
    from pyarrow import csv

    return csv.ConvertOptions(strings_can_be_null=True)


def numbers(source: Path | bytes, width: int, text: int | None = None, header: bool = False,
            threads: bool = True, columns: list[str] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """CSV rows of `width` values (a file, after its header line when `header`; or bytes of whole lines) as a
    float64 table; column `text` may hold class names instead of numbers: then its column of the table is NaN and
    its stripped strings come second (None when they are numbers too). A row pyarrow refuses is found and named
    by `by_rows` (BadRow; `columns`: the names it gives them); what that reads after all (lines of blanks, rows
    all of another width) is returned as it reads it."""
    parsed = _arrow(source, width, text, header, threads)
    if parsed is not None:
        return parsed
    if isinstance(source, Path):
        body = source.read_text(encoding="utf-8", errors="replace")
        body = body.partition("\n")[2] if header else body
    else:
        body = source.decode("utf-8", "replace")
    return by_rows(body, width, text, columns)


def _arrow(source: Path | bytes, width: int, text: int | None, header: bool,
           threads: bool) -> tuple[np.ndarray, np.ndarray | None] | None:
    """pyarrow's strict read (no empty cells, no text where numbers belong, every row `width` values), or None
    when it refuses."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import csv

    names = [f"c{i}" for i in range(width)]
    types = {n: pa.float64() for n in names}
    if text is not None:
        types[names[text]] = pa.string()
    read = csv.ReadOptions(column_names=names, skip_rows=1 if header else 0, use_threads=threads,
                           block_size=CSV_BLOCK_BYTES)
    convert = csv.ConvertOptions(column_types=types, null_values=[], strings_can_be_null=False,
                                 quoted_strings_can_be_null=False)
    try:
        table = csv.read_csv(source if isinstance(source, Path) else pa.py_buffer(source), read_options=read,
                             convert_options=convert)
        labels = None
        if text is not None:
            stripped = pc.utf8_trim_whitespace(table.column(text))
            values = stripped.to_pylist()
            if all(is_number(v) for v in values):   # numbers after all: parsed as pyarrow parses the others
                table = table.set_column(text, names[text], stripped.cast(pa.float64()))
            else:
                labels = np.array(values, dtype=str)
                table = table.set_column(text, names[text], pa.array(np.full(table.num_rows, np.nan)))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    if table.num_rows == 0:
        return np.zeros((0, width), np.float64), labels
    return np.column_stack([table.column(i).to_numpy() for i in range(width)]), labels


def by_rows(body: str, width: int, text: int | None = None,
            columns: list[str] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The row-naming fallback: the non-blank lines of `body` split at commas and parsed one by one (returned as
    `numbers` returns them), or BadRow naming the first that is not `width` values with numbers where numbers
    belong (`columns`: the names a message gives them). Rows that all have one other count are returned as
    they are: the caller says so."""
    rows = [[v.strip() for v in line.split(",")] for line in body.splitlines() if line.strip()]
    names = text is not None and not all(is_number(row[text]) for row in rows if len(row) > text)
    counts = {len(row) for row in rows}
    other = len(counts) == 1 and width not in counts and not names
    numeric = [i for i in range(width) if i != text] if names else None
    if not other or not all(is_number(v) for row in rows for v in row):
        found = first_bad_row(body, width, columns, numeric)
        if found is not None:
            raise BadRow(*found, names=names)
    try:
        table = np.array([[np.nan if names and i == text else _float(v) for i, v in enumerate(row)] for row in rows],
                         dtype=np.float64).reshape(len(rows), counts.pop() if rows else width)
    except ValueError:   # what Python reads but no CSV reader does (1_000): as numpy said, no row to name
        raise BadRow(0, "cannot be read as numbers", names) from None
    return table, np.array([row[text] for row in rows], dtype=str) if names else None


def _float(text: str) -> float:
    """A cell as a number, as pyarrow and numpy read one (Python's float also takes 1_000: they do not)."""
    if "_" in text:
        raise ValueError(text)
    return float(text)


def first_bad_row(text: str, width: int, names: list[str] | None = None,
                  numeric: list[int] | None = None) -> tuple[int, str] | None:
    """(index among the non-blank lines, what is wrong) of the first CSV line that is not `width` values with
    numbers in the `numeric` columns (default all), or None when every line is."""
    rows = [line for line in text.splitlines() if line.strip()]
    for i, line in enumerate(rows):
        fields = line.split(",")
        if len(fields) != width:
            return i, f"{len(fields)} values, the first line {width}"
        for col, value in enumerate(fields):
            if (numeric is None or col in numeric) and not is_number(value.strip()):
                column = repr(names[col]) if names else str(col + 1)
                return i, f"column {column} is {value.strip()!r}, not a number"
    return None


def not_utf8(path: Path, row: int, column: str) -> str:
    """The message for a CSV cell whose bytes are not UTF-8 text."""
    return f"{path}: data row {row}, column {column!r} is not UTF-8 text; save the file as UTF-8"


def located(path: Path, names: list[str], problem: str) -> str | None:
    """pyarrow's complaint about a CSV (read unthreaded, so it names the row) as a message naming the data row and
    column; None when it names no row."""
    found = re.search(r"In CSV column #(\d+): Row #(\d+): (.*)$", problem)
    if found is not None:
        column, row, what = names[int(found[1])], int(found[2]) - 1, found[3]   # pyarrow counts the header as row 1
        if what.endswith("invalid UTF8 data"):
            return not_utf8(path, row, column)
        return f"{path}: data row {row}, column {column!r}: {what}"
    found = re.search(r"Row #(\d+): ", problem)
    if found is None:
        return None
    return f"{path}: data row {int(found[1]) - 1}: {problem.replace(found[0], '')}"


def arrow_problem(exc: BaseException) -> str:
    """pyarrow's complaint about a file, on one line (an empty CSV, a line longer than a block said as such)."""
    text = " ".join(str(exc).split())
    if "Empty CSV file" in text:
        return "it is empty; expected a header line with column names"
    if "straddling object" in text:   # pyarrow's "try to increase block size?": a setting the user does not have
        return (f"a line of it is larger than kcli's CSV block size of {CSV_BLOCK_BYTES >> 20} MiB (a line must "
                "fit in a block): a huge cell, or a quote left open (the rest of the file then reads as one cell); "
                "fix the file")
    return text


def relocated(path: Any, schema: Any, block_bytes: int) -> str | None:
    """pyarrow's complaint about a later block of a streamed CSV with the data row (and column) it is about: its
    threaded reader names no row, so the file is read again unthreaded, with the kinds of its first block."""
    import pyarrow as pa
    from pyarrow import csv

    from kcli.files import remote

    options = csv.ConvertOptions(column_types=dict(zip(schema.names, schema.types)), strings_can_be_null=True)
    try:
        source: Any = remote.open_input(path) if isinstance(path, remote.Info) else path   # an object: read again
        for _ in csv.open_csv(source, read_options=csv.ReadOptions(block_size=block_bytes, use_threads=False),
                              convert_options=options):
            pass
    except (pa.ArrowException, OSError) as again:
        text = " ".join(str(again).split())
    else:
        return None
    found = re.search(r"In CSV column #(\d+): Row #(\d+): CSV conversion error to (\w+): invalid value '(.*)'$", text)
    if found is not None:   # a kind the first block decided: the one case where blocks are the cause
        column, row, kind, value = int(found[1]), int(found[2]) - 1, found[3], found[4]
        what = {"int64": "a whole number", "double": "a number"}.get(kind, f"a {kind}")
        return (f"{path}: data row {row}, column {schema.names[column]!r} is {value!r}, not {what} as in its first "
                "rows (a streamed table takes each column's kind from its first block of rows: fix the cell, or "
                "set data.stream: false to read the table whole)")
    return located(path, schema.names, text)
