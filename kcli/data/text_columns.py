"""Text columns (`kind: text`): their defaults, and the TextVectorization that learns their vocabulary on the
training split, block by block (in memory: one block; streamed: each block of the one pass).

What is recorded in the run's config.yaml: the vocabulary (and tf_idf's idf_weights), as a category records its
values. A 20000-token vocabulary is a few hundred kB of YAML, but then the config alone rebuilds the exact model
(resume, `kcli summary`, a received run) with no second file to keep beside it, and the model carries it too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcli.config.models import ColumnConfig, Spec
from kcli.errors import DataError

MAX_TOKENS = 20000
SEQUENCE_LENGTH = 200
EMBEDDING_DIM = 16
POOLING = "GlobalAveragePooling1D"


def with_defaults(spec: ColumnConfig) -> ColumnConfig:
    """A text column's spec with every default filled (what the config leaves out)."""
    spec = spec.model_copy()
    spec.output_mode = spec.output_mode or "multi_hot"
    spec.max_tokens = spec.max_tokens or MAX_TOKENS
    spec.standardize = spec.standardize or "lower_and_strip_punctuation"
    spec.split = spec.split or "whitespace"
    if spec.output_mode == "int":
        spec.sequence_length = spec.sequence_length or SEQUENCE_LENGTH
        spec.dim = spec.dim or EMBEDDING_DIM
        spec.layers = spec.layers if spec.layers is not None else [Spec.of(POOLING)]
    return spec


def vectorizer(spec: ColumnConfig, name: str) -> Any:
    """The column's TextVectorization: with the recorded vocabulary, or none yet (to be adapted)."""
    import keras

    spec = with_defaults(spec)
    vocabulary = list(spec.vocabulary) if spec.vocabulary is not None else None
    return keras.layers.TextVectorization(
        max_tokens=spec.max_tokens, standardize=None if spec.standardize == "none" else spec.standardize,
        split=None if spec.split == "none" else spec.split, ngrams=spec.ngrams, output_mode=spec.output_mode,
        output_sequence_length=spec.sequence_length if spec.output_mode == "int" else None,
        vocabulary=vocabulary, idf_weights=spec.idf_weights if vocabulary is not None else None,
        name=f"{name}_vectorize")   # kcli.model.table_inputs.VECTORIZE


def count(layer: Any, values: np.ndarray) -> None:
    """Count one block of the column's training rows ((n, 1) strings) into the vocabulary being adapted."""
    import tensorflow as tf

    layer.update_state(tf.constant(values.astype(object), tf.string))


def learned(spec: ColumnConfig, name: str, layer: Any) -> ColumnConfig:
    """The spec with the adapted vocabulary (and idf weights) recorded; the layer has counted every block."""
    layer.finalize_state()
    spec = with_defaults(spec)
    tokens = [str(t) for t in layer.get_vocabulary(include_special_tokens=False)]
    if not tokens:
        raise DataError(f"column {name!r} has no words in the training rows; ignore it (kind: ignore)",
                        key=f"data.columns.{name}")
    spec.vocabulary = tokens
    if spec.output_mode == "tf_idf":
        idf = layer._lookup_layer.idf_weights_const.numpy()   # Keras keeps no public getter for them
        spec.idf_weights = [float(v) for v in idf[-len(tokens):]]   # the OOV token's is their mean, rebuilt
    return spec
