"""`source: synthetic`: a seeded, learnable classification problem of the model's input shape."""

from __future__ import annotations

import math

import numpy as np

from kcli.data.splits import Arrays
from kcli.errors import DataError


def synthetic(samples: int, classes: int, feature_shape: tuple[int | None, ...], seed: int) -> Arrays:
    """A seeded, learnable classification problem: labels are the argmax of a random linear map."""
    if any(d is None for d in feature_shape):
        raise DataError("synthetic data needs a fully known model.input_shape (no null dimensions)",
                        key="model.input_shape")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, *feature_shape)).astype(np.float32)
    weights = rng.normal(size=(math.prod(feature_shape), classes))  # type: ignore[arg-type]
    y = np.argmax(x.reshape(samples, -1) @ weights, axis=1).astype(np.int64)
    return Arrays(x, y)
