"""The data function of configs/digits_tfdata.yaml: the bundled digits as tf.data pipelines, the way a
hand-written script builds `train_db` / `val_db` for `model.fit(train_db, validation_data=val_db)`."""

from importlib import resources

import numpy as np
import tensorflow as tf


def make(data: dict, seed: int, batch: int = 128) -> tuple[tf.data.Dataset, tf.data.Dataset, tf.data.Dataset]:
    """(train, validation, test): 10% test, 10% validation, seeded; pixels scaled to 0..1, labels as class ids."""
    with resources.files("kcli.data.bundled").joinpath("digits.npz").open("rb") as fh, np.load(fh) as npz:
        x, y = npz["x"].astype("float32") / 16.0, npz["y"].astype("int64")
    order = np.random.default_rng(seed).permutation(len(x))
    cut = len(x) // 10
    test, val, train = order[:cut], order[cut:2 * cut], order[2 * cut:]

    def batches(rows: np.ndarray, shuffle: bool) -> tf.data.Dataset:
        dataset = tf.data.Dataset.from_tensor_slices((x[rows], y[rows]))
        if shuffle:   # a new order every epoch, the same in every run with this seed
            dataset = dataset.shuffle(len(rows), seed=seed)
        return dataset.batch(batch).prefetch(tf.data.AUTOTUNE)

    return batches(train, True), batches(val, False), batches(test, False)
