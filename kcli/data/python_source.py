"""`source: python`: your own tf.data pipeline, as `model.fit(train_db, validation_data=val_db)` takes it.

    data:
      source: python
      function: data_fn.py:make     # a file relative to the config (or module:function)
      args: {batch: 128}            # optional keyword arguments

kcli calls `make(data, seed, **args)`: `data` is the resolved `data:` section as a dict (batch_size, ...),
`seed` the run's seed (set with keras.utils.set_random_seed just before). It returns the training dataset, or
(train, validation) / (train, validation, test), or a dict with keys train / validation / test (None where
absent). Each is a tf.data.Dataset of batches: (x, y) or (x, y, sample_weight), batched and shuffled as you
want them (kcli does not batch, shuffle, scale or one-hot them). The file is copied into the run like
`imports`, so `kcli evaluate` can make the test split again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kcli.config.code import Registry
from kcli.config.model_io import Ports
from kcli.errors import ConfigError, DataError

KEY = "data.function"
PARTS = ("train", "validation", "test")


@dataclass
class Stream:
    """One split as a dataset of batches (instead of in-memory Arrays)."""

    dataset: Any
    batches: int | None   # None: unknown (a dataset without a known cardinality)
    columns: list[str] | None = None   # a streamed table's number columns as model.input_shape takes them, in order
    epoch_setter: Any = None   # a streamed table: tells its reader which epoch begins (its .callback())
    class_ids: Any = None   # a streamed table's class ids: range and rows (stream_pass.ClassIds), for check_labels

    @property
    def x(self) -> Any:
        """The first batch's features, as numpy (a few real rows for verifying artifacts)."""
        return _numpy(next(iter(self.dataset.take(1)))[0])

    def take_first(self) -> Stream:
        """Only the first batch (--fast-dev-run)."""
        return Stream(self.dataset.take(1), 1)

    def size(self) -> str:
        return f"{self.batches if self.batches is not None else '?'} batches"


def load(data: Any, seed: int, ports: Ports, registry: Registry | None = None) -> tuple[Stream, Stream | None,
                                                                                           Stream | None]:
    """Call the user's function and check what it returned."""
    function = _function(data.function, registry or Registry())
    try:
        made = function(data.model_dump(mode="json"), seed, **(data.args or {}))
    except Exception as exc:
        raise DataError(f"{data.function} raised {type(exc).__name__}: {exc}", key=KEY) from None
    parts = _parts(made)
    streams = [stream_of(part, name, ports, KEY) if part is not None else None for name, part in zip(PARTS, parts)]
    if streams[0] is None:
        raise DataError(f"{data.function} returned no training dataset", key=KEY)
    return streams[0], streams[1], streams[2]


def _function(ref: str | None, registry: Registry) -> Any:
    if not ref or ":" not in ref:
        raise ConfigError(f"name the function as file.py:function or module:function, got {ref!r}", key=KEY)
    target, name = ref.rsplit(":", 1)
    module = registry.load(target, KEY)
    function = getattr(module, name, None)
    if not callable(function):
        found = [n for n, o in vars(module).items() if callable(o) and not n.startswith("_")
                 and getattr(o, "__module__", None) == module.__name__]
        raise ConfigError(f"{Path(target).name} defines no function {name!r}; it defines: "
                          f"{', '.join(found) or 'none'}", key=KEY)
    return function


def _parts(made: Any) -> list[Any]:
    if isinstance(made, dict):
        unknown = set(made) - set(PARTS)
        if unknown:
            raise DataError(f"the returned dict has keys {sorted(unknown)}; use train, validation, test", key=KEY)
        return [made.get(p) for p in PARTS]
    if isinstance(made, tuple | list):
        if not 1 <= len(made) <= 3:
            raise DataError(f"returned {len(made)} values; return train, (train, validation) or "
                            "(train, validation, test)", key=KEY)
        return [*made, *[None] * (3 - len(made))]
    return [made, None, None]


def stream_of(dataset: Any, name: str, ports: Ports, key: str,
              hint: str = "Batch the dataset (.batch(n)) and give it features of the input's shape") -> Stream:
    """A dataset of (x, y[, w]) batches whose features fit the model's input (problems name `key`)."""
    import tensorflow as tf

    if not isinstance(dataset, tf.data.Dataset):
        raise DataError(f"the {name} part is a {type(dataset).__name__}, not a tf.data.Dataset", key=key)
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) not in (2, 3):
        raise DataError(f"the {name} dataset must yield (x, y) or (x, y, sample_weight) batches; it yields "
                        f"{spec}", key=key)
    if not ports.named:
        shape = tuple(spec[0].shape)[1:] if hasattr(spec[0], "shape") else None
        expected = ports.single_shape
        if shape is None or len(shape) != len(expected) or any(
                e is not None and s is not None and e != s for s, e in zip(shape, expected)):
            raise DataError(f"the {name} batches have features of shape {list(shape or [])} (after the batch "
                            f"dimension); model.input_shape is {list(expected)}. {hint}", key=key)
    cardinality = int(dataset.cardinality())
    return Stream(dataset, cardinality if cardinality >= 0 else None)


def to_arrays(stream: Stream) -> tuple[Any, Any]:
    """All batches of a split as numpy (x, y), for `kcli evaluate` of a finished run."""
    xs, ys = [], []
    for batch in stream.dataset:
        xs.append(_numpy(batch[0]))
        ys.append(_numpy(batch[1]))
    if not xs:
        raise DataError("the dataset is empty", key=KEY)
    import keras

    join = lambda parts: keras.tree.map_structure(lambda *a: np.concatenate(a), *parts)  # noqa: E731
    return join(xs), join(ys)


def _numpy(value: Any) -> Any:
    import keras

    return keras.tree.map_structure(lambda t: np.asarray(t), value)
