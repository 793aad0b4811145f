"""The data of a run in memory: Arrays (features and labels of one split) and Splits (train / validation / test)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kcli.config import model_io as ports_mod
from kcli.config.model_io import Tree
from kcli.data.python_source import Stream


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
    cache: Any = None   # a streamed table: its rows as read, cached while training (stream.Cache; close() it)
    notes: list[str] = field(default_factory=list)   # what the reader left out (shown, kept in run.json)


def _present(splits: Splits) -> list[Arrays]:
    return [a for a in (splits.train, splits.validation, splits.test) if a is not None]
