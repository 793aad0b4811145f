"""YAML config -> validated, typed config. Every structural mistake in a config file is caught here.

The schema validates structure only; a layer's own arguments are checked by Keras (see model.py).
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    model_serializer,
    model_validator,
)

from kcli.config.compose import Origin, compose, describe_origin, origin_of
from kcli.config.overrides import apply_overrides, blame_override
from kcli.errors import ConfigError, KcliError, join_key, key_path

SaveFormat = Literal["keras", "h5", "weights", "savedmodel"]
ALL_SAVE_FORMATS: tuple[str, ...] = ("keras", "h5", "weights", "savedmodel")
DataSource = Literal["builtin", "keras", "npz", "csv", "parquet", "tfrecord", "synthetic", "python", "images"]
TABLES = ("csv", "parquet", "tfrecord")   # sources of named columns (kcli builds the model's inputs from them)
KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100", "boston_housing", "imdb", "reuters")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
MAX_NAME = 100
MAX_BATCH = 1 << 24          # rows per batch; more does not fit any accelerator's memory
MAX_SYNTHETIC = 100_000_000


class Spec(BaseModel):
    """A Keras object named the kcli way: a bare `Name`, or a one-key mapping `Name: {kwargs}`."""

    model_config = ConfigDict(frozen=True)
    name: str
    args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, Spec):
            return value
        if isinstance(value, str) and value.strip():
            return {"name": value.strip(), "args": {}}
        if isinstance(value, dict) and len(value) == 1:
            (name, args), = value.items()
            if args is None:
                args = {}
            if not isinstance(name, str) or not isinstance(args, dict):
                raise ValueError(f"the arguments of {name!r} must be a mapping like {{units: 10}}")
            label = args.get("name")
            if isinstance(label, str) and not label.isprintable():   # it is shown, logged and saved as text
                raise ValueError(f"{name}.name {label!r} holds a control or invisible character; a name is "
                                 "printed and saved as text: use printable characters")
            return {"name": name, "args": args}
        raise ValueError("expected a name (e.g. ReLU) or a one-key mapping (e.g. Dense: {units: 10})")

    @model_serializer
    def _dump(self) -> Any:
        return {self.name: self.args} if self.args else self.name

    @classmethod
    def of(cls, name: str, args: dict[str, Any] | None = None) -> Spec:
        """Build a Spec in code (no YAML parsing)."""
        return cls.model_construct(name=name, args=dict(args or {}))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SplitSource(_Strict):
    """Where a validation or test split comes from; unset fields are taken from `data`."""

    source: DataSource | None = None
    name: str | None = None
    path: str | None = None
    x_key: str | None = None
    y_key: str | None = None
    label: str | None = None


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


MissingPolicy = Literal["error", "fill", "indicator"]


class ColumnConfig(_Strict):
    """`data.columns.<name>:` how one feature column of a CSV / Parquet table enters the model. Every field left
    out is inferred from the training split and recorded in the run's config.yaml."""

    # number: standardized (a Normalization adapted on the training split); category: a StringLookup (text) or
    # IntegerLookup (whole numbers) with one-hot or an embedding; ignore: not a feature
    kind: Literal["number", "category", "ignore"] | None = None   # default: text -> category, numbers -> number
    normalize: bool | None = None    # number: standardize (default true)
    # category: one_hot (default up to 50 values) or embedding (default above 50 values)
    encoding: Literal["one_hot", "embedding"] | None = None
    dim: PositiveInt | None = None   # embedding: its width (default min(50, round(1.6 * values ** 0.56)))
    # empty cells (and NaN): error (default), fill (numbers: `fill`, default the training mean; text: a
    # category of its own; whole-number categories: -1), indicator (fill, plus a 0/1 "was missing" feature)
    missing: MissingPolicy | None = None
    fill: float | None = None        # number, missing fill/indicator: the value (default: the training mean)
    vocabulary: list[str] | list[int] | None = None   # category: the values (default: those of the training split)

    @model_validator(mode="after")
    def _fits_kind(self) -> ColumnConfig:
        wrong = {"number": ("encoding", "dim", "vocabulary"), "category": ("normalize", "fill"),
                 "ignore": ("normalize", "encoding", "dim", "missing", "fill", "vocabulary")}.get(self.kind or "", ())
        given = [k for k in wrong if getattr(self, k) is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: not used by a column of kind {self.kind}")
        if self.dim is not None and self.encoding == "one_hot":
            raise ValueError("`dim` is the width of an embedding: set encoding: embedding (or drop dim)")
        return self


class DataConfig(_Strict):
    """`data:` where the examples come from and how they are split and preprocessed."""

    source: DataSource = "builtin"
    name: str | None = None          # builtin dataset name, or keras.datasets name (source keras: mnist, cifar10, ...)
    num_words: PositiveInt | None = None   # keras imdb/reuters: keep the most frequent words (Keras's num_words)
    maxlen: PositiveInt | None = None      # keras imdb/reuters: sequences padded or cut to this many ids (200)
    path: str | None = None          # npz / csv file, relative to the config file
    x_key: str | None = None         # npz array names (default x / y)
    y_key: str | None = None
    label: str | None = None         # csv / parquet label column
    # csv / parquet without model.input_shape: how each feature column enters the model (inferred when left out;
    # kcli builds one named input per column and the preprocessing inside the model)
    columns: dict[str, ColumnConfig] | None = None
    missing: MissingPolicy | None = None   # csv / parquet: the default policy for empty cells (error)
    sample_weight: str | None = None   # csv / parquet: a column of per-row weights (fit's sample_weight)
    # tfrecord: the feature spec of the tf.train.Example records, name -> float | int | string (one value each)
    features: dict[str, Literal["float", "int", "string"]] | None = None
    # csv / parquet columns (path: a file, a folder or a glob): read in blocks during training instead of whole;
    # auto (default) streams files larger than 512 MiB (or a quarter of the available memory)
    stream: bool | Literal["auto"] | None = None
    # several outputs: the label of each output, by output name: a csv column or an npz array (default: the
    # array named like the output)
    labels: dict[str, str] | None = None
    function: str | None = None      # python: file.py:function (or module:function) returning tf.data datasets
    args: dict[str, Any] | None = None   # python: keyword arguments for the function
    image_size: tuple[PositiveInt, PositiveInt] | None = None   # images: each resized to [height, width] (256 x 256)
    color_mode: Literal["grayscale", "rgb", "rgba"] | None = None   # images: 1, 3 or 4 channels (rgb)
    # images: tf.image.resize's method (default bilinear)
    interpolation: Literal["bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian",
                           "mitchellcubic"] | None = None
    # images: leave out files that are not images (empty, damaged, another format) and say how many, instead of
    # stopping at the first with one line naming it
    skip_bad_images: bool | None = None
    samples: int | None = Field(None, ge=1, le=MAX_SYNTHETIC)   # synthetic: number of examples (default 1000)
    classes: int | None = Field(None, ge=2)  # synthetic: number of classes (default 2)
    validation: SplitSource | None = None
    validation_split: float | None = Field(None, gt=0, lt=1)   # fraction of train held out for validation (seeded)
    test: SplitSource | None = None
    test_split: float | None = Field(None, gt=0, lt=1)   # fraction of train held out for testing (seeded)
    batch_size: int = Field(32, ge=1, le=MAX_BATCH)    # examples per training step (Keras's fit default: 32)
    # true: Keras's own fit(shuffle=True), seeded through `seed` (identical numbers to a hand-written script;
    # under a seed Keras 3.15 visits the rows in one permutation that repeats every epoch).
    # each_epoch: a new seeded permutation every epoch (stateless, so a resumed run stays exact).
    shuffle: bool | Literal["each_epoch"] = True
    # true: build the batches once and keep them in memory (the same batches, ~4x faster epochs on small
    # models; one extra copy of the training and validation data). false: give fit the arrays (Keras gathers
    # every batch again each epoch), as a hand-written script does.
    cache: bool = True
    prefetch: NonNegativeInt | Literal["auto"] = "auto"   # batches prepared ahead; auto = tf.data.AUTOTUNE
    one_hot: bool | PositiveInt = False   # integer labels -> one-hot rows (true infers the class count)
    scale: float | None = None   # features are multiplied by this (e.g. 0.0625 for pixel values 0..16)

    @model_validator(mode="after")
    def _check_source(self) -> DataConfig:
        _check_source_keys(self, self.source, "")
        for split in ("validation", "test"):
            sub = getattr(self, split)
            if sub is not None and getattr(self, f"{split}_split") is not None:
                raise ValueError(f"give either `{split}` or `{split}_split`, not both")
            if sub is not None:
                _check_source_keys(sub, sub.source or self.source, f"{split}.")
        if self.source == "keras":
            _check_keras_dataset(self)
        if self.source == "python":
            _check_python_source(self)
        if self.source == "images":
            _check_image_source(self)
        if self.source == "tfrecord" and not self.features:
            raise ValueError("source tfrecord needs `features`: {name: float | int | string, ...}, the feature spec "
                             "of its records (the label among them)")
        if self.features is not None and self.label is not None and self.label not in self.features:
            raise ValueError(f"the label {self.label!r} is not among `features` ({', '.join(self.features)})")
        if (self.validation_split or 0) + (self.test_split or 0) >= 1:
            raise ValueError("validation_split + test_split must leave some data for training")
        return self


def _check_keras_dataset(data: DataConfig) -> None:
    if data.name not in KERAS_DATASETS:
        hint = did_you_mean(data.name or "", KERAS_DATASETS) if data.name else ""
        raise ValueError(f"source keras needs `name`, one of {', '.join(KERAS_DATASETS)}; got {data.name!r}{hint}")
    if data.test is not None or data.test_split is not None or data.validation is not None:
        raise ValueError("a keras dataset brings its own test split (and validation comes from validation_split): "
                         "remove `test`, `test_split` and `validation`")
    if (data.num_words or data.maxlen) and data.name not in ("imdb", "reuters"):
        raise ValueError("num_words and maxlen are for the word sequences of imdb and reuters")


def _check_python_source(data: DataConfig) -> None:
    if not data.function or ":" not in data.function:
        raise ValueError("source python needs `function`: file.py:function (relative to this config) or "
                         f"module:function, returning tf.data datasets; got {data.function!r}")
    made_by_function = [k for k in ("validation", "test", "validation_split", "test_split", "one_hot", "scale")
                        if getattr(data, k) not in (None, False)]
    if made_by_function:
        raise ValueError(f"{', '.join(made_by_function)}: your function makes the splits and prepares the "
                         "batches; do it there (return (train, validation, test))")


def _check_image_source(data: DataConfig) -> None:
    given = [k for k in ("test_split", "one_hot") if getattr(data, k) not in (None, False)]
    if given:
        raise ValueError(f"{', '.join(given)}: an image folder gives class ids (use a sparse loss) and is split by "
                         "validation_split; a test set is its own folder: test: {path: ...}")
    for split in ("validation", "test"):
        sub = getattr(data, split)
        if sub is not None and (sub.source not in (None, "images") or not sub.path):
            raise ValueError(f"`{split}` of an image folder is another folder: {split}: {{path: ...}}")


def _check_source_keys(obj: BaseModel, source: str, prefix: str) -> None:
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


class GraphNode(_Strict):
    """One node of a functional graph: a layer called on earlier nodes' outputs."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")   # refer to this node's output by it
    layer: Spec | None = None   # the layer to call here: `Name` or `Name: {arguments}`
    share: str | None = None    # instead of layer: call the layer of this earlier node again (shared weights)
    inputs: list[str] | None = None   # earlier nodes (or `input`) this node takes; default: the node before

    @model_validator(mode="after")
    def _one_layer(self) -> GraphNode:
        if (self.layer is None) == (self.share is None):
            raise ValueError("give exactly one of `layer` (a new layer) or `share` (an earlier node's layer)")
        if self.inputs is not None and not self.inputs:
            raise ValueError("`inputs` is empty: name at least one earlier node, or leave it out")
        return self


GRAPH_INPUT = "input"   # the model's input in a graph's `inputs`


class InputConfig(_Strict):
    """One named input of a graph model (`model.inputs`): its shape and the data that feed it."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")   # graph nodes take it by this name
    shape: list[PositiveInt | None]   # per example, without the batch dimension, like keras.Input(shape)
    dtype: Literal["float32", "float64", "int32", "int64"] = "float32"   # int for Embedding/lookup inputs
    columns: list[str] | None = None   # source csv: the columns that feed it, in order
    array: str | None = None   # source npz: the array that feeds it (default: the input's name)


class ModelConfig(_Strict):
    """`model:` a Sequential stack of layers, a functional graph, or a custom keras.Model subclass."""

    # per example, without the batch dimension, like keras.Input(shape); a graph may name `inputs` instead
    input_shape: list[PositiveInt | None] | None = None
    inputs: list[InputConfig] | None = None   # with graph: several named inputs (instead of input_shape)
    layers: list[Spec] | None = None   # a Sequential stack: keras.layers names (or your own classes) with arguments
    graph: list[GraphNode] | None = None   # instead of layers: named nodes with `inputs` (merges, skips, sharing)
    # with graph: the node whose output is the model's (default: the last node), or a list of nodes for
    # several outputs (compile.loss, loss_weights and metrics may then be given per output name)
    output: str | list[str] | None = None
    class_: str | None = Field(None, alias="class")   # instead of layers: your keras.Model subclass (file.py:Class)
    args: dict[str, Any] | None = None   # the constructor arguments of `class`
    # Warm start: weights from a run directory, a .keras file or a .weights.h5 file (relative to this file),
    # matched by layer name (by order when no name matches); a shape mismatch is an error unless skip_mismatch.
    init_from: str | None = None
    skip_mismatch: bool = False   # with init_from: skip layers whose weights do not fit instead of failing
    # Freeze every layer up to and including this one (also a layer inside a keras.applications backbone, e.g.
    # block_13_expand of MobileNetV2: the backbone's earlier layers freeze, its later ones train)
    freeze_up_to: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ModelConfig:
        kinds = [k for k in (self.layers, self.graph, self.class_) if k is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of `layers` (a Sequential stack), `graph` (a functional graph) "
                             "or `class` (a keras.Model subclass)")
        if (self.layers is not None and not self.layers) or (self.graph is not None and not self.graph):
            raise ValueError("`layers` or `graph` is empty: list at least one layer")
        if self.args is not None and self.class_ is None:
            raise ValueError("`args` goes with `class`; layers take their arguments inline")
        if self.output is not None and self.graph is None:
            raise ValueError("`output` goes with `graph`")
        if self.inputs is not None and self.graph is None:
            raise ValueError("`inputs` goes with `graph`; a Sequential stack or a Model class takes `input_shape`")
        if self.inputs is not None and self.input_shape is not None:
            raise ValueError("give `input_shape` or `inputs`, not both")
        if self.inputs is not None and not self.inputs:
            raise ValueError("`inputs` is empty: list at least one input")
        if isinstance(self.output, list) and (not self.output or len(set(self.output)) != len(self.output)):
            raise ValueError("`output` lists each output node once (at least one)")
        return self

    @property
    def outputs(self) -> list[str]:
        """The output nodes when `output` lists several (their names key the per-output losses); else []."""
        return list(self.output) if isinstance(self.output, list) and len(self.output) > 1 else []


class CompileConfig(_Strict):
    """`compile:` the arguments of keras.Model.compile."""

    optimizer: Spec = Field(default_factory=lambda: Spec.of("rmsprop"))  # Keras's compile default: rmsprop
    # a keras.losses class or name (mse, categorical_crossentropy, ...); several outputs: one per output name
    loss: Spec | dict[str, Spec] = Field(union_mode="left_to_right")
    loss_weights: dict[str, float] | None = None   # several outputs: each output's weight in the total loss
    # keras.metrics names or classes (accuracy, mae, AUC, ...); several outputs: a list for each output name
    # (a plain list is measured on every output)
    metrics: list[Spec] | dict[str, list[Spec]] = Field(default_factory=list)
    # Batches per graph call. Default 32: ~2x faster epochs on small models with identical numbers
    # (tests/test_equivalence.py, benchmarks/RESULTS.md); batch-level callbacks then fire every 32 batches.
    # Under `distribute: mirrored` / `multi_worker` the default is 1 (Keras 3.15 fails with them and > 1).
    steps_per_execution: PositiveInt | None = None
    jit_compile: bool | Literal["auto"] = "auto"   # XLA compilation (auto: off on CPU and under distribution)
    # mixed_float16 / mixed_bfloat16: Keras's mixed precision policy (float32 weights, 16-bit math; the output is
    # kept float32; mixed_float16 also scales the loss, as Keras does); float32: none.
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"


class CheckpointConfig(_Strict):
    """`fit.checkpoint:` which logged value picks RUN/checkpoints/best.weights.h5."""

    monitor: str | None = None     # default: val_loss when there is validation data
    mode: Literal["auto", "min", "max"] = "auto"   # auto: max for accuracy-like names, else min
    # Seconds between writes of last/best.weights.h5 (each costs ~30 ms); 0: every epoch. The resumable
    # state (checkpoints/state.npz) is saved after every epoch regardless.
    interval: NonNegativeFloat = 10.0


class FitConfig(_Strict):
    """`fit:` the arguments of keras.Model.fit."""

    epochs: PositiveInt = 1                         # passes over the training data (Keras's fit default: 1)
    validation_freq: PositiveInt | list[PositiveInt] = 1   # validate every N epochs, or on these 1-based epochs
    callbacks: list[Spec] = Field(default_factory=list)   # keras.callbacks (or your own), e.g. EarlyStopping
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    # weigh each class's examples in the loss: `balanced` (n_examples / (n_classes * count of the class), counted
    # on the training split) or {class id: weight}; Keras's fit(class_weight=...)
    class_weight: Literal["balanced"] | dict[NonNegativeInt, NonNegativeFloat] | None = None


class SweepParam(_Strict):
    """One searched config key: `choices`, or a `low`..`high` range (ints if both are ints; `log` scale)."""

    choices: list[Any] | None = None
    low: int | float | None = None
    high: int | float | None = None
    log: bool = False   # sample on a log scale (learning rates)
    step: int | float | None = None   # a range's step (ints default to 1)

    @model_validator(mode="after")
    def _one_kind(self) -> SweepParam:
        if (self.choices is None) == (self.low is None and self.high is None):
            raise ValueError("give `choices: [...]` or a range `low: .., high: ..`")
        if self.choices is not None and not self.choices:
            raise ValueError("`choices` is empty: list at least one value")
        if self.choices is not None and not all(c is None or isinstance(c, (str, int, float, bool))
                                                for c in self.choices):
            raise ValueError("choices are numbers, strings, booleans or null (Optuna stores nothing else); to search "
                             "a list value, sweep each of its items as its own key")
        if self.choices is None and (self.low is None or self.high is None):
            raise ValueError("a range needs both `low` and `high`")
        for name in ("low", "high", "step"):   # -inf/nan would overflow Optuna's sampling and a grid's count
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"`{name}` must be a finite number, not {value}")
        if any(isinstance(c, float) and not math.isfinite(c) for c in self.choices or []):
            raise ValueError("choices must be finite numbers (a trial passes each as --set KEY=VALUE, where nan and "
                             "inf would be read as text)")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"`step` must be above 0, not {self.step:g}")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(f"the range is empty: low ({self.low:g}) must be below high ({self.high:g})")
        if self.log and self.low is not None and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self

    @property
    def is_int(self) -> bool:
        return self.choices is None and isinstance(self.low, int) and isinstance(self.high, int) and \
            (self.step is None or isinstance(self.step, int))


class SweepConfig(_Strict):
    """`sweep:` what `kcli sweep` searches (the keys are `--set` paths) and how (Optuna)."""

    name: str | None = Field(None, pattern=NAME_PATTERN, max_length=MAX_NAME)   # default: <config name>-sweep
    metric: str   # a logged value (loss, val_accuracy, ...); a trial's value is its best epoch
    direction: Literal["auto", "maximize", "minimize"] = "auto"   # auto: maximize accuracy-like names
    method: Literal["tpe", "random", "grid"] = "tpe"   # Optuna's TPESampler, RandomSampler or GridSampler
    trials: PositiveInt | None = None   # finished trials wanted (default 10; grid: every combination)
    parameters: dict[str, SweepParam] = Field(min_length=1)   # --set key -> choices or range
    storage: str | None = None   # an Optuna storage URL (default: sqlite in the sweep's folder)
    pruner: Literal["median", "none"] = "median"   # stop trials whose metric lags the median of earlier ones
    seed: int | None = Field(None, ge=0, le=2**32 - 1)   # the sampler's seed (default: the config's seed)


class MlflowConfig(_Strict):
    """`tracking.mlflow:` log the run to an MLflow tracking server (opt-in)."""

    uri: str   # the tracking server (http://host:5000) or a store URI MLflow accepts
    experiment: str | None = None   # default: the config's name


class TrackingConfig(_Strict):
    """`tracking:` experiment tracking; nothing is sent anywhere unless a tracker is configured here."""

    mlflow: MlflowConfig | None = None


class Config(_Strict):
    """A whole kcli config file."""

    # A run directory is named <name>-<timestamp> under --runs-dir: letters, digits, `.`, `_`, `-` only
    # (no `/`, `..`, NUL, ...), so a name can never place a run outside --runs-dir.
    name: str | None = Field(None, pattern=NAME_PATTERN, max_length=MAX_NAME)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)   # keras.utils.set_random_seed first (default: drawn, recorded)
    imports: list[str] = Field(default_factory=list)   # .py files (relative to this file) or modules with your classes
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig
    compile: CompileConfig
    fit: FitConfig = Field(default_factory=FitConfig)
    save: list[SaveFormat] | None = None   # model files to write (default: all; h5 not for a Model subclass)
    # mirrored: build, compile and fit under tf.distribute.MirroredStrategy (every local GPU, else the CPU);
    # multi_worker: MultiWorkerMirroredStrategy over the cluster in TF_CONFIG (or `kcli train --workers N`);
    # data.batch_size is the global batch, split over the replicas
    distribute: Literal["none", "mirrored", "multi_worker"] = "none"
    sweep: SweepConfig | None = None   # what `kcli sweep` searches; `kcli train` ignores it
    tracking: TrackingConfig | None = None   # opt-in: log params, per-epoch metrics and artifacts to MLflow

    @model_validator(mode="after")
    def _inputs_known(self) -> Config:
        model, data = self.model, self.data
        if model.inputs is not None or model.input_shape is not None:
            if data.source == "tfrecord":
                raise ValueError("source tfrecord: kcli builds the model's inputs from its features; leave out "
                                 "model.input_shape / model.inputs")
            given = [f"data.{k}" for k in ("columns", "missing", "sample_weight", "stream")
                     if getattr(data, k) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} go(es) with the inputs kcli builds from a table's columns: "
                                 "leave out model.input_shape / model.inputs (or drop them)")
            return self
        if data.source not in TABLES:
            raise ValueError("model: give `input_shape` (one input) or `inputs` (named inputs of a graph); only a "
                             "csv / parquet / tfrecord source lets kcli build the inputs from its columns")
        if model.class_ is not None:
            raise ValueError("model.class: a Model class takes `input_shape`; kcli builds the inputs of columns "
                             "for `layers` or `graph`")
        if data.labels is not None:
            raise ValueError("data.labels (several outputs) reads the inputs from model.inputs; give "
                             "`model.inputs` with their columns")
        if data.scale is not None:
            raise ValueError("data.scale: kcli standardizes the number columns in the model (Normalization); "
                             "drop scale, or set data.columns.<name>.normalize: false")
        return self

    @property
    def tabular(self) -> bool:
        """The model's inputs are the columns of a csv / parquet table (model.input_shape left out)."""
        return self.model.input_shape is None and self.model.inputs is None


@dataclass
class LoadedConfig:
    """A validated config plus where it came from (for paths and error locations)."""

    config: Config
    path: Path
    origins: dict[str, Origin] = field(default_factory=dict)   # key path -> (file, line) that set it
    overrides: list[str] = field(default_factory=list)   # the --set KEY=VALUE strings applied
    set_keys: dict[str, str] = field(default_factory=dict)  # key path -> the --set text that changed it
    raw: dict[str, Any] = field(default_factory=dict)    # the composed YAML with --set applied, as validated

    def locate(self, err: KcliError) -> KcliError:
        """Point an error at the --set that changed its key, or else at the file and line that set it."""
        return _locate(err, self.path, self.origins, self.set_keys)

    @property
    def base_dir(self) -> Path:
        """The folder that relative paths in the config are relative to."""
        return self.path.parent


def _locate(err: KcliError, path: Path, origins: dict[str, Origin], set_keys: dict[str, str]) -> KcliError:
    err = blame_override(err, set_keys)
    if err.file is None and err.key:
        found = origin_of(err.key, origins)
        if found is not None:
            err.file, err.line = found
    return err.located(path)


def load(path: Path, overrides: list[str] | None = None) -> LoadedConfig:
    """Read, compose (`extends`), parse and validate a config file, with `--set KEY=VALUE` overrides applied
    last."""
    raw, origins = compose(path)
    overrides = list(overrides or [])
    set_keys = apply_overrides(raw, overrides)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        # The deepest error is the most specific one (a union reports each branch separately).
        err = _translate(max(exc.errors(), key=lambda e: len(e["loc"])), raw)
        raise _locate(err, path, origins, set_keys) from None
    return LoadedConfig(config=config, path=path, origins=origins, overrides=overrides, set_keys=set_keys,
                        raw=raw)


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    """' (did you mean 'units'?)' when a close match exists, else ''."""
    choices = list(choices)
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not match:
        lowered = {c.lower(): c for c in choices}
        match = [lowered[word.lower()]] if word.lower() in lowered else []
    return f" (did you mean {match[0]!r}?)" if match else ""


def _translate(error: dict[str, Any], raw: Any = None) -> ConfigError:
    """One pydantic error -> one ConfigError naming the key path."""
    loc = _config_loc(tuple(error["loc"]), raw)
    kind = error["type"]
    if kind == "extra_forbidden":
        parent, key = loc[:-1], str(loc[-1])
        known = _fields_at(parent)
        where = key_path(parent) or "top level"
        return ConfigError(f"unknown key {key!r} in {where}{did_you_mean(key, known)}", key=key_path(loc))
    if kind == "missing":
        return ConfigError("required key is missing", key=key_path(loc))
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "string_pattern_mismatch" and loc == ("name",):
        message = ("a run name holds only letters, digits, '.', '_' and '-', and starts with a letter or digit "
                   "(it names a folder under --runs-dir)")
    if kind.startswith(("int_", "float_", "bool_", "string_", "list_", "dict_", "literal_", "greater", "less")):
        shown = repr(error.get("input"))
        message += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    return ConfigError(message, key=key_path(loc) or None)


def _config_loc(loc: tuple[Any, ...], raw: Any) -> tuple[Any, ...]:
    """A pydantic `loc` without its union tags: a part that is a key of the config at that place is a key (a
    user's key may look like a tag: 'x[red]'); any other part that looks like a tag is one."""
    out: list[Any] = []
    node = raw
    for part in loc:
        here = isinstance(node, dict) and part in node or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node))
        if here:
            node = node[part]
        elif _is_union_tag(part):
            continue
        else:
            node = None   # past what the raw config shows (a validator reshaped it): keep what pydantic says
        out.append(part)
    return tuple(out)


def _is_union_tag(part: Any) -> bool:
    """pydantic names union members in `loc` ('int', 'list[constrained-int]', 'function-before[...]')."""
    return isinstance(part, str) and (part in {"int", "bool", "str", "float"} or any(c in part for c in "[-"))


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys a config mapping at `loc` accepts (for did-you-mean on unknown keys)."""
    model: Any = Config
    for part in loc:
        if isinstance(part, int):
            continue
        fld = model.model_fields.get(part) or next(
            (f for f in model.model_fields.values() if f.alias == part), None)
        if fld is None:
            return []
        model = _model_in(fld.annotation)
        if model is None:
            return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def origins(loaded: LoadedConfig, cfg: Config) -> list[tuple[str, Any, str]]:
    """Every leaf value of a resolved config with where it came from (see compose.describe_origin)."""
    flat = flatten(cfg.model_dump(mode="json", by_alias=True, exclude_none=True))
    return [(key, value, describe_origin(key, loaded.raw, loaded.origins, loaded.set_keys))
            for key, value in flat.items()]


def differences(mine: Config, theirs: Config) -> dict[str, tuple[Any, Any]]:
    """Key path -> (theirs, mine) for every leaf value that differs between two resolved configs."""
    a = flatten(theirs.model_dump(mode="json", by_alias=True, exclude_none=True))
    b = flatten(mine.model_dump(mode="json", by_alias=True, exclude_none=True))
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings and lists -> {`a.b[0].c`: leaf value}."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, join_key(prefix, k)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def mapping(cfg: Config) -> dict[str, Any]:
    """The config as the mapping its YAML holds (aliases such as `class`, no unset values)."""
    return cfg.model_dump(mode="json", by_alias=True, exclude_none=True)


def dump(cfg: Config) -> str:
    """The config as YAML, in the same language the user writes."""
    data = mapping(cfg)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
