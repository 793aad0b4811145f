"""What the model needs from a table's training split, for every feature column: the statistics of its values
(ColumnStats, gathered whole or block by block) and what is learned from them (vocabularies, encodings, embedding
widths, fill values), recorded in `data.columns`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kcli.config.model_io import input_name
from kcli.config.models import ColumnConfig
from kcli.errors import DataError

SCALES_APART = 100.0   # model.input_shape: number columns whose standard deviations differ more get a hint
ONE_HOT_UP_TO = 50   # categories with more values get an embedding by default
MISSING_CODE = -1    # a missing whole-number category: IntegerLookup's out-of-vocabulary token
TEXT_MIN_DISTINCT = 20   # fewer distinct strings than this stay a category, whatever they look like
TEXT_DISTINCT_SHARE = 0.5   # free text: at least half of the non-empty cells are distinct (or TEXT_MANY) ...
TEXT_MANY = 1000            # ... distinct values: past this many, a category of whole strings helps no model
TEXT_SPACED_SHARE = 0.5     # ... and at least half of them hold a space inside,
TEXT_MEAN_LENGTH = 30       # or they are this many characters long on average


@dataclass
class ColumnStats:
    """What the training rows say about one feature column: its values (categories), or the count, shifted sum
    and sum of squares of its present values and the count of missing ones (numbers)."""

    values: set[Any] = field(default_factory=set)
    present: int = 0
    missing: int = 0
    shift: float | None = None
    total: float = 0.0
    squares: float = 0.0
    mean: float | None = None   # in memory: numpy's mean of the present values (exactly a script's np.mean)
    text: Any = None   # a text column: its TextVectorization, counting the tokens of each block

    def add(self, values: np.ndarray, kind: str | None) -> None:
        """Count one block of the column ((n, 1) as read_split makes it)."""
        flat = values[:, 0]
        if kind == "text":
            if self.text is not None:
                from kcli.data import text_columns

                text_columns.count(self.text, values)
            return
        if kind == "category":
            self.values.update(flat.tolist())
            return
        present = flat[~np.isnan(flat)].astype(np.float64)
        self.missing += len(flat) - len(present)
        if not len(present):
            return
        if self.shift is None:
            self.shift = float(present[0])
        shifted = present - self.shift
        self.present += len(present)
        self.total += float(shifted.sum())
        self.squares += float((shifted * shifted).sum())

    @property
    def std(self) -> float:
        """The (population) standard deviation of the present values (0 without any)."""
        if not self.present:
            return 0.0
        mean = self.total / self.present
        return math.sqrt(max(self.squares / self.present - mean * mean, 0.0))

    def filled_moments(self, fill: float) -> tuple[float, float]:
        """Mean and (population) variance of the column with its missing values set to `fill`."""
        shift = self.shift if self.shift is not None else fill
        n = self.present + self.missing
        total = self.total + self.missing * (fill - shift)
        squares = self.squares + self.missing * (fill - shift) ** 2
        mean = total / n
        return shift + mean, max(squares / n - mean * mean, 0.0)


def looks_like_text(values: Any) -> bool:
    """Whether a string column (a list, numpy array or pyarrow array of str/None) is free text, not a category."""
    # the rule: >= TEXT_MIN_DISTINCT distinct non-empty values making >= half of the non-empty cells (or >= 1000
    # of them), and most cells hold a space between words or the cells are long (mean > 30 characters); names,
    # codes and labels repeat or are single short words, reviews and tickets do neither
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    try:
        array = values if isinstance(values, pa.Array) else pa.array(list(values), type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):   # numbers or other objects: not text
        return False
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return False
    texts = pc.utf8_trim_whitespace(array).drop_null()
    texts = texts.filter(pc.not_equal(texts, ""))
    if not len(texts):
        return False
    distinct = pc.count_distinct(texts).as_py()
    if distinct < TEXT_MIN_DISTINCT or (distinct < TEXT_DISTINCT_SHARE * len(texts) and distinct < TEXT_MANY):
        return False
    spaced = pc.sum(pc.match_substring_regex(texts, r"\s")).as_py() or 0
    mean_length = pc.mean(pc.utf8_length(texts)).as_py()
    return spaced >= TEXT_SPACED_SHARE * len(texts) or mean_length > TEXT_MEAN_LENGTH


def new_stats(columns: dict[str, ColumnConfig]) -> dict[str, ColumnStats]:
    """Empty statistics for every feature column (a text column without a vocabulary: a TextVectorization)."""
    stats = {}
    for name, spec in columns.items():
        if spec.kind == "ignore":
            continue
        stats[name] = ColumnStats()
        if spec.kind == "text" and spec.vocabulary is None:
            from kcli.data import text_columns

            stats[name].text = text_columns.vectorizer(spec, input_name(name))
    return stats


def stats_of(x: dict[str, np.ndarray], columns: dict[str, ColumnConfig]) -> dict[str, ColumnStats]:
    """The statistics of an in-memory training split."""
    stats = new_stats(columns)
    for name, spec in columns.items():
        if spec.kind == "ignore":
            continue
        values = x[input_name(name)]
        stats[name].add(values, spec.kind)
        if spec.kind == "number":
            present = values[~np.isnan(values)]
            stats[name].mean = float(np.mean(present.astype(np.float64))) if len(present) else None
    return stats


def spreads_of(x: np.ndarray, columns: list[str]) -> dict[str, float]:
    """Each column's standard deviation in an in-memory (n, columns) training matrix."""
    return dict(zip(columns, np.std(x.astype(np.float64), axis=0).tolist()))


def scales_apart(spreads: dict[str, float], path: str) -> str | None:
    """The hint for number columns fed as they are (model.input_shape) whose standard deviations, constant columns
    left out, differ more than SCALES_APART times (a model then learns mostly from the widest; Keras's defaults
    assume features of about unit scale); None when they do not."""
    varying = {name: s for name, s in spreads.items() if s > 0 and math.isfinite(s)}
    if len(varying) < 2:
        return None
    wide, narrow = max(varying, key=lambda n: varying[n]), min(varying, key=lambda n: varying[n])
    ratio = varying[wide] / varying[narrow]
    if ratio <= SCALES_APART:
        return None
    return (f"{path}: the feature columns' scales differ {ratio:,.0f}x (standard deviation of {wide!r}: "
            f"{varying[wide]:.3g}, of {narrow!r}: {varying[narrow]:.3g}) and model.input_shape feeds them as they "
            "are: add a Normalization layer first in model.layers (kcli adapts it on the training split), or leave "
            "out model.input_shape (kcli then standardizes every number column)")


def learn(columns: dict[str, ColumnConfig], stats: dict[str, ColumnStats]) -> dict[str, ColumnConfig]:
    """What the model needs from the training split, for every feature column: vocabularies (sorted), encodings,
    embedding widths, fill values; what the config already says is kept."""
    learned = {}
    for name, spec in columns.items():
        spec = spec.model_copy()
        if spec.kind == "number":
            column = stats[name]
            spec.normalize = True if spec.normalize is None else spec.normalize
            if spec.missing != "error" and spec.fill is None:
                if not column.present:
                    raise DataError(f"column {name!r} is empty in every training row: nothing to fill it with; "
                                    f"give data.columns.{name}.fill or ignore it", key=f"data.columns.{name}")
                spec.fill = column.mean if column.mean is not None else column.shift + column.total / column.present
        elif spec.kind == "text" and stats[name].text is not None:
            from kcli.data import text_columns

            spec = text_columns.learned(spec, name, stats[name].text)
        elif spec.kind == "category":
            if spec.vocabulary is None:
                values = stats[name].values
                ints = bool(values) and all(isinstance(v, int) for v in values)
                spec.vocabulary = sorted(v for v in values if v != MISSING_CODE) if ints else \
                    sorted(str(v) for v in values)  # type: ignore[assignment]
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
