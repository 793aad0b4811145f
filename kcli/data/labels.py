"""Labels: class names -> class ids, one-hot rows, and sklearn's "balanced" class weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kcli.data.python_source import Stream
from kcli.data.splits import Arrays, Splits, present
from kcli.errors import DataError


def encode_class_names(splits: Splits, names: list[str], file: tuple[Path, str] | None = None) -> list[str]:
    """String labels -> class ids in the order of `names` (the training split's sorted class names); a name the
    training split lacks is one line naming it (and, for another file of a finished run, the file and its key)."""
    ids = {name: i for i, name in enumerate(names)}
    for split, arrays in (("data", splits.train), ("data.validation", splits.validation), ("data.test", splits.test)):
        if not isinstance(arrays, Arrays) or arrays is None:
            continue
        y = np.asarray(arrays.y)
        unknown = sorted(set(y.astype(str).tolist()) - set(ids))
        if unknown:
            classes = f"({', '.join(map(repr, names[:10]))}{', ...' if len(names) > 10 else ''})"
            found = ", ".join(map(repr, unknown[:5]))
            if file is not None:
                raise DataError(f"{file[0]}: the labels hold class(es) {found} that the run was not trained on "
                                f"{classes}", key=file[1])
            raise DataError(f"the {split.removeprefix('data.') if '.' in split else 'training'} labels hold class(es) "
                            f"{found} that the training split does not have {classes}",
                            key=f"{split}.label" if split == "data" else split)
        arrays.y = np.array([ids[v] for v in y.astype(str).tolist()], dtype=np.int64)
    return names


def one_hot(splits: Splits, one_hot: bool | int) -> int:
    """Integer labels -> one-hot rows; `one_hot: true` infers the class count from every split."""
    for name, arrays in (("train", splits.train), ("validation", splits.validation), ("test", splits.test)):
        if arrays is None:
            continue
        if isinstance(arrays.y, dict):
            raise DataError("one_hot works on the labels of one output; with several outputs use sparse losses "
                            "(SparseCategoricalCrossentropy takes class ids)", key="data.one_hot")
        y = arrays.y.reshape(len(arrays.y), -1)
        if y.shape[1] != 1 or not np.all(np.equal(np.mod(y, 1), 0)) or y.min() < 0:
            raise DataError(f"one_hot needs one non-negative integer label per row; the {name} labels have "
                            f"shape {arrays.y.shape[1:] or '()'}", key="data.one_hot")
        arrays.y = y[:, 0].astype(np.int64)
    found = present(splits)
    classes = int(max(a.y.max() for a in found)) + 1 if one_hot is True else int(one_hot)
    for arrays in found:
        if arrays.y.max() >= classes:
            raise DataError(f"label {int(arrays.y.max())} does not fit one_hot: {classes} classes",
                            key="data.one_hot")
        arrays.y = np.eye(classes, dtype=np.float32)[arrays.y]
    return classes


def balanced_class_weight(train: Arrays | Stream) -> dict[int, float]:
    """sklearn's "balanced" weights from the training labels: n_examples / (n_classes * count of the class)."""
    key = "fit.class_weight"
    if not isinstance(train, Arrays):
        raise DataError("balanced needs the labels in memory; with source python or images give the weights "
                        "as {class id: weight}", key=key)
    if isinstance(train.y, dict):
        raise DataError("class weights work on the labels of one output (Keras: class_weight is not supported "
                        "for several outputs)", key=key)
    y = np.asarray(train.y).reshape(len(train.y), -1)
    ids = np.argmax(y, axis=1) if y.shape[1] > 1 else y[:, 0]
    if not np.all(np.equal(np.mod(ids, 1), 0)) or ids.min() < 0:
        raise DataError("balanced needs class ids (non-negative integers) or one-hot labels", key=key)
    ids = ids.astype(np.int64)
    counts = np.bincount(ids, minlength=y.shape[1] if y.shape[1] > 1 else 0)
    n, k = len(ids), len(counts)
    return {c: float(n / (k * counts[c])) if counts[c] else 0.0 for c in range(k)}
