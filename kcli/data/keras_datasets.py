"""`source: keras`: the datasets of `keras.datasets`, loaded by Keras itself from its cache (downloaded by Keras
when the machine is online and the file is missing).

Each set comes as Keras gives it: a train part (split further by `validation_split`) and its own test part
(the run's test split). Labels are flattened to one class id per row (cifar's (n, 1) -> (n,)); imdb and reuters
give word-index sequences, padded (or cut) at the end to `data.maxlen` ids (default 200), with `data.num_words`
the vocabulary kept (Keras's argument).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

# name -> the file or folder Keras keeps under $KERAS_HOME (default ~/.keras)
FILES = {
    "mnist": "datasets/mnist.npz",
    "fashion_mnist": "datasets/fashion-mnist/",
    "cifar10": "datasets/cifar-10-batches-py/",
    "cifar100": "datasets/cifar-100-python/",
    "boston_housing": "datasets/boston_housing.npz",
    "imdb": "datasets/imdb.npz",
    "reuters": "datasets/reuters.npz",
}
SEQUENCES = ("imdb", "reuters")
DEFAULT_MAXLEN = 200


def keras_home() -> Path:
    """Where Keras looks for its cache in this process ($KERAS_HOME as Keras read it at import)."""
    from keras.src.backend import config

    return Path(os.path.expanduser(config.keras_home()))


def load(name: str, num_words: int | None, maxlen: int | None, key: str) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """((x_train, y_train), (x_test, y_test)) of a keras.datasets set, as kcli trains on them."""
    import keras

    from kcli.errors import DataError

    module = getattr(keras.datasets, name)
    args = {"num_words": num_words} if name in SEQUENCES and num_words else {}
    try:
        (x_train, y_train), (x_test, y_test) = module.load_data(**args)
    except Exception as exc:   # Keras raises a bare Exception for a failed download
        where = keras_home() / FILES[name]
        raise DataError(f"keras dataset {name!r} is not in Keras's cache ({where}) and could not be downloaded "
                        f"({str(exc).splitlines()[0][:200]}). Keras looks in $KERAS_HOME/datasets (KERAS_HOME is "
                        f"{keras_home()}); copy the file there from a machine that has it, or run once online",
                        key=f"{key}.name") from None
    if name in SEQUENCES:
        length = maxlen or DEFAULT_MAXLEN
        x_train, x_test = (keras.utils.pad_sequences(x, maxlen=length, padding="post", truncating="post")
                           for x in (x_train, x_test))
    return (x_train, _labels(y_train)), (x_test, _labels(y_test))


def _labels(y: np.ndarray) -> np.ndarray:
    """One value per row: cifar's (n, 1) class ids become (n,)."""
    return y.reshape(len(y)) if y.ndim == 2 and y.shape[1] == 1 else y
