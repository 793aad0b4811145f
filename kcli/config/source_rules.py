"""What each data source (`data.source`) takes and needs: the rules the schema applies to `data:` as a whole.

They run inside DataConfig's validation (models.py, which imports this module: `data` is typed Any to keep the
arrow one way); each raises ValueError, which loading.py turns into one line naming the key.
"""

from __future__ import annotations

from typing import Any

from kcli.config.suggest import did_you_mean

TABLES = ("csv", "parquet", "tfrecord")   # sources of named columns (kcli builds the model's inputs from them)
KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100", "boston_housing", "imdb", "reuters")
BUILTIN = {"digits": "digits.npz"}   # `data.name` of `source: builtin` -> its file in kcli/data/bundled/


# Keys that only make sense for one data source; anything else is a mistake worth naming.
_SOURCE_KEYS: dict[str, set[str]] = {
    "builtin": {"name"},
    "keras": {"name", "num_words", "maxlen"},
    "npz": {"path", "x_key", "y_key", "labels"},
    "csv": {"path", "label", "labels", "columns", "missing", "sample_weight", "stream"},
    "parquet": {"path", "label", "columns", "missing", "sample_weight", "stream"},
    "tfrecord": {"path", "label", "columns", "missing", "sample_weight", "stream", "features"},
    "synthetic": {"samples", "classes"},
    "python": {"function", "args"},
    "images": {"path", "image_size", "color_mode", "interpolation", "skip_bad_images"},
}


def check_data(data: Any) -> None:
    """Every rule of `data:` that spans its keys (which keys a source takes, what it needs, splits that clash)."""
    _check_source_keys(data, data.source, "")
    for split in ("validation", "test"):
        sub = getattr(data, split)
        if sub is not None and getattr(data, f"{split}_split") is not None:
            raise ValueError(f"give either `{split}` or `{split}_split`, not both")
        if sub is not None:
            _check_source_keys(sub, sub.source or data.source, f"{split}.")
    if data.source == "keras":
        _check_keras_dataset(data)
    if data.source == "python":
        _check_python_source(data)
    if data.source == "images":
        _check_image_source(data)
    if data.source == "tfrecord" and not data.features:
        raise ValueError("source tfrecord needs `features`: {name: float | int | string, ...}, the feature spec "
                         "of its records (the label among them)")
    if data.features is not None and data.label is not None and data.label not in data.features:
        raise ValueError(f"the label {data.label!r} is not among `features` ({', '.join(data.features)})")
    if (data.validation_split or 0) + (data.test_split or 0) >= 1:
        raise ValueError("validation_split + test_split must leave some data for training")
    if data.stratify and data.validation_split is None and data.test_split is None:
        raise ValueError("stratify holds out validation_split / test_split per class: give one of them (or "
                         "remove stratify)")


def _check_keras_dataset(data: Any) -> None:
    if data.name not in KERAS_DATASETS:
        hint = did_you_mean(data.name or "", KERAS_DATASETS) if data.name else ""
        raise ValueError(f"source keras needs `name`, one of {', '.join(KERAS_DATASETS)}; got {data.name!r}{hint}")
    if data.test is not None or data.test_split is not None or data.validation is not None:
        raise ValueError("a keras dataset brings its own test split (and validation comes from validation_split): "
                         "remove `test`, `test_split` and `validation`")
    if (data.num_words or data.maxlen) and data.name not in ("imdb", "reuters"):
        raise ValueError("num_words and maxlen are for the word sequences of imdb and reuters")


def _check_python_source(data: Any) -> None:
    if not data.function or ":" not in data.function:
        raise ValueError("source python needs `function`: file.py:function (relative to this config) or "
                         f"module:function, returning tf.data datasets; got {data.function!r}")
    made_by_function = [k for k in ("validation", "test", "validation_split", "test_split", "stratify", "one_hot",
                                    "scale")
                        if getattr(data, k) not in (None, False)]
    if made_by_function:
        raise ValueError(f"{', '.join(made_by_function)}: your function makes the splits and prepares the "
                         "batches; do it there (return (train, validation, test))")


def _check_image_source(data: Any) -> None:
    if data.stratify:
        raise ValueError("stratify: an image folder is split by Keras's own validation_split (a seeded subset of "
                         "the files), not per class; remove stratify")
    given = [k for k in ("test_split", "one_hot") if getattr(data, k) not in (None, False)]
    if given:
        raise ValueError(f"{', '.join(given)}: an image folder gives class ids (use a sparse loss) and is split by "
                         "validation_split; a test set is its own folder: test: {path: ...}")
    for split in ("validation", "test"):
        sub = getattr(data, split)
        if sub is not None and (sub.source not in (None, "images") or not sub.path):
            raise ValueError(f"`{split}` of an image folder is another folder: {split}: {{path: ...}}")


def _check_source_keys(obj: Any, source: str, prefix: str) -> None:
    """Reject keys that belong to another data source (e.g. `label` with source npz)."""
    own = _SOURCE_KEYS[source]
    for other, keys in _SOURCE_KEYS.items():
        for key in sorted((keys - own) & obj.model_fields_set):
            raise ValueError(f"`{prefix}{key}` is only used with source {other}, not {source}")
    if source in ("npz", "csv", "parquet", "tfrecord", "images") and "path" not in obj.model_fields_set and \
            not prefix:
        what = "a folder with one sub-folder per class" if source == "images" else "a file"
        raise ValueError(f"source {source} needs `path` ({what}, relative to the config file)")
    if source in TABLES and not prefix and not {"label", "labels"} & obj.model_fields_set:
        raise ValueError(f"source {source} needs `label` (the name of the label column)")
