"""config.data -> the splits a run trains on (`load`), and another file read as a finished run read its data
(`load_file`, `read_table_file`): the dispatcher to one reader per source (see the package's docstring)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kcli.config import model_io as ports_mod
from kcli.config.code import Registry
from kcli.config.model_io import Ports, input_name
from kcli.config.models import DataConfig, SplitSource
from kcli.data import column_stats, images, keras_datasets, python_source, stream_pass, stream_shard, tables
from kcli.data import stream as stream_mod
from kcli.data.checks import check_shape, file_key
from kcli.data.csv_files import read_csv, read_csv_columns
from kcli.data.csv_reader import csv_header
from kcli.data.labels import encode_class_names
from kcli.data.named import read_ports
from kcli.data.npz_files import read_builtin, read_npz
from kcli.data.prepare import preprocess
from kcli.data.python_source import Stream
from kcli.data.splits import Arrays, Splits, hold_out
from kcli.data.stream_cache import Cache
from kcli.data.synthetic import synthetic
from kcli.data.table_files import TableFile, local_files, should_stream, size_of, table_files, table_sources
from kcli.errors import DataError
from kcli.files import readable, remote


def load(data: DataConfig, seed: int, ports: Ports, registry: Registry | None = None,
         cache_root: Path | None = None, shard: stream_shard.Shard | None = None) -> Splits:
    """Read, split and preprocess the data a (resolved) config describes (`source: python`: the datasets the
    user's function makes, as Streams; `registry` records its file). A streamed table caches its rows as read
    under `cache_root` when given (training: every epoch reads them again); with `shard` (a worker of several)
    its training rows are this worker's part only."""
    with remote.named_as_urls():
        return _load(data, seed, ports, registry, cache_root, shard)


def _load(data: DataConfig, seed: int, ports: Ports, registry: Registry | None, cache_root: Path | None,
          shard: stream_shard.Shard | None) -> Splits:
    if data.source == "python":
        return Splits(*python_source.load(data, seed, ports, registry))
    if data.source == "images":
        train, validation, test, names, notes = images.load(_images_here(data), seed, ports)
        return Splits(train, validation, test, class_names=names, notes=notes)
    def read(sub: SplitSource | None, key: str, columns: list[str] | None = None) -> Arrays:
        if ports.named or ports.several_outputs:
            return read_ports(_source_of(data, sub), key, data, ports)
        return _read(_source_of(data, sub), key, data, seed, ports.single_shape, columns)

    if data.source == "keras":   # Keras's own train / test parts
        (x, y), (x_test, y_test) = keras_datasets.load(data.name or "", data.num_words, data.maxlen, "data")
        train, validation, test = Arrays(x, y), None, Arrays(x_test, y_test)
    elif ports.tabular:
        files = table_sources(data.path or "", data.source, "data")
        if should_stream(files, data):
            return _stream_tables(data, seed, ports, files, cache_root, shard)
        train, validation, test = _read_tables(data, local_files(files, "data"))
    else:
        files = table_sources(data.path or "", data.source, "data") if _one_matrix(data, ports) else None
        if files is not None and should_stream(files, data):
            return _stream_tables(data, seed, ports, files, cache_root, shard)
        train = read(None, "data")
        validation = read(data.validation, "data.validation", train.columns) if data.validation else None
        test = read(data.test, "data.test", train.columns) if data.test else None
    train, validation, test = hold_out(train, validation, test, data, seed)
    if ports.tabular:   # vocabularies and fill values from the training split only, recorded in the config
        assert isinstance(train.x, dict)
        data.columns = column_stats.learn(data.columns or {}, column_stats.stats_of(train.x, data.columns or {}))
    splits = Splits(train, validation, test)
    if isinstance(train.y, np.ndarray) and train.y.dtype.kind == "U":   # class names from a CSV label column
        splits.class_names = encode_class_names(splits, sorted(set(train.y.tolist())))
    splits = preprocess(splits, data, ports)
    if _one_matrix(data, ports) and train.columns:   # for the hint on features of very different scales
        splits.spreads = column_stats.spreads_of(splits.train.x, train.columns)   # type: ignore[arg-type]
    return splits


def _images_here(data: DataConfig) -> DataConfig:
    """`data` with an image folder on object storage (a prefix, one sub-prefix per class) copied here first
    (its listed size must fit the temporary folder); the config keeps the URL."""
    def here(path: str | None, key: str) -> str | None:
        return str(remote.local_folder(path, key, images.EXTENSIONS)) if remote.is_url(path) else path

    update: dict[str, Any] = {"path": here(data.path, "data.path")}
    for name in ("validation", "test"):
        part = getattr(data, name)
        if part is not None and remote.is_url(part.path):
            update[name] = part.model_copy(update={"path": here(part.path, f"data.{name}.path")})
    return data.model_copy(update=update)


def _one_matrix(data: DataConfig, ports: Ports) -> bool:
    """Whether the number columns of a csv / parquet table are the model's one input (model.input_shape)."""
    return data.source in ("csv", "parquet") and not (ports.tabular or ports.named or ports.several_outputs)


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
        sub_files = table_files(src["path"] or "", src["source"], key)
        splits.append(tables.read_split(tables.read_tables(sub_files, src["source"], key, data.features), data.columns,
                                        sub_files[0], key, src["label"], data.sample_weight))
    return train, splits[0], splits[1]


def _stream_tables(data: DataConfig, seed: int, ports: Ports, files: list[TableFile], cache_root: Path | None,
                   shard: stream_shard.Shard | None = None) -> Splits:
    """Train, validation and test of a table too large to read whole, as Streams (see stream.py)."""
    if shard is not None and data.batch_size % shard.workers:
        raise DataError(f"a streamed table is split among the {shard.workers} workers, each taking an equal part of "
                        f"every batch: give a batch size that divides by {shard.workers} (not {data.batch_size})",
                        key="data.batch_size")
    if shard is not None and shard.replicas not in (0, shard.workers):
        raise DataError(f"a streamed table is split among workers of one device each, but these {shard.workers} "
                        f"workers hold {shard.replicas} replicas: set data.stream: false to read it whole",
                        key="data.stream")
    if data.stratify:
        raise DataError("a streamed table is split by its files, so it cannot hold out rows per class: remove "
                        "data.stratify (or data.stream: false to read it whole)", key="data.stratify")
    held_out = [k for k in ("validation_split", "test_split") if getattr(data, k) is not None]
    if held_out:
        raise DataError(f"a streamed table is split by its files: give data.{held_out[0].split('_')[0]}: "
                        "{path: ...} instead (or data.stream: false to read it whole)", key=f"data.{held_out[0]}")
    cache = Cache(cache_root, sum(size_of(f) for f in files))
    try:
        return _streams(data, seed, ports, files, cache, shard)
    except BaseException:
        cache.close()
        raise


def _streams(data: DataConfig, seed: int, ports: Ports, files: list[TableFile], cache: Cache,
             shard: stream_shard.Shard | None) -> Splits:
    # every worker learns from all the training files alike: the same statistics, so the same model on each
    learned = stream_pass.learn(files, data, cache, numbers_only=not ports.tabular)
    part = _part(learned, data, shard, cache, files)
    ports, table, features = _learned_columns(data, ports, learned, files[0])
    matrix = tuple(input_name(n) for n in features) if features is not None else None
    class_ids = {name: i for i, name in enumerate(learned.class_names)} if learned.class_names else None
    classes = None
    if data.one_hot:
        classes = len(learned.class_names) if learned.class_names else learned.largest_id + 1
        classes = classes if data.one_hot is True else int(data.one_hot)

    def reader(key: str, split_files: list[TableFile], label: str | None, shuffle: bool, rows: int,
               ids: stream_pass.ClassIds) -> Stream:
        if classes is not None and learned.labels == "ids" and ids.outside(classes) is not None:
            raise DataError(f"{ids.outside(classes)}, a class id outside 0..{classes - 1} (data.one_hot: "
                            f"{classes} classes)", key=f"{key}.path" if key != "data" else "data.one_hot")
        made = stream_mod.stream(stream_mod.TableReader(
            split_files, table, ports, key, seed, shuffle, label, class_ids, classes,
            weights=data.sample_weight is not None, rows=rows, labels=learned.labels, cache=cache, matrix=matrix,
            shard=shard if key == "data" else None, part=part if key == "data" else None))
        made.class_ids = ids if classes is None and learned.labels == "ids" else None   # checked against the model
        made.columns = features   # recorded for predict, as the in-memory read's
        return made

    train = reader("data", files, data.label, bool(data.shuffle), learned.rows, learned.ids or stream_pass.ClassIds())
    others: list[Stream | None] = []
    for key, sub in (("data.validation", data.validation), ("data.test", data.test)):
        src = _source_of(data, sub) if sub is not None else None
        if src is None:
            others.append(None)
            continue
        split_files = table_sources(src["path"] or "", src["source"], key)
        ids = stream_pass.ClassIds()
        rows = stream_pass.split_pass(split_files, table, key, src["label"], data.sample_weight is not None, cache, ids)
        others.append(reader(key, split_files, src["label"], False, rows, ids))
    return Splits(train, others[0], others[1], classes=classes, class_names=learned.class_names,
                  column_stats=learned.stats, cache=cache,
                  spreads={n: s.std for n, s in learned.stats.items()} if matrix is not None else None)


def _learned_columns(data: DataConfig, ports: Ports, learned: stream_pass.Learned,
                     path: TableFile) -> tuple[Ports, DataConfig, list[str] | None]:
    """What the pass learned of the columns, where the reader finds it: the ports of the columns (and
    `data.columns`, recorded in the config), or, for model.input_shape, the number columns stacked in file order
    into its one input (as wide as they are, as for a table read whole) and a copy of `data` with the columns (a
    config with input_shape records none)."""
    columns = column_stats.learn(learned.columns, learned.stats)
    if ports.tabular:
        data.columns = columns
        return ports_mod.with_columns(ports, data), data, None
    names = [n for n, c in columns.items() if c.kind != "ignore"]
    check_shape(np.zeros((0, len(names))), ports.single_shape, f"the number columns of {path}", "model.input_shape")
    return ports, data.model_copy(update={"columns": columns}), names


def _part(learned: stream_pass.Learned, data: DataConfig, shard: stream_shard.Shard | None, cache: Cache,
          files: list[TableFile]) -> stream_shard.Part | None:
    """This worker's part of the training rows (None: one process reads them all); the cache keeps only it."""
    if shard is None or shard.workers < 2:
        return None
    if learned.rows < shard.workers:
        raise DataError(f"{learned.rows} training rows cannot be split among {shard.workers} workers",
                        key="data.path")
    part = stream_shard.part(learned.file_rows or [], data.batch_size, shard)
    cache.keep({files[p.file] for p in part.pieces})
    return part


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
        return preprocess(Splits(read_ports(src, key, data, ports)), data, ports, (str(path), key)).train
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
    elif suffix in (".parquet", ".pq"):   # model.input_shape: the number columns as one matrix, as trained
        table = tables.read_tables([path], "parquet", key)
        names = [str(n) for n in table.column_names]
        found = next((n for n in (label, data.label) if n and n in names), None)
        arrays = tables.matrix(table, data, path, key, found, features)
    else:
        raise DataError(f"{path}: expected a .npz, .csv or .parquet file", key=key)
    if isinstance(arrays.y, np.ndarray) and arrays.y.dtype.kind == "U":
        if not class_names:
            raise DataError(f"{path}: the labels are names, but the run was trained on class ids", key=key)
        encode_class_names(Splits(arrays), class_names, (path, key))
    return preprocess(Splits(arrays), data, ports, (str(path), key)).train


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


def _source_of(data: DataConfig, sub: SplitSource | None) -> dict[str, Any]:
    """The reading instructions for train (sub=None) or a split, with unset fields taken from `data`."""
    fields = ("source", "name", "path", "x_key", "y_key", "label")
    own = {f: getattr(sub, f) for f in fields} if sub is not None else {}
    return {f: own.get(f) if own.get(f) is not None else getattr(data, f) for f in fields}


def _read(src: dict[str, Any], key: str, data: DataConfig, seed: int,
          feature_shape: tuple[int | None, ...], features: list[str] | None = None) -> Arrays:
    """One split as its source describes it; a CSV split takes the training columns by name (any order)."""
    source = src["source"]
    path = remote.local_file(src["path"], file_key(key)) if source in ("npz", "csv") and src["path"] else Path()
    if source == "builtin":
        return read_builtin(src["name"], key)
    if source == "npz":
        return read_npz(path, src["x_key"] or "x", src["y_key"] or "y", key)
    if source == "parquet":   # model.input_shape: the number columns as one matrix
        files = table_files(src["path"] or "", source, key)
        table = tables.read_tables(files, source, key)
        return tables.matrix(table, data, files[0], key, src["label"], features)
    if source == "csv":
        if features is not None:
            return read_csv_columns(path, csv_header(path, key), features, src["label"], key)
        return read_csv(path, src["label"], key)
    if key != "data":
        raise DataError("synthetic data is split with validation_split / test_split", key=key)
    return synthetic(data.samples, data.classes, feature_shape, seed)
