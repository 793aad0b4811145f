"""config.data -> the splits a run trains on: numpy arrays for train / validation / test (or, for your own
tf.data pipeline and image folders, datasets of batches).

In-memory arrays (not tf.data) go to `model.fit`, exactly as a hand-written Keras script passes them, so that
batching and seeded shuffling are Keras's own and the numbers match such a script (pipeline.py turns them into
what `fit` gets). One module per source, all returning `Arrays` (or `Stream`s) through `load`:

- npz_files: .npz files and the bundled datasets     - csv_files: CSV with a header (class-name labels too)
- named: several named inputs / outputs from CSV or npz  - keras_datasets: `source: keras` (keras.datasets)
- python_source: `source: python` (your tf.data)     - images: `source: images` (a folder per class)
- tables: CSV / Parquet / TFRecord as named columns (no model.input_shape; kcli/tabular.py builds the inputs)
- stream, stream_cache: tables larger than memory, read in blocks with a seeded per-epoch order
- tfrecords: `source: tfrecord` records parsed into columns
- preprocess: Keras preprocessing layers adapted on the training split
- splits: Arrays / Splits; checks: numbers, shapes and file keys every reader shares
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from kcli.config import model_io as ports_mod
from kcli.config.code import Registry
from kcli.config.model_io import Ports
from kcli.config.models import DataConfig, SplitSource
from kcli.config.source_rules import TABLES
from kcli.data import images, keras_datasets, python_source, tables
from kcli.data import stream as stream_mod
from kcli.data.checks import (
    _file_key,
    as_float,
    as_int,
    check_features,
    check_inputs,
    check_numbers,
    check_shape,
    first_bad_row,
    first_non_finite,
    first_overflow,
    is_number,
    overflow_error,
    reason,
    shape_fits,
)
from kcli.data.csv_files import csv_header, csv_table, read_csv, read_csv_columns
from kcli.data.named import label_sources, read_ports
from kcli.data.npz_files import read_builtin, read_npz, read_npz_arrays
from kcli.data.python_source import Stream
from kcli.data.splits import Arrays, Splits, _present
from kcli.errors import DataError
from kcli.files import readable

__all__ = ["Arrays", "Splits", "check_features", "check_inputs", "check_numbers", "check_shape", "csv_header",
           "csv_table", "first_bad_row", "first_non_finite", "is_number", "label_sources", "read_builtin",
           "read_csv", "read_csv_columns", "read_npz", "read_npz_arrays", "read_ports", "reason", "shape_fits",
           "_file_key"]


def load(data: DataConfig, seed: int, ports: Ports, registry: Registry | None = None,
         cache_root: Path | None = None) -> Splits:
    """Read, split and preprocess the data a (resolved) config describes (`source: python`: the datasets the
    user's function makes, as Streams; `registry` records its file). A streamed table caches its rows as read
    under `cache_root` when given (training: every epoch reads them again)."""
    if data.source == "python":
        return Splits(*python_source.load(data, seed, ports, registry))
    if data.source == "images":
        train, validation, test, names, notes = images.load(data, seed, ports)
        return Splits(train, validation, test, class_names=names, notes=notes)
    def read(sub: SplitSource | None, key: str, columns: list[str] | None = None) -> Arrays:
        if ports.named or ports.several_outputs:
            return read_ports(_source_of(data, sub), key, data, ports)
        return _read(_source_of(data, sub), key, data, seed, ports.single_shape, columns)

    if data.source == "keras":   # Keras's own train / test parts
        (x, y), (x_test, y_test) = keras_datasets.load(data.name or "", data.num_words, data.maxlen, "data")
        train, validation, test = Arrays(x, y), None, Arrays(x_test, y_test)
    elif ports.tabular:
        files = stream_mod.table_files(data.path or "", data.source, "data")
        if stream_mod.should_stream(files, data):
            return _stream_tables(data, seed, ports, files, cache_root)
        train, validation, test = _read_tables(data, files)
    else:
        train = read(None, "data")
        validation = read(data.validation, "data.validation", train.columns) if data.validation else None
        test = read(data.test, "data.test", train.columns) if data.test else None
    train, validation, test = _hold_out(train, validation, test, data, seed)
    if ports.tabular:   # vocabularies and fill values from the training split only, recorded in the config
        assert isinstance(train.x, dict)
        data.columns = tables.learn(data.columns or {}, tables.stats_of(train.x, data.columns or {}))
    splits = Splits(train, validation, test)
    if isinstance(train.y, np.ndarray) and train.y.dtype.kind == "U":   # class names from a CSV label column
        splits.class_names = encode_class_names(splits, sorted(set(train.y.tolist())))
    return _preprocess(splits, data, ports)


def _read_tables(data: DataConfig, files: list[Path]) -> tuple[Arrays, Arrays | None, Arrays | None]:
    """Train, validation and test of a table source read whole: column kinds from data.columns or the training
    file(s)."""
    table = tables.read_tables(files, data.source, "data", data.features)
    data.columns = tables.infer(table, data, files[0])
    train = tables.read_split(table, data.columns, files[0], "data", data.label, data.sample_weight)
    splits: list[Arrays | None] = []
    for key, sub in (("data.validation", data.validation), ("data.test", data.test)):
        if sub is None:
            splits.append(None)
            continue
        src = _source_of(data, sub)
        sub_files = stream_mod.table_files(src["path"] or "", src["source"], key)
        splits.append(tables.read_split(tables.read_tables(sub_files, src["source"], key, data.features), data.columns,
                                        sub_files[0], key, src["label"], data.sample_weight))
    return train, splits[0], splits[1]


def _stream_tables(data: DataConfig, seed: int, ports: Ports, files: list[Path], cache_root: Path | None) -> Splits:
    """Train, validation and test of a table too large to read whole, as Streams (see stream.py)."""
    held_out = [k for k in ("validation_split", "test_split") if getattr(data, k) is not None]
    if held_out:
        raise DataError(f"a streamed table is split by its files: give data.{held_out[0].split('_')[0]}: "
                        "{path: ...} instead (or data.stream: false to read it whole)", key=f"data.{held_out[0]}")
    cache = stream_mod.Cache(cache_root, sum(f.stat().st_size for f in files))
    try:
        return _streams(data, seed, ports, files, cache)
    except BaseException:
        cache.close()
        raise


def _streams(data: DataConfig, seed: int, ports: Ports, files: list[Path], cache: stream_mod.Cache) -> Splits:
    learned = stream_mod.learn(files, data, cache)
    data.columns = tables.learn(learned.columns, learned.stats)
    ports = ports_mod.with_columns(ports, data)
    class_ids = {name: i for i, name in enumerate(learned.class_names)} if learned.class_names else None
    classes = None
    if data.one_hot:
        classes = len(learned.class_names) if learned.class_names else learned.largest_id + 1
        classes = classes if data.one_hot is True else int(data.one_hot)

    def reader(key: str, split_files: list[Path], label: str | None, shuffle: bool, rows: int,
               ids: stream_mod.ClassIds) -> Stream:
        if classes is not None and learned.labels == "ids" and ids.outside(classes) is not None:
            raise DataError(f"{ids.outside(classes)}, a class id outside 0..{classes - 1} (data.one_hot: "
                            f"{classes} classes)", key=f"{key}.path" if key != "data" else "data.one_hot")
        made = stream_mod.stream(stream_mod.TableReader(
            split_files, data, ports, key, seed, shuffle, label, class_ids, classes,
            weights=data.sample_weight is not None, rows=rows, labels=learned.labels, cache=cache))
        made.class_ids = ids if classes is None and learned.labels == "ids" else None   # checked against the model
        return made

    train = reader("data", files, data.label, bool(data.shuffle), learned.rows, learned.ids or stream_mod.ClassIds())
    others: list[Stream | None] = []
    for key, sub in (("data.validation", data.validation), ("data.test", data.test)):
        src = _source_of(data, sub) if sub is not None else None
        if src is None:
            others.append(None)
            continue
        split_files = stream_mod.table_files(src["path"] or "", src["source"], key)
        ids = stream_mod.ClassIds()
        rows = stream_mod.split_pass(split_files, data, key, src["label"], data.sample_weight is not None, cache, ids)
        others.append(reader(key, split_files, src["label"], False, rows, ids))
    return Splits(train, others[0], others[1], classes=classes, class_names=learned.class_names,
                  column_stats=learned.stats, cache=cache)


def encode_class_names(splits: Splits, names: list[str], file: tuple[Path, str] | None = None) -> list[str]:
    """String labels -> class ids in the order of `names` (the training split's sorted class names); a name the
    training split lacks is one line naming it (and, for another file of a finished run, the file and its key)."""
    ids = {name: i for i, name in enumerate(names)}
    for split, arrays in (("data", splits.train), ("data.validation", splits.validation), ("data.test", splits.test)):
        if not isinstance(arrays, Arrays) or arrays is None:
            continue
        y = np.asarray(arrays.y)
        unknown = sorted(set(y.astype(str).tolist()) - set(ids))
        if unknown:
            classes = f"({', '.join(map(repr, names[:10]))}{', ...' if len(names) > 10 else ''})"
            found = ", ".join(map(repr, unknown[:5]))
            if file is not None:
                raise DataError(f"{file[0]}: the labels hold class(es) {found} that the run was not trained on "
                                f"{classes}", key=file[1])
            raise DataError(f"the {split.removeprefix('data.') if '.' in split else 'training'} labels hold class(es) "
                            f"{found} that the training split does not have {classes}",
                            key=f"{split}.label" if split == "data" else split)
        arrays.y = np.array([ids[v] for v in y.astype(str).tolist()], dtype=np.int64)
    return names


def load_file(path: Path, data: DataConfig, key: str, ports: Ports, label: str | None = None,
              features: list[str] | None = None, class_names: list[str] | None = None) -> Arrays:
    """Another .npz/.csv file, read with a run's preprocessing (scale, one_hot, label column); a CSV's feature
    columns are matched by the names the run was trained on (`features`), in any order. Named inputs and
    several outputs read the same columns / arrays as training."""
    readable.present(path, key)   # a FIFO or a device is never opened
    suffix = path.suffix.lower()
    if ports.tabular:
        arrays, _ = read_table_file(path, data, key, label or data.label)
    elif (ports.named or ports.several_outputs) and suffix in (".npz", ".csv"):
        source = suffix[1:]
        if source != data.source:
            raise DataError(f"{path}: the run read its inputs from {data.source} data; give a .{data.source} file",
                            key=key)
        src = {"source": source, "path": str(path)}
        return _preprocess(Splits(read_ports(src, key, data, ports)), data, ports, (str(path), key)).train
    elif suffix == ".npz":
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
        encode_class_names(Splits(arrays), class_names, (path, key))
    return _preprocess(Splits(arrays), data, ports, (str(path), key)).train


def read_table_file(path: Path, data: DataConfig, key: str, label: str | None) -> tuple[Arrays, str | None]:
    """A .csv / .parquet file read as a run of table columns reads it, and the label column it had (labels are
    zeros without one); the sample-weight column is read when present."""
    source = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".tfrecord": "tfrecord",
              ".tfrecords": "tfrecord", ".tfrec": "tfrecord"}.get(path.suffix.lower())
    if source is None:
        raise DataError(f"{path}: the run was trained on table columns; give a .csv, .parquet or .tfrecord file",
                        key=key)
    table = tables.read_table(path, source, key, data.features)
    names = [str(n) for n in table.column_names]
    weight = data.sample_weight if data.sample_weight in names else None
    found = label if label in names else None
    return tables.read_split(table, data.columns or {}, path, key, found, weight), found


def _preprocess(splits: Splits, data: DataConfig, ports: Ports | None = None,
                file: tuple[str, str] | None = None) -> Splits:
    """The same arithmetic for every split and file: one-hot labels, float32 scaled features (named inputs:
    each in its declared dtype, `scale` on float inputs only). `file`: (path, key) of a file read as the train
    split (evaluate --data), for messages."""
    if data.one_hot:
        splits.classes = _one_hot(splits, data.one_hot)
    if ports is not None and ports.tabular:   # the model standardizes and encodes the columns itself
        return splits
    dtypes = {p.name: p.dtype for p in ports.inputs} if ports is not None and ports.named else {}
    for key, arrays in (("data", splits.train), ("data.validation", splits.validation), ("data.test", splits.test)):
        if arrays is None:
            continue
        what, key = file if file is not None else (_split_path(data, key) or key, key)
        arrays.x = ports_mod.tmap(lambda name, x, what=what, key=key: scale_features(
            x, data.scale, dtypes.get(name or ""), what + (f": input {name!r}" if name else ""), key), arrays.x)
        arrays.y = ports_mod.tmap(lambda _, y: y.astype(np.float32) if y.dtype.kind == "f" else y, arrays.y)
    return splits


def _split_path(data: DataConfig, key: str) -> str | None:
    """The file a split was read from (`data.path` when the split has none of its own), for messages."""
    sub = {"data.validation": data.validation, "data.test": data.test}.get(key)
    return (sub.path if sub is not None and sub.path else None) or data.path


def scale_features(x: np.ndarray, scale: float | None, dtype: str | None = None, what: str = "the features",
                   key: str = "--input", first_row: int = 1, columns: list[str] | None = None) -> np.ndarray:
    """Features as float32 (or a named input's dtype), multiplied by `data.scale` when set and the features are
    floats (the same arithmetic as training); a value too large for the type names its row (see as_float)."""
    target = np.dtype(dtype or np.float32)
    if target.kind != "f":
        return as_int(x, target.name, what, key, first_row, columns) if target.kind in "iu" else x.astype(target)
    cast = as_float(x, target.name, what, key, first_row, columns)
    if scale is None:
        return cast
    with np.errstate(over="ignore"):   # reported below
        scaled = cast * cast.dtype.type(scale)
    found = first_overflow(cast, scaled)   # a large scale can overflow what the cast kept
    if found is not None:
        overflow_error(found, target.name, what, key, first_row, columns, " after data.scale")
    return scaled


def _source_of(data: DataConfig, sub: SplitSource | None) -> dict[str, Any]:
    """The reading instructions for train (sub=None) or a split, with unset fields taken from `data`."""
    fields = ("source", "name", "path", "x_key", "y_key", "label")
    own = {f: getattr(sub, f) for f in fields} if sub is not None else {}
    return {f: own.get(f) if own.get(f) is not None else getattr(data, f) for f in fields}


def _read(src: dict[str, Any], key: str, data: DataConfig, seed: int,
          feature_shape: tuple[int | None, ...], features: list[str] | None = None) -> Arrays:
    """One split as its source describes it; a CSV split takes the training columns by name (any order)."""
    source = src["source"]
    if source in ("npz", "csv") and src["path"]:
        readable.present(Path(src["path"]), _file_key(key))   # a FIFO or a device is never opened
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
    return synthetic(data.samples, data.classes, feature_shape, seed)


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


def fingerprints(data: DataConfig) -> dict[str, dict[str, Any]]:
    """sha256 and size of every data file a (resolved) config reads, by absolute path (each file of a table's
    folder or glob)."""
    paths: list[str] = []
    for part in (data, data.validation, data.test):
        if part is None or not part.path:
            continue
        source = part.source or data.source
        several = Path(part.path).is_dir() or readable.is_pattern(part.path)
        if source in TABLES and several:
            try:
                paths += [str(f) for f in stream_mod.table_files(part.path, source, "data")]
            except DataError:
                pass
        else:
            paths.append(part.path)
    return {p: _fingerprint(Path(p)) for p in dict.fromkeys(paths)}


def _fingerprint(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    try:   # only a regular file: a received run.json may name /dev/zero or a FIFO
        with readable.open_regular(path) as fh:
            size = os.fstat(fh.fileno()).st_size
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return {"sha256": None, "bytes": None}
    return {"sha256": digest.hexdigest(), "bytes": size}


def changed_files(recorded: dict[str, dict[str, Any]]) -> list[str]:
    """The files whose contents differ from their recorded fingerprints (or that are gone)."""
    return [p for p, fp in recorded.items() if _fingerprint(Path(p))["sha256"] != fp.get("sha256")]
