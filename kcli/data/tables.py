"""CSV and Parquet tables of named columns (read by pyarrow) -> one array per feature column, for a model whose
inputs kcli builds from the columns (`model.input_shape` left out).

Column kinds are declared in `data.columns` or inferred from the training file (numbers -> number, anything
else -> category); what the model needs to encode them (vocabularies, fill values, encodings) is learned on the
training split only and recorded in `data.columns`, so the run's config.yaml rebuilds the same model and reads
any other file (validation, test, predict input) the same way. Missing cells (empty, NA, NaN) follow the column's
policy: an error (default) naming the file, row and column; or kept for the model to fill (numbers stay NaN,
text becomes "", whole-number codes -1), see kcli/tabular.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kcli.config import ColumnConfig, DataConfig
from kcli.data.checks import _file_key
from kcli.data.splits import Arrays
from kcli.errors import DataError
from kcli.ports import input_name

ONE_HOT_UP_TO = 50   # categories with more values get an embedding by default
MISSING_CODE = -1    # a missing whole-number category: IntegerLookup's out-of-vocabulary token


def read_table(path: Path, source: str, key: str) -> Any:
    """The whole file as a pyarrow Table (header line = column names for CSV)."""
    import pyarrow as pa

    if not path.is_file():
        raise DataError(f"data file not found: {path}" if not path.exists() else f"{path} is not a file",
                        key=_file_key(key))
    try:
        if source == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        else:
            from pyarrow import csv

            table = csv.read_csv(path, convert_options=csv.ConvertOptions(strings_can_be_null=True))
    except (pa.ArrowException, OSError) as exc:
        text = " ".join(str(exc).split())
        if "Empty CSV file" in text:
            text = "it is empty; expected a header line with column names"
        raise DataError(f"cannot read {path} as {source}: {text}", key=_file_key(key)) from None
    names = [str(n) for n in table.column_names]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise DataError(f"{path}: the column name(s) {', '.join(map(repr, doubled))} appear more than once",
                        key=_file_key(key))
    if table.num_rows == 0:
        raise DataError(f"{path} has a header but no rows", key=_file_key(key))
    return table


def infer(table: Any, data: DataConfig, path: Path) -> dict[str, ColumnConfig]:
    """Every column's kind (declared, or inferred from its type) and missing policy; label and sample-weight
    columns are not features. Declared columns the file lacks are an error naming the key."""
    import pyarrow as pa

    names = [str(n) for n in table.column_names]
    declared = data.columns or {}
    for name in declared:
        if name not in names:
            from kcli.config import did_you_mean

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
                pa.types.is_boolean(kind) or pa.types.is_decimal(kind) else "category"
        if spec.kind != "ignore" and spec.missing is None:
            spec.missing = data.missing or "error"
        columns[name] = spec
    used = {input_name(n): n for n, c in columns.items() if c.kind != "ignore"}
    if not used:
        raise DataError(f"{path} has no feature columns besides the label", key="data.columns")
    clash = [n for n in columns if columns[n].kind != "ignore" and used[input_name(n)] != n]
    if clash:
        raise DataError(f"columns {clash[0]!r} and {used[input_name(clash[0])]!r} both make the input name "
                        f"{input_name(clash[0])!r}; ignore one (kind: ignore) or rename it", key="data.columns")
    return columns


def integer_codes(table: Any, name: str) -> bool:
    """Whether a category column holds whole numbers (-> IntegerLookup) rather than text (-> StringLookup)."""
    import pyarrow as pa

    return bool(pa.types.is_integer(table.schema.field(name).type))


def read_split(table: Any, columns: dict[str, ColumnConfig], path: Path, key: str, label: str | None,
               weight: str | None = None) -> Arrays:
    """The feature arrays (one (n, 1) array per input name), labels (`label` column; none: zeros) and sample
    weights (`weight` column) of one file."""
    x: dict[str, np.ndarray] = {}
    names = [str(n) for n in table.column_names]
    for name, spec in columns.items():
        if spec.kind == "ignore":
            continue
        if name not in names:
            raise DataError(f"{path} lacks the feature column {name!r} the model takes; it has: {', '.join(names)}",
                            key=_file_key(key))
        x[input_name(name)] = _feature(table, name, spec, path, key)
    y: np.ndarray = np.zeros(table.num_rows, np.int64)
    if label is not None:
        if label not in names:
            raise DataError(f"{path} has no label column {label!r}; columns: {', '.join(names)}",
                            key=f"{key}.label" if key == "data" else _file_key(key))
        y = _label(table, label, path, key)
    w = _weights(table, weight, path, key) if weight is not None else None
    return Arrays(x, y, None, w)


def _feature(table: Any, name: str, spec: ColumnConfig, path: Path, key: str) -> np.ndarray:
    column = table.column(name)
    if spec.kind == "number":
        values = _numbers(column, name, path, key)
        bad = np.isinf(values)
        if bad.any():
            raise DataError(f"{path}: data row {int(np.argmax(bad)) + 1}, column {name!r}: {values[bad][0]} is "
                            "not a finite number", key=_file_key(key))
        _check_missing(np.isnan(values), name, spec, path, key)
        return values.astype(np.float32).reshape(-1, 1)
    if _is_int_column(column, spec):
        values = _numbers(column, name, path, key)
        missing = np.isnan(values)
        _check_missing(missing, name, spec, path, key)
        return np.where(missing, MISSING_CODE, values).astype(np.int64).reshape(-1, 1)
    texts = column.cast(_string_type()).to_pylist()
    _check_missing(np.array([t is None for t in texts]), name, spec, path, key)
    return np.array([t.strip() if t is not None else "" for t in texts], dtype=object).reshape(-1, 1)


def _is_int_column(column: Any, spec: ColumnConfig) -> bool:
    import pyarrow as pa

    if spec.vocabulary:
        return isinstance(spec.vocabulary[0], int)
    return bool(pa.types.is_integer(column.type))


def _string_type() -> Any:
    import pyarrow as pa

    return pa.string()


def _numbers(column: Any, name: str, path: Path, key: str) -> np.ndarray:
    """A column as float64, nulls as NaN; a cell that is not a number names its row."""
    import pyarrow as pa

    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        texts = column.to_pylist()
        for row, text in enumerate(texts):
            if text is not None and not _is_number(text):
                raise DataError(f"{path}: data row {row + 1}, column {name!r} is {text!r}, not a number "
                                f"(text columns are categories: data.columns.{name}.kind: category)",
                                key=_file_key(key))
        return np.array([float(t) if t is not None else np.nan for t in texts], dtype=np.float64)
    try:
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
    except pa.ArrowException as exc:
        raise DataError(f"{path}: column {name!r} cannot be read as numbers ({exc})", key=_file_key(key)) from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_missing(missing: np.ndarray, name: str, spec: ColumnConfig, path: Path, key: str) -> None:
    if spec.missing == "error" and missing.any():
        raise DataError(f"{path}: data row {int(np.argmax(missing)) + 1}, column {name!r} is empty "
                        f"({int(missing.sum())} missing in this column); set data.missing (or data.columns.{name}."
                        "missing) to fill or indicator to let the model fill them", key="data.missing")


def _label(table: Any, name: str, path: Path, key: str) -> np.ndarray:
    """Labels: class names (text) as str, whole numbers as int64 class ids, other numbers as float."""
    import pyarrow as pa

    column = table.column(name)
    if column.null_count:
        row = next(i for i, v in enumerate(column.to_pylist()) if v is None)
        raise DataError(f"{path}: data row {row + 1}: the label {name!r} is empty; every row needs a label",
                        key=_file_key(key))
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
        y = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        if not np.isfinite(y).all():
            raise DataError(f"{path}: data row {int(np.argmax(~np.isfinite(y))) + 1}: the label {name!r} is "
                            f"{y[~np.isfinite(y)][0]}", key=_file_key(key))
        return y.astype(np.int64) if np.all(y == np.round(y)) else y.astype(np.float32)
    return np.array([str(v).strip() for v in column.to_pylist()], dtype=str)


def _weights(table: Any, name: str, path: Path, key: str) -> np.ndarray:
    w = _numbers(table.column(name), name, path, key)
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        raise DataError(f"{path}: data row {int(np.argmax(bad)) + 1}: the sample weight {name!r} is "
                        f"{w[bad][0]}; weights are finite numbers >= 0", key="data.sample_weight")
    return w.astype(np.float32)


def learn(columns: dict[str, ColumnConfig], train: Arrays) -> dict[str, ColumnConfig]:
    """What the model needs from the training split, for every feature column: vocabularies (sorted), encodings,
    embedding widths, fill values; what the config already says is kept."""
    assert isinstance(train.x, dict)
    learned = {}
    for name, spec in columns.items():
        spec = spec.model_copy()
        if spec.kind == "number":
            values = train.x[input_name(name)][:, 0]
            spec.normalize = True if spec.normalize is None else spec.normalize
            if spec.missing != "error" and spec.fill is None:
                present = values[~np.isnan(values)]
                if not len(present):
                    raise DataError(f"column {name!r} is empty in every training row: nothing to fill it with; "
                                    f"give data.columns.{name}.fill or ignore it", key=f"data.columns.{name}")
                spec.fill = float(np.mean(present.astype(np.float64)))
        elif spec.kind == "category":
            values = train.x[input_name(name)][:, 0]
            if spec.vocabulary is None:
                found = sorted({int(v) for v in values} - {MISSING_CODE}) if values.dtype.kind == "i" \
                    else sorted({str(v) for v in values})
                spec.vocabulary = found  # type: ignore[assignment]
            if not spec.vocabulary:
                raise DataError(f"column {name!r} has no values in the training rows; ignore it (kind: ignore)",
                                key=f"data.columns.{name}")
            if spec.encoding is None:
                spec.encoding = "one_hot" if len(spec.vocabulary) <= ONE_HOT_UP_TO else "embedding"
            if spec.encoding == "embedding" and spec.dim is None:
                spec.dim = embedding_dim(len(spec.vocabulary) + 1)
        learned[name] = spec
    return learned


def embedding_dim(values: int) -> int:
    """The default embedding width for a category with `values` values (fast.ai's rule of thumb)."""
    return min(50, round(1.6 * values ** 0.56)) or 1

