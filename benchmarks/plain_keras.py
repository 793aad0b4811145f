"""The hand-written Keras script that kcli is measured against: numpy arrays into `fit`, default compile
settings, the way the Keras guides write it. Used by train_vs_keras.py; runnable on its own:

    python benchmarks/plain_keras.py digits
    python benchmarks/plain_keras.py large --data /tmp/large.npz

It holds out validation/test rows the way kcli does (a permutation seeded by the config's seed, rows kept
in file order), so both sides train on the same rows. Prints one JSON line: epoch_seconds, final_loss.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402


def hold_out(n, seed, validation, test):
    perm = np.random.default_rng(seed).permutation(n)
    n_test, n_val = round(n * test), round(n * validation)
    return np.sort(perm[n_test + n_val:]), np.sort(perm[n_test:n_test + n_val]), np.sort(perm[:n_test])


class EpochTimes(keras.callbacks.Callback):
    """Seconds from the end of one epoch to the end of the next (the first from the start of training)."""

    def on_train_begin(self, logs=None):
        self.ends = [time.perf_counter()]

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter())


def digits(path):
    data = np.load(path)
    x = data["x"].astype("float32") * np.float32(0.0625)
    y = keras.utils.to_categorical(data["y"], 10)
    train, val, test = hold_out(len(x), 42, 0.15, 0.15)
    keras.utils.set_random_seed(42)
    model = keras.Sequential([
        keras.Input(shape=(64,)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    timer = EpochTimes()
    history = model.fit(x[train], y[train], batch_size=32, epochs=30, validation_data=(x[val], y[val]),
                        callbacks=[timer], verbose=0)
    model.evaluate(x[test], y[test], batch_size=32, verbose=0)
    return history, timer


def large(path):
    data = np.load(path)
    x, y = data["x"].astype("float32"), data["y"]
    train, val, _ = hold_out(len(x), 7, 0.1, 0)
    keras.utils.set_random_seed(7)
    model = keras.Sequential([
        keras.Input(shape=(256,)),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    timer = EpochTimes()
    history = model.fit(x[train], y[train], batch_size=256, epochs=3, validation_data=(x[val], y[val]),
                        callbacks=[timer], verbose=0)
    return history, timer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=["digits", "large"])
    parser.add_argument("--data", help="the .npz file (default for digits: kcli's bundled copy)")
    args = parser.parse_args()
    if args.case == "digits" and not args.data:
        from importlib import resources
        args.data = str(resources.files("kcli.data.bundled").joinpath("digits.npz"))
    history, timer = (digits if args.case == "digits" else large)(args.data)
    seconds = [b - a for a, b in zip(timer.ends, timer.ends[1:])]
    print(json.dumps({"epoch_seconds": seconds, "final_loss": history.history["loss"][-1]}))


if __name__ == "__main__":
    main()
