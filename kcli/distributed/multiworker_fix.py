"""A workaround for MultiWorkerMirroredStrategy + `fit` in Keras 3.15 (keras-team/keras issue 20585).

Keras 3.15's TensorFlow trainer has two faults that stop every multi-worker `fit` (both workers exit with
"Attempt to convert a value (PerReplica...)"), both in keras/src/backend/tensorflow/trainer.py:

1. `_maybe_symbolic_build` reduces the first PerReplica batch with `strategy.reduce("MEAN", ...)` eagerly, which
   the collective strategy cannot do. Building only needs the batch's shapes: this takes the first local
   replica's value instead.
2. `reduce_per_replica` reduces every value with `strategy.reduce("MEAN", v, axis=0)` under a multi-worker
   strategy, which fails on scalars (the loss and metrics: "Invalid reduction dimension 0 for input with 0
   dimensions"). This reduces scalars with `axis=None` and keeps `axis=0` for values with a batch axis.

3. With `steps_per_execution` > 1, `fit` fails ("You must feed a value for placeholder tensor"): the per-step
   function is a `tf.function` of its own, called inside the `tf.cond` of the multi-step loop. This traces it into
   the multi-step function instead (same weights). It matters beyond speed: TensorFlow keeps ~1.5 KiB per
   all-reduce per function call and never frees it, so a worker grows ~5 KiB a step with one step per call and
   ~0.8 with 10 (benchmarks/mwms_memory.py, RESULTS.md).

`apply()` patches those functions for the Keras versions in AFFECTED only, and only once.
tests/distributed/test_workers.py trains two workers without the patch and fails loudly when the installed Keras no
longer needs it (then widen nothing: drop the version from AFFECTED, or this module).
"""

from __future__ import annotations

import os
import types
from typing import Any

AFFECTED = ("3.15.",)   # Keras versions known to need the patch (checked: 3.15.1)
DISABLE_ENV = "KCLI_NO_MULTIWORKER_FIX"   # set to 1 to train without the patch (the test above does)

_applied = False


def needed(version: str | None = None) -> bool:
    """Whether this Keras version has the two faults."""
    if version is None:
        import keras

        version = keras.__version__
    return version.startswith(AFFECTED)


def apply() -> bool:
    """Patch Keras's TensorFlow trainer when this Keras needs it; returns whether the patch is in place."""
    global _applied
    if _applied:
        return True
    if not needed() or os.environ.get(DISABLE_ENV) == "1":
        return False
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    original_reduce = trainer.reduce_per_replica
    original_build = trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_per_replica(values: Any, strategy: Any, reduction: str) -> Any:
        if reduction not in ("mean", "auto") or not trainer._collective_all_reduce_multi_worker(strategy):
            return original_reduce(values, strategy, reduction)

        def mean(value: Any) -> Any:
            rank = getattr(getattr(value, "shape", None), "rank", None)
            return strategy.reduce("MEAN", value, axis=None if rank == 0 else 0)

        return tf.nest.map_structure(mean, values)

    def maybe_symbolic_build(self: Any, iterator: Any = None, data_batch: Any = None) -> Any:
        if self._distribute_strategy is None or iterator is None or \
                not trainer._collective_all_reduce_multi_worker(self._distribute_strategy):
            return original_build(self, iterator=iterator, data_batch=data_batch)
        strategy = self.distribute_strategy
        for _, _, it in iterator:
            batch = next(it)
            data_batch = tf.nest.map_structure(
                lambda v: strategy.experimental_local_results(v)[0]
                if isinstance(v, tf.distribute.DistributedValues) else v, batch)
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    trainer.reduce_per_replica = reduce_per_replica
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer.TensorFlowTrainer._make_function = _inlined_step(trainer, trainer.TensorFlowTrainer._make_function)
    _applied = True
    return True


def _inlined_step(trainer: Any, original: Any) -> Any:
    """`_make_function` whose per-step function (the only `tf.function` it makes with `jit_compile`) is traced
    into the multi-step one, under a multi-worker strategy with more than one step per execution."""
    import tensorflow as tf

    class InlineStep(types.ModuleType):
        def __getattr__(self, name: str) -> Any:
            return getattr(tf, name)

        @staticmethod
        def function(fn: Any = None, **kwargs: Any) -> Any:
            return fn if "jit_compile" in kwargs else tf.function(fn, **kwargs)

    def make_function(self: Any, step_function: Any) -> Any:
        if self.steps_per_execution == 1 or \
                not isinstance(self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return original(self, step_function)
        trainer.tf = InlineStep("tensorflow")   # only while the functions are made; they look `tf` up when traced
        try:
            return original(self, step_function)
        finally:
            trainer.tf = tf

    return make_function
