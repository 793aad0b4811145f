"""CSV and Parquet tables of named columns (read by pyarrow) -> one array per feature column, for a model whose
inputs kcli builds from the columns (`model.input_shape` left out).

Column kinds are declared in `data.columns` or inferred from the training file (numbers -> number, free text
(column_stats.looks_like_text) -> text, other strings -> category); what the model needs to encode them
(vocabularies, fill values, encodings) is learned on the training split only (column_stats.py, text_columns.py)
and recorded in `data.columns`, so the run's config.yaml rebuilds the same model and reads any other file
(validation, test, predict input) the same way. Missing cells (empty, NA, NaN)
follow the column's policy: an error (default) naming the file, row and column; or kept for the model to fill
(numbers stay NaN, text becomes "", whole-number codes -1), see kcli/model/table_inputs.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kcli.config.model_io import input_name
from kcli.config.models import ColumnConfig, DataConfig
from kcli.data import csv_reader, text_columns
from kcli.data.checks import as_float, file_key, first_not_whole, first_text, is_number, text_column
from kcli.data.column_stats import MISSING_CODE, looks_like_text
from kcli.data.splits import Arrays
from kcli.errors import DataError


def read_table(path: Path, source: str, key: str, features: dict[str, str] | None = None) -> Any:
    """The whole file as a pyarrow Table (header line = column names for CSV; TFRecord: the `features`)."""
    import pyarrow as pa

    if source == "tfrecord":
        from kcli.data import tfrecords

        return tfrecords.read_table(path, features, key)
    if not path.is_file():
        raise DataError(f"data file not found: {path}" if not path.exists() else f"{path} is not a file",
                        key=file_key(key))
    try:
        if source == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        else:
            table = csv_reader.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read {path} as {source}: {csv_reader.arrow_problem(exc)}", key=file_key(key)) from None
    column_names(table, path, key)
    if source == "csv":
        check_text(table, path, key)
    if table.num_rows == 0:
        raise DataError(f"{path} has a header but no rows", key=file_key(key))
    return table


def column_names(table: Any, path: Path, key: str) -> list[str]:
    """A table's (or a CSV reader's) column names, each once (a name twice in a header is one line naming it)."""
    try:
        names = [str(n) for n in table.schema.names]
    except UnicodeDecodeError:   # pyarrow decodes the names only when asked
        raise DataError(f"{path}: its header line is not UTF-8 text; save the file as UTF-8",
                        key=file_key(key)) from None
    check_names(names, path, file_key(key))
    return names


def check_names(names: list[str], path: Path, key: str) -> None:
    """A header's names must be non-empty and each once (a column is its name: data.columns, inputs, --label)."""
    empty = [str(i + 1) for i, n in enumerate(names) if not n.strip()]
    if empty:
        raise DataError(f"{path}: column(s) {', '.join(empty)} of the header have no name; give every column a "
                        "name in the header line", key=key)
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise DataError(f"{path}: the column name(s) {', '.join(map(repr, doubled))} appear more than once",
                        key=key)


def check_text(table: Any, path: Path, key: str, first_row: int = 0) -> None:
    """A CSV's cells must be UTF-8 text: pyarrow reads a column holding other bytes as binary; its first such cell
    is named (`first_row`: data rows before this block)."""
    import pyarrow as pa

    for index, name in enumerate(column_names(table, path, key)):   # the header's bytes first
        column = table.column(index)
        if not (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
            continue
        for row, cell in enumerate(column.to_pylist()):
            try:
                cell is None or cell.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(csv_reader.not_utf8(path, first_row + row + 1, name), key=file_key(key)) from None


def read_tables(files: list[Path], source: str, key: str, features: dict[str, str] | None = None) -> Any:
    """Several files of one table (shards), read whole and joined in file order."""
    import pyarrow as pa

    parts = [read_table(f, source, key, features) for f in files]
    if len(parts) == 1:
        return parts[0]
    for f, part in zip(files[1:], parts[1:]):
        if part.column_names != parts[0].column_names:
            raise DataError(f"{f} has the columns {', '.join(part.column_names)}; {files[0]} has "
                            f"{', '.join(parts[0].column_names)}: the files of a table need the same columns",
                            key=file_key(key))
    try:
        return pa.concat_tables(parts, promote_options="permissive")
    except pa.ArrowException as exc:
        raise DataError(f"the files of {files[0].parent} do not join into one table: {exc}",
                        key=file_key(key)) from None


def infer(table: Any, data: DataConfig, path: Path) -> dict[str, ColumnConfig]:
    """Every column's kind (declared, or inferred from its type) and missing policy; label and sample-weight
    columns are not features. Declared columns the file lacks are an error naming the key."""
    import pyarrow as pa

    names = column_names(table, path, "data")
    declared = data.columns or {}
    for name in declared:
        if name not in names:
            from kcli.config.suggest import did_you_mean

            raise DataError(f"{path} has no column {name!r}{did_you_mean(name, names)}; columns: {', '.join(names)}",
                            key=f"data.columns.{name}")
    for what, column in (("label", data.label), ("sample_weight", data.sample_weight)):
        if column is not None and column not in names:
            raise DataError(f"{path} has no column {column!r}; columns: {', '.join(names)}", key=f"data.{what}")
    columns: dict[str, ColumnConfig] = {}
    for name in names:
        if name in (data.label, data.sample_weight):
            continue
        spec = declared.get(name, ColumnConfig()).model_copy()
        if spec.kind is None:
            kind = table.schema.field(name).type
            spec.kind = "number" if pa.types.is_integer(kind) or pa.types.is_floating(kind) or \
                pa.types.is_boolean(kind) or pa.types.is_decimal(kind) else \
                "text" if looks_like_text(table.column(name)) else "category"
        if spec.kind == "text":   # empty text is valid text: no missing policy
            spec = text_columns.with_defaults(spec)
        elif spec.kind != "ignore" and spec.missing is None:
            spec.missing = data.missing or "error"
        columns[name] = spec
    used = [n for n, c in columns.items() if c.kind != "ignore"]
    if not used:
        raise DataError(f"{path} has no feature columns besides the label", key="data.columns")
    check_input_names(used, path, "data.columns")
    return columns


def check_input_names(features: list[str], path: Path, key: str) -> None:
    """Feature columns become the model's inputs, named by `input_name`: two columns may not make one name."""
    seen: dict[str, str] = {}
    for name in features:
        first = seen.setdefault(input_name(name), name)
        if first != name:
            raise DataError(f"{path}: columns {first!r} and {name!r} both make the input name {input_name(name)!r}; "
                            "ignore one (kind: ignore) or rename it", key=key)


def only_numbers(table: Any, columns: dict[str, ColumnConfig], path: Path, key: str) -> None:
    """The feature columns of a table read as one matrix of numbers (model.input_shape) hold numbers: a text
    column is one line (from the first block of a streamed file)."""
    for name, column in columns.items():
        if column.kind in ("number", "ignore"):
            continue
        found = first_text(table.column(name).to_pylist())
        row, text, column_of_text = found if found is not None else (0, str(table.column(name)[0]), True)
        if column_of_text:
            raise text_column(path, name, text, row + 1, key)
        raise DataError(f"{path}: data row {row + 1}, column {name!r} is {text!r}, not a number", key=file_key(key))


def matrix(table: Any, data: DataConfig, path: Path, key: str, label: str | None,
           features: list[str] | None = None) -> Arrays:
    """A whole table's number columns (`features`, by name, or all) as one (rows, columns) matrix, the input of
    model.input_shape, and its labels."""
    columns = infer(table, data, path)
    only_numbers(table, columns, path, key)
    names = features or [n for n, c in columns.items() if c.kind != "ignore"]
    arrays = read_split(table, {n: columns.get(n, ColumnConfig(kind="number", missing="error")) for n in names},
                        path, key, label)
    assert isinstance(arrays.x, dict)
    return Arrays(np.concatenate([arrays.x[input_name(n)] for n in names], axis=1), arrays.y, names)


@dataclass(frozen=True)
class Where:
    """Where rows come from, for messages: the file, the config key, and the data row number of the first row
    (blocks of a streamed file start further down)."""

    path: Path
    key: str
    first_row: int = 0

    def row(self, index: int) -> int:
        """The 1-based data row (as editors count, after the header) of row `index` of this block."""
        return self.first_row + index + 1


def read_split(table: Any, columns: dict[str, ColumnConfig], path: Path, key: str, label: str | None,
               weight: str | None = None, first_row: int = 0) -> Arrays:
    """The feature arrays (one (n, 1) array per input name), labels (`label` column; none: zeros) and sample
    weights (`weight` column) of one file (or of a block of it whose first row is data row `first_row` + 1)."""
    where = Where(path, key, first_row)
    x: dict[str, np.ndarray] = {}
    names = [str(n) for n in table.column_names]
    for name, spec in columns.items():
        if spec.kind == "ignore":
            continue
        if name not in names:
            raise DataError(f"{path} lacks the feature column {name!r} the model takes; it has: {', '.join(names)}",
                            key=file_key(key))
        x[input_name(name)] = _feature(table.column(name), name, spec, where)
    y = read_labels(table, path, key, label, first_row)
    if weight is not None and weight not in names:
        raise DataError(f"{path} has no sample-weight column {weight!r}; columns: {', '.join(names)}",
                        key="data.sample_weight")
    w = _weights(table.column(weight), weight, where) if weight is not None else None
    return Arrays(x, y, None, w)


def read_labels(table: Any, path: Path, key: str, label: str | None, first_row: int = 0) -> np.ndarray:
    """The `label` column of a file (or of a block whose first row is data row `first_row` + 1); none: zeros."""
    if label is None:
        return np.zeros(table.num_rows, np.int64)
    names = [str(n) for n in table.column_names]
    if label not in names:
        raise DataError(f"{path} has no label column {label!r}; columns: {', '.join(names)}",
                        key=f"{key}.label" if key == "data" else file_key(key))
    return _label(table.column(label), label, Where(path, key, first_row))


def _feature(column: Any, name: str, spec: ColumnConfig, where: Where) -> np.ndarray:
    if spec.kind == "number":
        values = _numbers(column, name, where)
        bad = np.isinf(values)
        if bad.any():
            raise DataError(f"{where.path}: data row {where.row(int(np.argmax(bad)))}, column {name!r}: "
                            f"{values[bad][0]} is not a finite number", key=file_key(where.key))
        _check_missing(np.isnan(values), name, spec, where)
        return as_float(values.reshape(-1, 1), "float32", str(where.path), where.key, where.row(0), [name])
    if spec.kind != "text" and _is_int_column(column, spec):
        values = _numbers(column, name, where, whole=True)
        missing = np.isnan(values)
        _check_missing(missing, name, spec, where)
        return np.where(missing, MISSING_CODE, values).astype(np.int64).reshape(-1, 1)
    import pyarrow.compute as pc

    texts = pc.utf8_trim_whitespace(_as_text(column, name, where))
    _check_missing(pc.is_null(texts).to_numpy(zero_copy_only=False), name, spec, where)
    return pc.fill_null(texts, "").to_numpy(zero_copy_only=False).astype(object).reshape(-1, 1)


def _as_text(column: Any, name: str, where: Where) -> Any:
    """The column as UTF-8 strings; a Parquet binary cell that is not UTF-8 names its row (as a CSV cell does)."""
    import pyarrow as pa

    try:
        return column.cast(pa.string())
    except pa.ArrowInvalid:
        if not (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
            raise
        for row, cell in enumerate(column.to_pylist()):
            try:
                (cell or b"").decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(csv_reader.not_utf8(where.path, where.row(row), name),
                                key=file_key(where.key)) from None
        raise


def _is_int_column(column: Any, spec: ColumnConfig) -> bool:
    import pyarrow as pa

    if spec.vocabulary:
        return isinstance(spec.vocabulary[0], int)
    return bool(pa.types.is_integer(column.type))


def _numbers(column: Any, name: str, where: Where, whole: bool = False) -> np.ndarray:
    """A column as float64, nulls as NaN; a cell that is not a number (whole: not a whole number within int64, as
    an integer category code must be) names its row."""
    import pyarrow as pa

    values = _floats(column, name, where)
    if whole and not pa.types.is_signed_integer(column.type):   # an int64 column's cells are whole by type
        # true/false, 2.7 or 1e30 would otherwise become a code silently (1, 2, or an undefined int64)
        flags = pa.types.is_boolean(column.type)
        found = first_not_whole(np.where(np.isnan(values), 0.0, values).reshape(-1, 1))   # empty cells: later
        if flags or found is not None:
            row = 0 if flags else found[0]
            shown = "read as true/false, not as whole numbers" if flags else \
                f"{found[2]:g}, not a whole number within int64"
            raise DataError(f"{where.path}: data row {where.row(row)}, column {name!r} is {shown} (the column "
                            "holds integer category codes)", key=file_key(where.key))
    return values


def _floats(column: Any, name: str, where: Where) -> np.ndarray:
    """A column as float64, nulls as NaN; a cell that is not a number names its row."""
    import pyarrow as pa

    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        texts = column.to_pylist()
        for row, text in enumerate(texts):
            if text is not None and not is_number(text):
                raise DataError(f"{where.path}: data row {where.row(row)}, column {name!r} is {text!r}, not a "
                                f"number (text columns are categories: data.columns.{name}.kind: category)",
                                key=file_key(where.key))
        return np.array([float(t) if t is not None else np.nan for t in texts], dtype=np.float64)
    try:
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
    except pa.ArrowException as exc:
        raise DataError(f"{where.path}: column {name!r} cannot be read as numbers ({exc})",
                        key=file_key(where.key)) from None



def _check_missing(missing: np.ndarray, name: str, spec: ColumnConfig, where: Where) -> None:
    if spec.missing == "error" and missing.any():
        raise DataError(f"{where.path}: data row {where.row(int(np.argmax(missing)))}, column {name!r} is empty "
                        f"({int(missing.sum())} missing in this column{' block' if where.first_row else ''}); set "
                        f"data.missing (or data.columns.{name}.missing) to fill or indicator to let the model fill "
                        "them", key="data.missing")


def _label(column: Any, name: str, where: Where) -> np.ndarray:
    """Labels: class names (text) as str, whole numbers as int64 class ids, other numbers as float."""
    import pyarrow as pa

    if column.null_count:
        row = next(i for i, v in enumerate(column.to_pylist()) if v is None)
        raise DataError(f"{where.path}: data row {where.row(row)}: the label {name!r} is empty; every row needs a "
                        "label", key=file_key(where.key))
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
        y = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        if not np.isfinite(y).all():
            raise DataError(f"{where.path}: data row {where.row(int(np.argmax(~np.isfinite(y))))}: the label "
                            f"{name!r} is {y[~np.isfinite(y)][0]}", key=file_key(where.key))
        return y.astype(np.int64) if np.all(y == np.round(y)) else y.astype(np.float32)
    return np.array([str(v).strip() for v in column.to_pylist()], dtype=str)


def _weights(column: Any, name: str, where: Where) -> np.ndarray:
    w = _numbers(column, name, where)
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        raise DataError(f"{where.path}: data row {where.row(int(np.argmax(bad)))}: the sample weight {name!r} is "
                        f"{w[bad][0]}; weights are finite numbers >= 0", key="data.sample_weight")
    return w.astype(np.float32)
