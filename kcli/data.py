"""config.data -> numpy arrays for train / validation / test.

Arrays (not tf.data) go to `model.fit`, exactly as a hand-written Keras script passes them, so that
batching and seeded shuffling are Keras's own and the numbers match such a script (pipeline.py turns
them into what `fit` gets).
"""

from __future__ import annotations

import csv
import hashlib
import math
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from kcli import image_source, keras_datasets, python_source
from kcli import ports as ports_mod
from kcli.config import DataConfig, SplitSource
from kcli.datasets import BUILTIN
from kcli.errors import DataError
from kcli.imports import Registry
from kcli.ports import Ports, Tree
from kcli.python_source import Stream


@dataclass
class Arrays:
    """Features and labels of one split (a dict by input / output name for named inputs / several outputs)."""

    x: Tree
    y: Tree
    columns: list[str] | None = None   # CSV feature column names, in order

    def __len__(self) -> int:
        return ports_mod.rows(self.x)

    def take(self, index: np.ndarray) -> Arrays:
        """The rows at `index`."""
        return Arrays(ports_mod.take(self.x, index), ports_mod.take(self.y, index), self.columns)


@dataclass
class Splits:
    """The data of a run: train, and optionally validation and test."""

    train: Arrays | Stream
    validation: Arrays | Stream | None = None
    test: Arrays | Stream | None = None
    classes: int | None = None   # the one-hot class count, when labels were one-hot encoded
    class_names: list[str] | None = None   # an image folder's classes, by class id


def load(data: DataConfig, seed: int, ports: Ports, registry: Registry | None = None) -> Splits:
    """Read, split and preprocess the data a (resolved) config describes (`source: python`: the datasets the
    user's function makes, as Streams; `registry` records its file)."""
    if data.source == "python":
        return Splits(*python_source.load(data, seed, ports, registry))
    if data.source == "images":
        train, validation, test, names = image_source.load(data, seed, ports)
        return Splits(train, validation, test, class_names=names)
    def read(sub: SplitSource | None, key: str, columns: list[str] | None = None) -> Arrays:
        if ports.named or ports.several_outputs:
            return read_ports(_source_of(data, sub), key, data, ports)
        return _read(_source_of(data, sub), key, data, seed, ports.single_shape, columns)

    if data.source == "keras":   # Keras's own train / test parts
        (x, y), (x_test, y_test) = keras_datasets.load(data.name or "", data.num_words, data.maxlen, "data")
        train, validation, test = Arrays(x, y), None, Arrays(x_test, y_test)
    else:
        train = read(None, "data")
        validation = read(data.validation, "data.validation", train.columns) if data.validation else None
        test = read(data.test, "data.test", train.columns) if data.test else None
    train, validation, test = _hold_out(train, validation, test, data, seed)
    splits = Splits(train, validation, test)
    if isinstance(train.y, np.ndarray) and train.y.dtype.kind == "U":   # class names from a CSV label column
        splits.class_names = encode_class_names(splits, sorted(set(train.y.tolist())))
    return _preprocess(splits, data, ports)


def encode_class_names(splits: Splits, names: list[str]) -> list[str]:
    """String labels -> class ids in the order of `names` (the training split's sorted class names); a name the
    training split lacks is one line naming it."""
    ids = {name: i for i, name in enumerate(names)}
    for split, arrays in (("data", splits.train), ("data.validation", splits.validation), ("data.test", splits.test)):
        if not isinstance(arrays, Arrays) or arrays is None:
            continue
        y = np.asarray(arrays.y)
        unknown = sorted(set(y.astype(str).tolist()) - set(ids))
        if unknown:
            raise DataError(f"the {split.removeprefix('data.') if '.' in split else 'training'} labels hold class(es) "
                            f"{', '.join(map(repr, unknown[:5]))} that the training split does not have "
                            f"({', '.join(map(repr, names[:10]))}{', ...' if len(names) > 10 else ''})",
                            key=f"{split}.label" if split == "data" else split)
        arrays.y = np.array([ids[v] for v in y.astype(str).tolist()], dtype=np.int64)
    return names


def load_file(path: Path, data: DataConfig, key: str, ports: Ports, label: str | None = None,
              features: list[str] | None = None, class_names: list[str] | None = None) -> Arrays:
    """Another .npz/.csv file, read with a run's preprocessing (scale, one_hot, label column); a CSV's feature
    columns are matched by the names the run was trained on (`features`), in any order. Named inputs and
    several outputs read the same columns / arrays as training."""
    suffix = path.suffix.lower()
    if (ports.named or ports.several_outputs) and suffix in (".npz", ".csv"):
        source = suffix[1:]
        if source != data.source:
            raise DataError(f"{path}: the run read its inputs from {data.source} data; give a .{data.source} file",
                            key=key)
        src = {"source": source, "path": str(path)}
        return _preprocess(Splits(read_ports(src, key, data, ports)), data, ports).train
    if suffix == ".npz":
        arrays = read_npz(path, data.x_key or "x", data.y_key or "y", key)
    elif suffix == ".csv":
        label = label or data.label
        if label is None:
            raise DataError(f"the run was trained on {data.source} data, so the label column of {path.name} is "
                            "unknown; name it with --label", key=key)
        if features:
            arrays = read_csv_columns(path, csv_header(path, key), features, label, key)
        else:
            arrays = read_csv(path, label, key)
    else:
        raise DataError(f"{path}: expected a .npz or .csv file", key=key)
    if isinstance(arrays.y, np.ndarray) and arrays.y.dtype.kind == "U":
        if not class_names:
            raise DataError(f"{path}: the labels are names, but the run was trained on class ids", key=key)
        encode_class_names(Splits(arrays), class_names)
    return _preprocess(Splits(arrays), data).train


def _preprocess(splits: Splits, data: DataConfig, ports: Ports | None = None) -> Splits:
    """The same arithmetic for every split and file: one-hot labels, float32 scaled features (named inputs:
    each in its declared dtype, `scale` on float inputs only)."""
    if data.one_hot:
        splits.classes = _one_hot(splits, data.one_hot)
    dtypes = {p.name: p.dtype for p in ports.inputs} if ports is not None and ports.named else {}
    for arrays in _present(splits):
        arrays.x = ports_mod.tmap(lambda name, x: scale_features(x, data.scale, dtypes.get(name or "")), arrays.x)
        arrays.y = ports_mod.tmap(lambda _, y: y.astype(np.float32) if y.dtype.kind == "f" else y, arrays.y)
    return splits


def scale_features(x: np.ndarray, scale: float | None, dtype: str | None = None) -> np.ndarray:
    """Features as float32 (or a named input's dtype), multiplied by `data.scale` when set and the features are
    floats (the same arithmetic as training)."""
    x = x.astype(dtype or np.float32)
    return x * x.dtype.type(scale) if scale is not None and x.dtype.kind == "f" else x


def _present(splits: Splits) -> list[Arrays]:
    return [a for a in (splits.train, splits.validation, splits.test) if a is not None]


def _source_of(data: DataConfig, sub: SplitSource | None) -> dict[str, Any]:
    """The reading instructions for train (sub=None) or a split, with unset fields taken from `data`."""
    fields = ("source", "name", "path", "x_key", "y_key", "label")
    own = {f: getattr(sub, f) for f in fields} if sub is not None else {}
    return {f: own.get(f) if own.get(f) is not None else getattr(data, f) for f in fields}


def _read(src: dict[str, Any], key: str, data: DataConfig, seed: int,
          feature_shape: tuple[int | None, ...], features: list[str] | None = None) -> Arrays:
    """One split as its source describes it; a CSV split takes the training columns by name (any order)."""
    source = src["source"]
    if source == "builtin":
        return read_builtin(src["name"], key)
    if source == "npz":
        return read_npz(Path(src["path"]), src["x_key"] or "x", src["y_key"] or "y", key)
    if source == "csv":
        if features is not None:
            path = Path(src["path"])
            return read_csv_columns(path, csv_header(path, key), features, src["label"], key)
        return read_csv(Path(src["path"]), src["label"], key)
    if key != "data":
        raise DataError("synthetic data is split with validation_split / test_split", key=key)
    return synthetic(data.samples or 1000, data.classes or 2, feature_shape, seed)


def read_builtin(name: str, key: str = "data") -> Arrays:
    """A dataset shipped inside the package."""
    if name not in BUILTIN:
        raise DataError(f"unknown builtin dataset {name!r}; available: {', '.join(BUILTIN)}", key=f"{key}.name")
    with resources.files("kcli.datasets").joinpath(BUILTIN[name]).open("rb") as fh:
        with np.load(fh) as npz:
            return Arrays(npz["x"], npz["y"])


def read_npz(path: Path, x_key: str, y_key: str | None, key: str = "data") -> Arrays:
    """Arrays `x_key` and `y_key` of an .npz file (y_key None: features only)."""
    npz = _open_npz(path, key)
    with npz:
        keys = [k for k in (x_key, y_key) if k is not None]
        for k in keys:
            if k not in npz.files:
                raise DataError(f"{path} has no array {k!r}; it has: {', '.join(npz.files) or 'nothing'}",
                                key=f"{key}.{'x_key' if k == x_key else 'y_key'}")
        try:
            x = npz[x_key]
            y = npz[y_key] if y_key is not None else np.zeros((len(x),), np.float32)
        except Exception as exc:  # a truncated or corrupt member
            raise DataError(f"cannot read {path} (damaged or truncated?): {reason(exc)}",
                            key=_file_key(key)) from None
    if x.ndim == 0 or y.ndim == 0:
        raise DataError(f"{path}: {x_key} and {y_key} must be arrays with one row per example", key=_file_key(key))
    if len(x) != len(y):
        raise DataError(f"{path}: {x_key} has {len(x)} rows but {y_key} has {len(y)}", key=key)
    if len(x) == 0:
        raise DataError(f"{path} has 0 rows", key=_file_key(key))
    check_numbers(x, f"{path}: array {x_key!r}", key)
    if y_key is not None:
        check_numbers(y, f"{path}: array {y_key!r}", key)
    return Arrays(x, y)


def _open_npz(path: Path, key: str) -> Any:
    try:
        npz = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"data file not found: {path}", key=_file_key(key)) from None
    except IsADirectoryError:
        raise DataError(f"{path} is a directory, not an .npz file", key=_file_key(key)) from None
    except Exception as exc:  # numpy raises OSError/ValueError/BadZipFile/EOFError for damaged files
        raise DataError(f"cannot read {path} as .npz: {reason(exc)}", key=_file_key(key)) from None
    if not hasattr(npz, "files"):
        raise DataError(f"{path} is a single .npy array, not an .npz archive", key=_file_key(key))
    return npz


def _file_key(key: str) -> str:
    """The key a problem with a data file names: `data.path` for a config split, the option itself (`--input`,
    `--data`) for a file given on the command line."""
    return key if key.startswith("--") else f"{key}.path"


def reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def first_non_finite(a: np.ndarray) -> tuple[int, int, float, int] | None:
    """(row, column, value, how many) of the first NaN or inf in a float array (rows first, features
    flattened), or None when every value is finite."""
    if a.dtype.kind != "f" or a.size == 0:
        return None
    flat = a.reshape(len(a), -1)
    bad = ~np.isfinite(flat)
    if not bad.any():
        return None
    row, col = (int(i) for i in np.argwhere(bad)[0])
    return row, col, flat[row, col], int(bad.sum())


def check_numbers(a: np.ndarray, what: str, key: str, columns: list[str] | None = None) -> None:
    """Numbers only, all finite: NaN or inf names its row and column (1-based, as editors count)."""
    if a.dtype.kind not in "biuf":
        hint = " (string class names are not supported yet: map them to 0..n-1)" if a.dtype.kind in "USO" else ""
        raise DataError(f"{what} holds {a.dtype} values; expected numbers{hint}", key=_file_key(key))
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
                    f"rows{when}", key=_file_key(key))


def csv_header(path: Path, key: str = "data") -> list[str]:
    """The column names of a CSV file (its first line)."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), None)
    except FileNotFoundError:
        raise DataError(f"data file not found: {path}", key=_file_key(key)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}", key=_file_key(key)) from None
    if not header:
        raise DataError(f"{path} is empty; expected a header line with column names", key=_file_key(key))
    return [h.strip() for h in header]


def read_csv(path: Path, label: str, key: str = "data") -> Arrays:
    """A CSV file with a header line: `label` is the label column, all others are numeric features."""
    header = csv_header(path, key)
    if label not in header:
        raise DataError(f"{path} has no column {label!r}; columns: {', '.join(header)}", key=f"{key}.label")
    return read_csv_columns(path, header, [h for h in header if h != label], label, key)


def read_csv_columns(path: Path, header: list[str], features: list[str], label: str | None,
                     key: str) -> Arrays:
    """The named feature columns (in the order given, matched by name) and label column of a CSV file."""
    _need_columns(path, header, [*features, *([label] if label else [])], key)
    names = _class_names_column(path, header.index(label)) if label else None
    if names is not None:   # class names: the numbers are the features only
        table = csv_table(path, header, key, [header.index(c) for c in features])
        return Arrays(table, names, features)
    table = csv_table(path, header, key)
    y = _label_column(table[:, header.index(label)]) if label else np.zeros(len(table), np.int64)
    return Arrays(table[:, [header.index(c) for c in features]], y, features)


def _class_names_column(path: Path, index: int) -> np.ndarray | None:
    """The label column as strings when it holds class names (any value that is not a number), else None."""
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        rows = csv.reader(fh)
        next(rows, None)
        values = [row[index].strip() for row in rows if row and any(v.strip() for v in row) and len(row) > index]
    if all(is_number(v) for v in values):
        return None
    return np.array(values, dtype=str)


def _need_columns(path: Path, header: list[str], wanted: list[str], key: str) -> None:
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataError(f"{path} lacks the column(s) {', '.join(map(repr, missing))}; it has: {', '.join(header)}",
                        key=_file_key(key))


def _label_column(y: np.ndarray) -> np.ndarray:
    """Whole-number labels as int64 (class ids), others as read."""
    return y.astype(np.int64) if np.all(y == np.round(y)) else y


def csv_table(path: Path, header: list[str], key: str, columns: list[int] | None = None) -> np.ndarray:
    """Every data row of a CSV file as float64 numbers (only `columns`, by index, when given), checked: one line
    naming the row and column otherwise."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)   # loadtxt warns about an empty file
            table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2, usecols=columns)
    except ValueError:
        row, problem = first_bad_row(path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[-1],
                                     len(header), header, columns)
        raise DataError(f"{path}: data row {row + 1}: {problem}; every row must hold {len(header)} values, "
                        "numbers in the feature columns", key=_file_key(key)) from None
    if table.shape[0] == 0:
        raise DataError(f"{path} has a header but no rows", key=_file_key(key))
    names = header if columns is None else [header[i] for i in columns]
    if table.shape[1] != len(names):
        raise DataError(f"{path}: rows have {table.shape[1]} values, the header {len(header)}", key=_file_key(key))
    check_numbers(table, str(path), key, names)
    return table


def read_ports(src: dict[str, Any], key: str, data: DataConfig, ports: Ports) -> Arrays:
    """One split for named inputs and/or several outputs: each input from its CSV columns or npz array, each
    output's labels from `data.labels` (npz default: the array named like the output)."""
    source, path = src["source"], Path(src["path"] or "")
    if source not in ("npz", "csv"):
        raise DataError(f"named inputs and several outputs read source npz or csv, not {source}", key="data.source")
    labels = label_sources(data, ports)
    if source == "csv":
        header = csv_header(path, key)
        _need_columns(path, header, [c for p in ports.inputs for c in p.columns or ()] + list(labels.values()), key)
        table = csv_table(path, header, key)
        x: Tree = {p.name: table[:, [header.index(c) for c in p.columns or ()]] for p in ports.inputs}
        ys = {o: _label_column(table[:, header.index(c)]) for o, c in labels.items()}
    else:
        found = read_npz_arrays(path, [*(p.array or p.name for p in ports.inputs), *labels.values()], key)
        x = {p.name: found[p.array or p.name] for p in ports.inputs}
        ys = {o: found[a] for o, a in labels.items()}
    if not ports.named:
        x = next(iter(x.values()))   # type: ignore[union-attr]
    y: Tree = ys if ports.several_outputs else next(iter(ys.values()))
    return Arrays(x, y)


def label_sources(data: DataConfig, ports: Ports) -> dict[str, str]:
    """Output name -> label column (csv) or array (npz); one output is named `output`."""
    if not ports.several_outputs:
        column = data.label if data.source == "csv" else data.y_key or "y"
        return {"output": column or ""}
    given = data.labels or {}
    if data.source == "csv":
        return {o: given[o] for o in ports.outputs}
    return {o: given.get(o, o) for o in ports.outputs}


def read_npz_arrays(path: Path, names: list[str], key: str) -> dict[str, np.ndarray]:
    """Named arrays of an .npz file, checked: numbers, all finite, one row per example each."""
    npz = _open_npz(path, key)
    with npz:
        for name in names:
            if name not in npz.files:
                raise DataError(f"{path} has no array {name!r}; it has: {', '.join(npz.files) or 'nothing'}",
                                key=_file_key(key))
        try:
            found = {name: npz[name] for name in dict.fromkeys(names)}
        except Exception as exc:  # a truncated or corrupt member
            raise DataError(f"cannot read {path} (damaged or truncated?): {reason(exc)}", key=_file_key(key)) from None
    lengths = {name: len(a) if a.ndim else -1 for name, a in found.items()}
    if len(set(lengths.values())) != 1 or -1 in lengths.values():
        raise DataError(f"{path}: the arrays must have one row per example each; rows: "
                        f"{', '.join(f'{k} {v}' for k, v in lengths.items())}", key=_file_key(key))
    if not next(iter(lengths.values())):
        raise DataError(f"{path} has 0 rows", key=_file_key(key))
    for name, a in found.items():
        check_numbers(a, f"{path}: array {name!r}", key)
    return found


def synthetic(samples: int, classes: int, feature_shape: tuple[int | None, ...], seed: int) -> Arrays:
    """A seeded, learnable classification problem: labels are the argmax of a random linear map."""
    if any(d is None for d in feature_shape):
        raise DataError("synthetic data needs a fully known model.input_shape (no null dimensions)",
                        key="model.input_shape")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, *feature_shape)).astype(np.float32)
    weights = rng.normal(size=(math.prod(feature_shape), classes))  # type: ignore[arg-type]
    y = np.argmax(x.reshape(samples, -1) @ weights, axis=1).astype(np.int64)
    return Arrays(x, y)


def _hold_out(train: Arrays, validation: Arrays | None, test: Arrays | None, data: DataConfig,
              seed: int) -> tuple[Arrays, Arrays | None, Arrays | None]:
    """Carve test_split / validation_split out of train with a seeded permutation; rows keep file order."""
    n = len(train)
    n_test = _count(n, data.test_split, "data.test_split")
    n_val = _count(n, data.validation_split, "data.validation_split")
    if n_test == 0 and n_val == 0:
        return train, validation, test
    perm = np.random.default_rng(seed).permutation(n)
    if n_test:
        test = train.take(np.sort(perm[:n_test]))
    if n_val:
        validation = train.take(np.sort(perm[n_test:n_test + n_val]))
    return train.take(np.sort(perm[n_test + n_val:])), validation, test


def _count(n: int, fraction: float | None, key: str) -> int:
    if fraction is None:
        return 0
    count = round(n * fraction)
    if count == 0 or count == n:
        raise DataError(f"{fraction} of {n} rows leaves an empty split", key=key)
    return count


def _one_hot(splits: Splits, one_hot: bool | int) -> int:
    """Integer labels -> one-hot rows; `one_hot: true` infers the class count from every split."""
    for name, arrays in (("train", splits.train), ("validation", splits.validation), ("test", splits.test)):
        if arrays is None:
            continue
        if isinstance(arrays.y, dict):
            raise DataError("one_hot works on the labels of one output; with several outputs use sparse losses "
                            "(SparseCategoricalCrossentropy takes class ids)", key="data.one_hot")
        y = arrays.y.reshape(len(arrays.y), -1)
        if y.shape[1] != 1 or not np.all(np.equal(np.mod(y, 1), 0)) or y.min() < 0:
            raise DataError(f"one_hot needs one non-negative integer label per row; the {name} labels have "
                            f"shape {arrays.y.shape[1:] or '()'}", key="data.one_hot")
        arrays.y = y[:, 0].astype(np.int64)
    present = _present(splits)
    classes = int(max(a.y.max() for a in present)) + 1 if one_hot is True else int(one_hot)
    for arrays in present:
        if arrays.y.max() >= classes:
            raise DataError(f"label {int(arrays.y.max())} does not fit one_hot: {classes} classes",
                            key="data.one_hot")
        arrays.y = np.eye(classes, dtype=np.float32)[arrays.y]
    return classes


def balanced_class_weight(train: Arrays | Stream) -> dict[int, float]:
    """sklearn's "balanced" weights from the training labels: n_examples / (n_classes * count of the class)."""
    key = "fit.class_weight"
    if not isinstance(train, Arrays):
        raise DataError("balanced needs the labels in memory; with source python or images give the weights "
                        "as {class id: weight}", key=key)
    if isinstance(train.y, dict):
        raise DataError("class weights work on the labels of one output (Keras: class_weight is not supported "
                        "for several outputs)", key=key)
    y = np.asarray(train.y).reshape(len(train.y), -1)
    ids = np.argmax(y, axis=1) if y.shape[1] > 1 else y[:, 0]
    if not np.all(np.equal(np.mod(ids, 1), 0)) or ids.min() < 0:
        raise DataError("balanced needs class ids (non-negative integers) or one-hot labels", key=key)
    ids = ids.astype(np.int64)
    counts = np.bincount(ids, minlength=y.shape[1] if y.shape[1] > 1 else 0)
    n, k = len(ids), len(counts)
    return {c: float(n / (k * counts[c])) if counts[c] else 0.0 for c in range(k)}


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


def first_bad_row(text: str, width: int, names: list[str] | None = None,
                  numeric: list[int] | None = None) -> tuple[int, str]:
    """(index among the non-blank lines, what is wrong) of the first CSV line that is not `width` values with
    numbers in the `numeric` columns (default all): numpy's own messages count rows inconsistently (0-based in
    one, 1-based in another)."""
    rows = [line for line in text.splitlines() if line.strip()]
    for i, line in enumerate(rows):
        fields = line.split(",")
        if len(fields) != width:
            return i, f"{len(fields)} values, the first line {width}"
        for col, value in enumerate(fields):
            if (numeric is None or col in numeric) and not is_number(value.strip()):
                column = repr(names[col]) if names else str(col + 1)
                return i, f"column {column} is {value.strip()!r}, not a number"
    return 0, "cannot be read as numbers"


def fingerprints(data: DataConfig) -> dict[str, dict[str, Any]]:
    """sha256 and size of every data file a (resolved) config reads, by absolute path."""
    paths = [h.path for h in (data, data.validation, data.test) if h is not None and h.path]
    return {p: _fingerprint(Path(p)) for p in dict.fromkeys(paths)}


def _fingerprint(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return {"sha256": None, "bytes": None}
    return {"sha256": digest.hexdigest(), "bytes": path.stat().st_size}


def changed_files(recorded: dict[str, dict[str, Any]]) -> list[str]:
    """The files whose contents differ from their recorded fingerprints (or that are gone)."""
    return [p for p, fp in recorded.items() if _fingerprint(Path(p))["sha256"] != fp.get("sha256")]
