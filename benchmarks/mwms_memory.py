"""Does a worker's memory grow per step under MultiWorkerMirroredStrategy without kcli? Plain Keras / TensorFlow.

    python benchmarks/mwms_memory.py [--loop fit|custom|reduce] [--input tensors|generator|dff] [--rows 64000]
                                     [--batch 64] [--epochs 5] [--workers 2] [--reduces 6] [--inner 10]
                                     [--spe 10 --inline]

Starts --workers local processes (TF_CONFIG on localhost ports), each trains an MLP 64-64-3 on seeded random rows
(10 columns, global batch --batch) for --epochs epochs, and prints its VmRSS after every epoch; the parent prints
each worker's growth per step between the end of epoch 1 and the end of the last one (tracing and warm-up
excluded). `--loop fit` is `model.fit` (with kcli's Keras 3.15 MWMS patch, without which fit does not run at
all); `--loop custom` is a plain `tf.function` step with `strategy.run` and no Keras trainer; `--loop reduce` has
no model and no data: --reduces all-reduces of 4,995 floats per step, --inner steps per tf.function call.
`--workers 1` runs one process without a strategy, for a baseline. (`--spe N`, steps_per_execution, fails under
MWMS in Keras 3.15: "You must feed a value for placeholder tensor", as with MirroredStrategy; with --inline, an
experiment that traces Keras's per-step function into the multi-step one, it runs.)

Found (RESULTS.md, "why a worker's memory grows"): ~1.5 KiB per all-reduce per tf.function call, the same in fit,
in a custom loop and with no model at all; 10 steps in one call (--inner 10) grow ~18x less, and so does fit with
--spe 10 --inline (~8x); one process does not.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def data(rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 10)).astype(np.float32)
    return x, np.argmax(x @ rng.normal(size=(10, 3)), axis=1).astype(np.int64)


def dataset(kind: str, x: np.ndarray, y: np.ndarray, batch: int, strategy: object, workers: int) -> object:
    """The input: tensors to fit (Keras batches), or a tf.data of this worker's own batches."""
    import tensorflow as tf

    if kind == "tensors":
        return None
    local = batch // workers
    index = int(json.loads(os.environ.get("TF_CONFIG", '{"task": {"index": 0}}'))["task"]["index"])

    def gen():   # this worker's rows, in batches of its share of the global batch
        for start in range(index * local, len(x) - local + 1, batch):
            yield x[start:start + local], y[start:start + local]

    spec = (tf.TensorSpec((None, 10), tf.float32), tf.TensorSpec((None,), tf.int64))
    ds = tf.data.Dataset.from_generator(gen, output_signature=spec).prefetch(2)
    if kind == "generator" and workers > 1:   # tf.distribute shards and rebatches it
        return tf.data.Dataset.from_generator(lambda: ((x[i:i + batch], y[i:i + batch])
                                                       for i in range(0, len(x) - batch + 1, batch)),
                                              output_signature=spec)
    if workers > 1:   # each worker's own batches, not sharded again (as kcli's streamed tables)
        return strategy.distribute_datasets_from_function(lambda _: ds)
    return ds


def worker(args: argparse.Namespace) -> None:
    import keras
    import tensorflow as tf

    multi = args.workers > 1
    if multi and args.loop == "fit":
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
        from kcli.distributed import multiworker_fix

        multiworker_fix.apply()
        if args.inline:
            inline_step_function()
    strategy = tf.distribute.MultiWorkerMirroredStrategy() if multi else tf.distribute.get_strategy()
    keras.utils.set_random_seed(1)
    x, y = data(args.rows)
    with strategy.scope():
        model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(64, activation="relu"),
                                  keras.layers.Dense(64, activation="relu"), keras.layers.Dense(3)])
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(optimizer="adam", loss=loss, steps_per_execution=args.spe)
    inputs = dataset(args.input, x, y, args.batch, strategy, args.workers)
    steps = len(x) // args.batch

    def report(epoch: int) -> None:
        print(json.dumps({"epoch": epoch, "rss": rss_mib(), "steps": steps}), flush=True)

    if args.loop == "reduce":
        return reduce_only(strategy, steps, args, report)
    if args.loop == "fit":
        class Rss(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: object = None) -> None:
                report(epoch + 1)

        fit_args = {"x": x, "y": y, "batch_size": args.batch} if inputs is None else {"x": inputs}
        model.fit(**fit_args, epochs=args.epochs, verbose=0, shuffle=False, callbacks=[Rss()])
        print(json.dumps({"weights": [float(abs(w).sum()) for w in model.get_weights()]}), flush=True)
        return
    custom_loop(model, loss, strategy, inputs if inputs is not None else
                tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch), args, report)


def inline_step_function() -> None:
    """An experiment, not in kcli: Keras's per-step function traced into the multi-step function instead of being a
    tf.function of its own (in `_make_function`, the only tf.function given `jit_compile`). Then steps_per_execution
    > 1 runs under MultiWorkerMirroredStrategy, and its steps share one call."""
    import types

    from keras.src.backend.tensorflow import trainer

    real = trainer.tf

    class Tf(types.ModuleType):
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        @staticmethod
        def function(fn: object = None, **kwargs: object) -> object:
            return fn if "jit_compile" in kwargs else real.function(fn, **kwargs)

    trainer.tf = Tf("tf")


def custom_loop(model: object, loss_fn: object, strategy: object, inputs: object, args: argparse.Namespace,
                report: object) -> None:
    import tensorflow as tf

    optimizer = model.optimizer
    if args.input == "tensors" and args.workers > 1:
        inputs = strategy.experimental_distribute_dataset(inputs)

    @tf.function
    def step(batch: object) -> object:
        def one(xb: object, yb: object) -> object:
            with tf.GradientTape() as tape:
                value = tf.reduce_sum(loss_fn.call(yb, model(xb, training=True))) / args.batch
            grads = tape.gradient(value, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            return value

        return strategy.reduce("SUM", strategy.run(one, args=batch), axis=None)

    for epoch in range(args.epochs):
        for batch in inputs:
            step(batch)
        report(epoch + 1)


def reduce_only(strategy: object, steps: int, args: argparse.Namespace, report: object) -> None:
    """No model, no data: one all-reduce of a vector of 4,995 floats (the MLP's weights) per step."""
    import tensorflow as tf

    @tf.function
    def step() -> object:
        total = tf.zeros((4995,))
        for _ in tf.range(args.inner):   # --inner steps in one call (a graph loop, as steps_per_execution would)
            total += tf.add_n([strategy.reduce("SUM", strategy.run(lambda: tf.ones((4995,))), axis=None)
                               for _ in range(args.reduces)])
        return total

    for epoch in range(args.epochs):
        for _ in range(steps // args.inner):
            step()
        report(epoch + 1)


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=("fit", "custom", "reduce"), default="fit")
    parser.add_argument("--input", choices=("tensors", "generator", "dff"), default="tensors")
    parser.add_argument("--rows", type=int, default=64_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reduces", type=int, default=1, help="all-reduces per step (--loop reduce)")
    parser.add_argument("--inner", type=int, default=1, help="steps per tf.function call (--loop reduce)")
    parser.add_argument("--inline", action="store_true", help="Keras's step function inlined (an experiment)")
    parser.add_argument("--spe", type=int, default=1, help="steps_per_execution (fit)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    ports = free_ports(args.workers)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    procs = []
    # a worker's stderr, for when it fails (TensorFlow's log lines are many)
    errors = [tempfile.NamedTemporaryFile("w+", prefix=f"mwms-worker-{i}-", suffix=".log", delete=False)
              for i in range(args.workers)]
    for i in range(args.workers):
        cfg = {"cluster": {"worker": [f"localhost:{p}" for p in ports]}, "task": {"type": "worker", "index": i}}
        procs.append(subprocess.Popen([sys.executable, __file__, *sys.argv[1:], "--worker"],
                                      env={**env, "TF_CONFIG": json.dumps(cfg)} if args.workers > 1 else env,
                                      stdout=subprocess.PIPE, stderr=errors[i], text=True))
    began = time.monotonic()
    for i, proc in enumerate(procs):
        lines = [json.loads(ln) for ln in proc.stdout if ln.startswith("{")]
        proc.wait()
        weights = [ln["weights"] for ln in lines if "weights" in ln]
        lines = [ln for ln in lines if "rss" in ln]
        if weights:
            print(f"worker {i}: sum |w| per weight: {[f'{w:.7g}' for w in weights[0]]}")
        if len(lines) < 2:
            print(f"worker {i}: exit {proc.returncode}, {lines}; its stderr: {errors[i].name}")
            continue
        first, last = lines[0], lines[-1]
        per_step = (last["rss"] - first["rss"]) * 1024 / ((last["epoch"] - first["epoch"]) * first["steps"])
        print(f"worker {i}: RSS by epoch {[round(r['rss']) for r in lines]} MiB; epochs {first['epoch']}->"
              f"{last['epoch']}: {per_step:+.2f} KiB/step ({first['steps']} steps/epoch)")
    print(f"{vars(args)} wall {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
