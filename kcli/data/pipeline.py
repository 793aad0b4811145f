"""Arrays -> what `model.fit` gets: the very batches Keras would make, built once and kept in memory.

Keras's own array path (`fit(x, y, shuffle=...)`) gathers every batch again in every epoch and starts
two new input iterators per epoch; on small models that costs more than the training steps (~50 ms per
epoch on the digits MLP, ~100 ms for the validation data; see benchmarks/RESULTS.md). With `data.cache: true`
(the default) kcli builds the same batches in the same order once, as cached tf.data datasets, so the
arithmetic is unchanged: tests/training/test_equivalence.py compares weights and history with a hand-written
`fit(x, y, shuffle=True)` to 1e-6. `data.cache: false` hands the arrays to Keras as such a script does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kcli.config.model_io import Tree
from kcli.config.models import DataConfig
from kcli.data.splits import Arrays


@dataclass
class FitInput:
    """The training data arguments of model.fit, plus callbacks the input needs (the epoch number)."""

    x: Any
    y: Any = None
    batch_size: int | None = None
    shuffle: bool = False
    callbacks: list[Any] = field(default_factory=list)
    sample_weight: Any = None


def training(train: Arrays, data: DataConfig, seed: int) -> FitInput:
    """The training input for `data.shuffle` and `data.cache` (with the rows' sample weights, if any)."""
    if data.shuffle == "each_epoch":
        return _each_epoch(train, data, seed)
    if not data.cache:
        return FitInput(train.x, train.y, data.batch_size, bool(data.shuffle), sample_weight=train.w)
    if not data.shuffle:
        return FitInput(batched(train.x, train.y, data, train.w))
    order = keras_order(len(train), data.batch_size)
    if order is None:   # a Keras that reshuffles every epoch: let it do so itself
        return FitInput(train.x, train.y, data.batch_size, True, sample_weight=train.w)
    ordered = train.take(order)
    return FitInput(batched(ordered.x, ordered.y, data, ordered.w))


def validation(arrays: Arrays | None, data: DataConfig) -> Any:
    """`validation_data` for model.fit: the same batches as Keras's, cached unless `data.cache: false`."""
    if arrays is None:
        return None
    if not data.cache:
        return (arrays.x, arrays.y) if arrays.w is None else (arrays.x, arrays.y, arrays.w)
    return batched(arrays.x, arrays.y, data, arrays.w)


def batched(x: Tree, y: Tree, data: DataConfig, w: np.ndarray | None = None) -> Any:
    """Consecutive batches of `data.batch_size` rows (the last one partial), kept after the first pass; (x, y,
    sample weight) when the rows have weights."""
    import tensorflow as tf

    rows = (x, y) if w is None else (x, y, w)
    dataset = tf.data.Dataset.from_tensor_slices(rows).batch(data.batch_size).cache()
    return dataset.prefetch(_prefetch(data))


def shard_by_data(dataset: Any) -> Any:
    """A tf.data dataset of in-memory rows, marked to be split by data among the workers of a cluster (each takes
    its replicas' part of every global batch; sharding by file needs files). Anything else is returned as is."""
    import tensorflow as tf

    if not isinstance(dataset, tf.data.Dataset):
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _prefetch(data: DataConfig) -> int:
    import tensorflow as tf

    return tf.data.AUTOTUNE if data.prefetch == "auto" else int(data.prefetch)


def keras_order(n: int, batch_size: int) -> np.ndarray | None:
    """The row order Keras's `fit(x, y, shuffle=True)` uses in this process under the seed that
    `keras.utils.set_random_seed` set: read from Keras's own array adapter, run over the row numbers.

    Keras 3.15 draws that permutation with a stateful `tf.random.shuffle` that restarts with each input
    iterator, so every epoch repeats it. None when that does not hold (another Keras version): the
    caller then leaves the shuffling to Keras.
    """
    try:
        from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter
    except ImportError:
        return None
    dataset = ArrayDataAdapter(np.arange(n, dtype=np.int64), batch_size=batch_size, shuffle=True).get_tf_dataset()
    first, second = (np.concatenate([np.asarray(b) for b in dataset]) for _ in range(2))
    if not np.array_equal(first, second) or not np.array_equal(np.sort(first), np.arange(n)):
        return None
    return first


def _each_epoch(train: Arrays, data: DataConfig, seed: int) -> FitInput:
    """Epoch e visits the rows in a stateless permutation seeded by (seed, e): a new order every epoch that
    is the same in any process, so a resumed run sees the very batches an uninterrupted one would."""
    import keras
    import tensorflow as tf

    n = len(train)
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    # captured, not copied into a graph
    parts = (train.x, train.y) if train.w is None else (train.x, train.y, train.w)
    tensors = tuple(tf.nest.map_structure(tf.convert_to_tensor, t) for t in parts)

    def permutation(_: Any) -> Any:
        seeds = tf.stack([tf.constant(seed, tf.int64), epoch.read_value()])
        return tf.data.Dataset.from_tensor_slices(
            tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=seeds))

    batches = tf.data.Dataset.range(1).flat_map(permutation).batch(data.batch_size)
    def gather(idx: Any) -> Any:
        return tuple(tf.nest.map_structure(lambda t: tf.gather(t, idx), s) for s in tensors)

    dataset = batches.map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    steps = math.ceil(n / data.batch_size)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(_prefetch(data))

    class _Epoch(keras.callbacks.Callback):
        def on_epoch_begin(self, e: int, logs: dict[str, Any] | None = None) -> None:
            epoch.assign(e)

    return FitInput(dataset, callbacks=[_Epoch()])
