"""The inputs of a model of table columns, and the Keras preprocessing layers that turn raw cells into features.

One `keras.Input((1,))` per feature column (float32 numbers, string text, int64 whole-number codes), named after
the column. Then, as the Keras structured-data guides write it by hand:

- numbers: a missing value (NaN) filled (`FillMissing`, with the training mean unless `fill` says otherwise),
  then all standardized numbers concatenated and put through one `Normalization` adapted on the training split
  (per feature, as one Normalization per column would); `normalize: false` numbers are passed on as they are;
- categories: `StringLookup` / `IntegerLookup` on the training vocabulary with one out-of-vocabulary bucket
  (a value never seen in training), then one-hot, or an `Embedding` of `dim` (flattened);
- text: a `TextVectorization` on the training vocabulary (kcli.data.text_columns): a bag of words
  (multi_hot / count / tf_idf), or token ids (int) into an `Embedding` of `dim` and the column's `layers`;
- `missing: indicator`: a 0/1 feature per number column saying the cell was empty (`IsMissing`).

The features are concatenated in that order (standardized numbers, then every other column's features in column
order) and feed the config's layers (or a graph's `input`). All of it is part of the saved model, so `kcli
predict` and the SavedModel take raw cells.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from kcli.config.code import Registry
from kcli.config.model_io import Ports, input_name
from kcli.config.models import ColumnConfig
from kcli.errors import ConfigError, first_line
from kcli.model.layers import make_layer

NORMALIZATION = "numbers_normalization"
LOOKUP = "_lookup"   # a category's lookup layer is named <input name>_lookup
VECTORIZE = "_vectorize"   # a text column's TextVectorization: <input name>_vectorize (kcli.data.text_columns)
TOKENS = "_tokens"   # ONNX / TFLite: a text column's input is what its TextVectorization makes


@keras.saving.register_keras_serializable(package="kcli")
class FillMissing(keras.layers.Layer):
    """NaN -> `value` (a missing number of a column with missing: fill / indicator)."""

    def __init__(self, value: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.value = float(value)

    def call(self, x: Any) -> Any:
        return keras.ops.where(keras.ops.isnan(x), keras.ops.cast(self.value, x.dtype), x)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "value": self.value}


@keras.saving.register_keras_serializable(package="kcli")
class IsMissing(keras.layers.Layer):
    """1.0 where a number is missing (NaN), else 0.0 (missing: indicator)."""

    def call(self, x: Any) -> Any:
        return keras.ops.cast(keras.ops.isnan(x), self.compute_dtype)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


def inputs_and_features(columns: dict[str, ColumnConfig], ports: Ports,
                        registry: Registry | None = None) -> tuple[dict[str, Any], Any]:
    """The model's inputs (by input name) and the tensor of encoded features they make."""
    # a text column's input is one string per row: TextVectorization makes (rows, tokens) of it (Keras feeds the
    # (n, 1) column to it squeezed); of a (rows, 1) input it would claim a (rows, 1, tokens) bag of words
    inputs = {p.name: keras.Input(shape=() if _kind(columns, p) == "text" else (1,), name=p.name, dtype=p.dtype)
              for p in ports.inputs}
    numbers: list[Any] = []
    others: list[Any] = []
    indicators: list[Any] = []
    for port in ports.inputs:
        spec, tensor = columns[(port.columns or ("",))[0]], inputs[port.name]
        if spec.kind == "number":
            if spec.missing == "indicator":
                indicators.append(IsMissing(name=f"{port.name}_missing")(tensor))
            if spec.missing in ("fill", "indicator"):
                tensor = FillMissing(spec.fill if spec.fill is not None else 0.0, name=f"{port.name}_fill")(tensor)
            (numbers if spec.normalize is not False else others).append(tensor)
        elif spec.kind == "text":
            others.append(_text(spec, port, tensor, registry or Registry()))
        else:
            others.append(_category(spec, port.name, port.dtype, tensor))
    parts = []
    if numbers:
        joined = numbers[0] if len(numbers) == 1 else keras.layers.Concatenate(name="numbers")(numbers)
        parts.append(keras.layers.Normalization(name=NORMALIZATION)(joined))
    parts += others + indicators
    features = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="features")(parts)
    return inputs, features


def _kind(columns: dict[str, ColumnConfig], port: Any) -> str | None:
    return columns[(port.columns or ("",))[0]].kind


def _text(spec: ColumnConfig, port: Any, tensor: Any, registry: Registry) -> Any:
    """Raw text -> TextVectorization on the recorded vocabulary -> a bag of words, or (int) token ids ->
    Embedding(vocabulary size, dim) -> the column's `layers`, which must end in one vector per row."""
    from kcli.data import text_columns

    spec = text_columns.with_defaults(spec)
    vectorize = text_columns.vectorizer(spec, port.name)
    if spec.split == "none":   # the cell is one token: unsplit, TextVectorization reads a (rows,) batch as one row
        tensor = keras.layers.Reshape((1,), name=f"{port.name}_cell")(tensor)
    x = vectorize(tensor)
    if spec.output_mode != "int":
        return x
    column = (port.columns or ("",))[0]
    key = f"data.columns.{column}.layers"
    # constructed before they are called, as model.layers are (kcli.model.build): the same random draws
    embedding = keras.layers.Embedding(vectorize.vocabulary_size(), int(spec.dim or 0), name=f"{port.name}_embedding")
    made = [make_layer(layer, f"{key}[{i}]", registry) for i, layer in enumerate(spec.layers or [])]
    x = embedding(x)
    for i, layer in enumerate(made):
        before = tuple(x.shape)
        try:
            x = layer(x)
        except Exception as exc:  # Keras raises ValueError/TypeError/... for shape problems
            raise ConfigError(f"{first_line(exc)} (its input has shape {before})", key=f"{key}[{i}]") from None
    if len(x.shape) != 2:
        raise ConfigError(f"the layers of text column {column!r} end in shape {tuple(x.shape)}, not one vector "
                          "per row: end them with a pooling (GlobalAveragePooling1D, GlobalMaxPooling1D), a "
                          "recurrent layer without return_sequences, or Flatten", key=key)
    return x


def _category(spec: ColumnConfig, name: str, dtype: str, tensor: Any) -> Any:
    """Value -> id (0 = not in the vocabulary, then the vocabulary's values in order) -> one-hot or embedding.
    The ids are a tensor of their own so that ONNX / TFLite, which have no string lookup, can take them."""
    vocabulary = list(spec.vocabulary or [])
    lookup_class = keras.layers.IntegerLookup if dtype == "int64" else keras.layers.StringLookup
    ids = lookup_class(vocabulary=vocabulary, name=f"{name}{LOOKUP}")(tensor)
    if spec.encoding == "embedding":
        dim = int(spec.dim or 8)
        embedded = keras.layers.Embedding(len(vocabulary) + 1, dim, name=f"{name}_embedding")(ids)
        return keras.layers.Reshape((dim,), name=f"{name}_embedded")(embedded)
    return keras.layers.CategoryEncoding(len(vocabulary) + 1, output_mode="one_hot", name=f"{name}_one_hot")(ids)


def adapt(model: keras.Model, train: Any, columns: dict[str, ColumnConfig] | None, ports: Ports,
          stats: dict[str, Any] | None = None) -> tuple[str, ...]:
    """The Normalization of the standardized numbers learns their mean and variance from the training split
    (missing values filled as the model fills them), as `norm.adapt(x_train_numbers)` in a hand-written script;
    a streamed table's from the statistics of its one pass (`stats`, float64). Returns the adapted layer's name
    (none without standardized numbers)."""
    try:
        layer = model.get_layer(NORMALIZATION)
    except ValueError:
        return ()
    assert columns is not None
    if stats is None:
        layer.adapt(numbers_matrix(train.x, columns, ports))
        return (layer.name,)
    moments = [stats[name].filled_moments(spec.fill or 0.0) for name, spec in _normalized(columns, ports)]
    layer.adapt_mean.assign(np.array([m for m, _ in moments], np.float32))
    layer.adapt_variance.assign(np.array([v for _, v in moments], np.float32))
    layer.finalize_state()
    return (layer.name,)


def _normalized(columns: dict[str, ColumnConfig], ports: Ports) -> list[tuple[str, ColumnConfig]]:
    """The standardized number columns, in the order of the model's inputs."""
    named = [((p.columns or ("",))[0]) for p in ports.inputs]
    return [(n, columns[n]) for n in named if columns[n].kind == "number" and columns[n].normalize is not False]


def numbers_matrix(x: dict[str, np.ndarray], columns: dict[str, ColumnConfig], ports: Ports) -> np.ndarray:
    """The standardized number columns side by side (float32), missing values filled."""
    parts = []
    for name, spec in _normalized(columns, ports):
        values = x[input_name(name)].astype(np.float32)
        if spec.missing in ("fill", "indicator"):
            values = np.where(np.isnan(values), np.float32(spec.fill or 0.0), values)
        parts.append(values)
    return np.concatenate(parts, axis=1)


def without_lookups(model: keras.Model) -> tuple[keras.Model, Any] | None:
    """For formats without string lookups (ONNX, TFLite): the model from the category ids and text vectors on
    (inputs named <column>_id, int64: 0 = not in the vocabulary, i = the i-th value of
    data.columns.<column>.vocabulary; <column>_tokens: what the column's TextVectorization makes of the text), and
    a function turning raw rows into its inputs. None when the model has no lookup."""
    cuts = {}
    for layer in model.layers:
        if isinstance(layer, (keras.layers.StringLookup, keras.layers.IntegerLookup)) and layer.name.endswith(LOOKUP):
            cuts[layer.name[: -len(LOOKUP)]] = (layer, "_id")
        elif isinstance(layer, keras.layers.TextVectorization) and layer.name.endswith(VECTORIZE):
            cuts[layer.name[: -len(VECTORIZE)]] = (layer, TOKENS)
    if not cuts or not isinstance(model.input, dict):
        return None
    import warnings

    kept = {name: t for name, t in model.input.items() if name not in cuts}
    inner_inputs = {**kept, **{f"{name}{suffix}": layer.output for name, (layer, suffix) in cuts.items()}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # Keras asks dict keys to match tensor names: named just below
        inner = keras.Model(inner_inputs, model.output, name="functional")
    for name, tensor in inner.input.items():   # the model's own copies of the id tensors (exports use the names)
        tensor.name = name

    def convert(x: dict[str, Any]) -> dict[str, Any]:
        made = {}
        for name, (layer, suffix) in cuts.items():
            values = keras.ops.convert_to_numpy(layer(_tensor(x[name])))
            # as the inner model takes them (an eager TextVectorization may hand a bag of words as int64)
            key = f"{name}{suffix}"
            made[key] = values.astype(np.int64 if suffix == "_id" else inner.input[key].dtype)
        return {**{k: v for k, v in x.items() if k not in cuts}, **made}

    return inner, convert


def _tensor(values: np.ndarray) -> Any:
    if values.dtype == object:
        import tensorflow as tf

        return tf.constant(values, tf.string)
    return values


def sample_rows(columns: dict[str, ColumnConfig], ports: Ports, rows: int) -> dict[str, np.ndarray]:
    """Seeded raw rows for checking an export: numbers around the fill value (and one missing where the
    column may miss), categories from the vocabulary and one value outside it."""
    rng = np.random.default_rng(0)
    made = {}
    for port in ports.inputs:
        spec = columns[(port.columns or ("",))[0]]
        if spec.kind == "number":
            values = rng.normal(spec.fill or 0.0, 1.0, size=(rows, 1)).astype(np.float32)
            if spec.missing in ("fill", "indicator"):
                values[0, 0] = np.nan
        elif spec.kind == "text":   # a few known words, one unknown word, one empty text
            words = list(spec.vocabulary or ["word"])
            picked = [" ".join(words[i] for i in rng.integers(0, len(words), size=3)) for _ in range(rows - 2)]
            values = np.array([*picked, f"{words[0]} notseenintraining", ""], dtype=object).reshape(rows, 1)
        else:
            vocabulary = list(spec.vocabulary or [])
            unknown = -7 if port.dtype == "int64" else "<not seen in training>"
            picked = [vocabulary[i] for i in rng.integers(0, len(vocabulary), size=rows - 1)] + [unknown]
            values = np.array(picked, dtype=np.int64 if port.dtype == "int64" else object).reshape(rows, 1)
        made[port.name] = values
    return made
