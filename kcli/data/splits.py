"""The data of a run in memory: Arrays (features and labels of one split) and Splits (train / validation / test),
and the hold-out splits carved from the training rows (validation_split / test_split)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kcli.config import model_io as ports_mod
from kcli.config.model_io import Tree
from kcli.config.models import DataConfig
from kcli.data.python_source import Stream
from kcli.errors import DataError


@dataclass
class Arrays:
    """Features and labels of one split (a dict by input / output name for named inputs / several outputs)."""

    x: Tree
    y: Tree
    columns: list[str] | None = None   # CSV feature column names, in order
    w: np.ndarray | None = None   # per-row sample weights (data.sample_weight)

    def __len__(self) -> int:
        return ports_mod.rows(self.x)

    def take(self, index: np.ndarray | slice) -> Arrays:
        """The rows at `index` (an index array, or a slice: views, no copy)."""
        return Arrays(ports_mod.take(self.x, index), ports_mod.take(self.y, index), self.columns,
                      self.w[index] if self.w is not None else None)


@dataclass
class Splits:
    """The data of a run: train, and optionally validation and test."""

    train: Arrays | Stream
    validation: Arrays | Stream | None = None
    test: Arrays | Stream | None = None
    classes: int | None = None   # the one-hot class count, when labels were one-hot encoded
    class_names: list[str] | None = None   # an image folder's classes, by class id
    column_stats: dict[str, Any] | None = None   # a streamed table: its columns' statistics (Normalization)
    cache: Any = None   # a streamed table: its rows as read, cached while training (stream_cache.Cache; close() it)
    notes: list[str] = field(default_factory=list)   # what the reader left out (shown, kept in run.json)
    # a table's number columns as model.input_shape's one input: each column's standard deviation in the training
    # split (for the hint on scales far apart)
    spreads: dict[str, float] | None = None


def present(splits: Splits) -> list[Arrays]:
    """The splits a run has, train first."""
    return [a for a in (splits.train, splits.validation, splits.test) if a is not None]


def hold_out(train: Arrays, validation: Arrays | None, test: Arrays | None, data: DataConfig,
              seed: int) -> tuple[Arrays, Arrays | None, Arrays | None]:
    """Carve test_split / validation_split out of train with a seeded permutation (per class with
    `data.stratify`); rows keep file order."""
    n = len(train)
    n_test = _count(n, data.test_split, "data.test_split")
    n_val = _count(n, data.validation_split, "data.validation_split")
    if n_test == 0 and n_val == 0:
        return train, validation, test
    if data.stratify:
        parts = stratified_parts(class_ids(train.y), n_test, n_val, seed)
    else:
        perm = np.random.default_rng(seed).permutation(n)
        parts = perm[n_test + n_val:], perm[:n_test], perm[n_test:n_test + n_val]
    if n_test:
        test = train.take(np.sort(parts[1]))
    if n_val:
        validation = train.take(np.sort(parts[2]))
    return train.take(np.sort(parts[0])), validation, test


def class_ids(y: Any, key: str = "data.stratify") -> np.ndarray:
    """One class per row for a stratified hold-out: class names, whole-number ids or one-hot rows; anything
    else (several outputs, fractional values of a regression, several values per row) is refused naming `key`."""
    if isinstance(y, dict):
        raise DataError("stratify needs the class labels of one output; a model with several outputs has no "
                        "single class per row", key=key)
    y = np.asarray(y)
    flat = y.reshape(len(y), -1) if y.ndim else y.reshape(-1, 1)
    if flat.shape[1] > 1:
        if np.all((flat == 0) | (flat == 1)) and np.all(flat.sum(axis=1) == 1):
            return np.argmax(flat, axis=1)
        raise DataError(f"stratify needs one class per row; the labels have shape {list(y.shape[1:])}", key=key)
    column = flat[:, 0]
    if column.dtype.kind in "USOb":
        return np.unique(column.astype(str) if column.dtype.kind != "b" else column, return_inverse=True)[1]
    if column.dtype.kind in "iu" or (column.dtype.kind == "f" and np.all(np.mod(column, 1) == 0)):
        return np.unique(column, return_inverse=True)[1]
    raise DataError("stratify needs class labels; these labels are numbers with fractions (a regression): "
                    "remove data.stratify", key=key)


def stratified_parts(ids: np.ndarray, n_test: int, n_val: int,
                     seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, test, validation) row indices: each class's rows in a seeded permutation, the first of them
    held out for test, the next for validation, in counts proportional to the class's size (largest
    remainders, so the totals are exactly n_test and n_val as without stratify)."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(ids)
    rows = [rng.permutation(np.flatnonzero(ids == c)) for c in range(len(counts))]
    to_test = _apportion(counts, n_test)
    to_val = _apportion(counts - to_test, n_val)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for c, perm in enumerate(rows):
        t, v = to_test[c], to_test[c] + to_val[c]
        parts[1].append(perm[:t])
        parts[2].append(perm[t:v])
        parts[0].append(perm[v:])
    return tuple(np.concatenate(p).astype(np.int64) for p in parts)   # type: ignore[return-value]


def _apportion(sizes: np.ndarray, total: int) -> np.ndarray:
    """`total` split across classes in proportion to `sizes` (whole numbers, each at most its size): floors,
    then one more for the largest remainders (ties: the larger class, then the lower id)."""
    quota = sizes * (total / sizes.sum())
    out = np.floor(quota).astype(np.int64)
    left = total - int(out.sum())
    order = np.lexsort((np.arange(len(sizes)), -sizes, -(quota - out)))
    for c in order:
        if left == 0:
            break
        if out[c] < sizes[c]:
            out[c] += 1
            left -= 1
    return out


def _count(n: int, fraction: float | None, key: str) -> int:
    if fraction is None:
        return 0
    count = round(n * fraction)
    if count == 0 or count == n:
        raise DataError(f"{fraction} of {n} rows leaves an empty split", key=key)
    return count
