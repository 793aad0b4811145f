"""The same arithmetic for every split and file: one-hot labels, float32 (or a named input's dtype) features scaled
by `data.scale`, each value checked to fit its type."""

from __future__ import annotations

import numpy as np

from kcli.config import model_io as ports_mod
from kcli.config.model_io import Ports
from kcli.config.models import DataConfig
from kcli.data.checks import as_float, as_int, first_overflow, overflow_error
from kcli.data.labels import one_hot
from kcli.data.splits import Splits


def preprocess(splits: Splits, data: DataConfig, ports: Ports | None = None,
                file: tuple[str, str] | None = None) -> Splits:
    """The same arithmetic for every split and file: one-hot labels, float32 scaled features (named inputs:
    each in its declared dtype, `scale` on float inputs only). `file`: (path, key) of a file read as the train
    split (evaluate --data), for messages."""
    if data.one_hot:
        splits.classes = one_hot(splits, data.one_hot)
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
