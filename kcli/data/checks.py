"""Checks every reader shares: numbers only and finite, shapes that fit the model, file keys for messages."""

from __future__ import annotations

import numpy as np

from kcli.config.model_io import Ports, Tree
from kcli.data.splits import Arrays, Splits
from kcli.errors import DataError


def file_key(key: str) -> str:
    """The key a problem with a data file names: `data.path` for a config split, the option itself (`--input`,
    `--data`) for a file given on the command line."""
    return key if key.startswith("--") else f"{key}.path"


def text_column(path: object, column: str, value: str, row: int, key: str) -> DataError:
    """A column of text in a table read as model.input_shape's numbers: one line naming the two ways to a config
    that takes it."""
    return DataError(f"{path}: column {column!r} holds text ({value!r} in data row {row}), and model.input_shape "
                     "takes number columns only: leave out model.input_shape (kcli then builds the inputs from the "
                     f"columns, text ones as categories), or run `kcli init --data {path}` for such a config",
                     key=file_key(key))


def first_text(cells: list[object]) -> tuple[int, str, bool] | None:
    """(index, text) of the first cell of a column that is text, not a number, and whether most of its cells are
    text (a column of text, not a number mistyped); empty cells are missing, not text."""
    present = [(i, str(c)) for i, c in enumerate(cells) if c is not None]
    texts = [(i, c) for i, c in present if not is_number(c)]
    return (*texts[0], 2 * len(texts) > len(present)) if texts else None


def reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _first_cell(bad: np.ndarray, values: np.ndarray) -> tuple[int, int, float] | None:
    """(row, column, value) of the first True of `bad` (rows first), or None when none is."""
    if not bad.any():
        return None
    row, col = (int(i) for i in np.argwhere(bad)[0])
    return row, col, float(values[row, col])


def column_of(col: int, columns: list[str] | None) -> str:
    """How a message names a feature: "column 'area'" for a table, "feature 3" (1-based) for an array."""
    return f"column {columns[col]!r}" if columns else f"feature {col + 1}"


def first_non_finite(a: np.ndarray) -> tuple[int, int, float, int] | None:
    """(row, column, value, how many) of the first NaN or inf in a float array (rows first, features
    flattened), or None when every value is finite."""
    if a.dtype.kind != "f" or a.size == 0:
        return None
    flat = a.reshape(len(a), -1)
    bad = ~np.isfinite(flat)
    found = _first_cell(bad, flat)
    return None if found is None else (*found, int(bad.sum()))


def too_large(value: float, dtype: str, note: str = "") -> str:
    """The phrase naming a value outside a float type's range ("1e+39 is too large for float32 (|x| > 3.4e38)")."""
    limit = f"{float(np.finfo(dtype).max):.1e}".replace("e+", "e")
    return f"{value:g} is too large for {dtype}{note} (|x| > {limit})"


def first_overflow(before: np.ndarray, after: np.ndarray) -> tuple[int, int, float] | None:
    """(row, column, value before) of the first finite value that became infinite on its way to `after` (a cast
    to a narrower float, or the scaling after it), or None."""
    if after.dtype.kind != "f" or before.dtype.kind not in "biuf" or after.size == 0:
        return None
    old, new = before.reshape(len(before), -1), after.reshape(len(after), -1)
    return _first_cell(~np.isfinite(new) & np.isfinite(old), old)


def as_float(a: np.ndarray, dtype: str, what: str, key: str, first_row: int = 1,
             columns: list[str] | None = None) -> np.ndarray:
    """`a` cast to the float type the model takes; a value too large for it (the cast would make it inf, and the
    model answer NaN) names its data row (`first_row` is the first's) and column."""
    with np.errstate(over="ignore"):   # the overflow is reported below, as an error naming the row
        out = a.astype(dtype)
    found = first_overflow(a, out)
    if found is not None:
        overflow_error(found, str(out.dtype), what, key, first_row, columns)
    return out


def overflow_error(found: tuple[int, int, float], dtype: str, what: str, key: str, first_row: int,
                   columns: list[str] | None, note: str = "") -> None:
    """Raise the one error for a value outside `dtype`'s range at `found` (from first_overflow)."""
    row, col, value = found
    raise DataError(f"{what}: data row {first_row + row}, {column_of(col, columns)}: "
                    f"{too_large(value, dtype, note)}; scale it down (or remove the row)", key=file_key(key))


def first_not_whole(a: np.ndarray, dtype: str = "int64") -> tuple[int, int, float] | None:
    """(row, column, value) of the first value of a number array that is no whole number within `dtype` (NaN and
    inf are not), or None: such values would become a truncated, wrapped or undefined integer in a cast."""
    if a.dtype.kind not in "iuf" or a.size == 0:
        return None
    flat = a.reshape(len(a), -1)
    info = np.iinfo(dtype)
    if a.dtype.kind in "iu":   # whole already; only the range can fail (int64 into int32)
        bad = (flat < info.min) | (flat > info.max)
    else:
        with np.errstate(invalid="ignore"):
            bad = ~((np.mod(flat, 1) == 0) & (flat >= float(info.min)) & (flat < -float(info.min)))
    return _first_cell(bad, flat)


def as_int(a: np.ndarray, dtype: str, what: str, key: str, first_row: int = 1,
           columns: list[str] | None = None) -> np.ndarray:
    """`a` cast to the integer type an input takes; a value that is no whole number within it names its row."""
    found = first_not_whole(a, dtype)
    if found is not None:
        row, col, value = found
        raise DataError(f"{what}: data row {first_row + row}, {column_of(col, columns)} is {value:g}, not a whole "
                        f"number within {dtype} (the input takes {dtype} values)", key=file_key(key))
    return a.astype(dtype)


def check_numbers(a: np.ndarray, what: str, key: str, columns: list[str] | None = None) -> None:
    """Numbers only, all finite: NaN or inf names its row and column (1-based, as editors count)."""
    if a.dtype.kind not in "biuf":
        # only arrays hold text here (a CSV's label column of class names is read as names, see csv_files.py)
        hint = (" (string class names are read from a CSV label column; in an array, map them to 0..n-1)"
                if a.dtype.kind in "USO" else "")
        raise DataError(f"{what} holds {a.dtype} values; expected numbers{hint}", key=file_key(key))
    found = first_non_finite(a)
    if found is None:
        return
    row, col, value, bad = found
    if columns is not None:
        where = f"data row {row + 1}, column {columns[col]!r}"
    else:
        where = f"row {row + 1}, column {col + 1} (index [{row}, {col}])"
    when = "" if key.startswith("--") else " before training"
    raise DataError(f"{what}: {value} at {where}; {bad} value(s) are NaN or infinite. Remove or fill those "
                    f"rows{when}", key=file_key(key))


def check_features(splits: Splits, ports: Ports) -> None:
    """Every split's feature shape must match model.input_shape or each named input's shape (null dimensions
    match anything)."""
    for name, arrays in (("data", splits.train), ("data.validation", splits.validation),
                         ("data.test", splits.test)):
        if isinstance(arrays, Arrays):   # a Stream's batches were checked when the user's function returned them
            check_inputs(arrays.x, ports, f"the {name} features")


def check_inputs(x: Tree, ports: Ports, what: str, key: str | None = None) -> None:
    """Features (one array, or one per named input) must fit the model's inputs."""
    if not isinstance(x, dict):
        check_shape(x, ports.single_shape, what, key or "model.input_shape")
        return
    for port in ports.inputs:
        check_shape(x[port.name], port.shape, f"{what} for input {port.name!r}", key or f"{port.key}.shape")


def check_shape(x: np.ndarray, input_shape: tuple[int | None, ...], what: str, key: str) -> None:
    """`x` (batch first) must fit the model's per-example input shape."""
    got = x.shape[1:]
    if not shape_fits(got, input_shape):
        raise DataError(f"input_shape {list(input_shape)} does not match {what} of shape {list(got)} "
                        "(per example, batch dimension excluded)", key=key)


def shape_fits(got: tuple[int, ...], want: tuple[int | None, ...]) -> bool:
    """Whether a concrete per-example shape matches a declared one with optional null dimensions."""
    return len(got) == len(want) and all(w is None or g == w for g, w in zip(got, want))


def is_number(text: str) -> bool:
    """Whether a CSV cell parses as a number (nan and inf included: they are numbers, checked later)."""
    try:
        float(text)
    except ValueError:
        return False
    return True
