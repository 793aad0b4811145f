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


def present(splits: Splits) -> list[Arrays]:
    """The splits a run has, train first."""
    return [a for a in (splits.train, splits.validation, splits.test) if a is not None]


def hold_out(train: Arrays, validation: Arrays | None, test: Arrays | None, data: DataConfig,
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
