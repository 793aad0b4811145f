"""The config's schema: pydantic models of every section. Every structural mistake in a config file is caught here.

The schema validates structure only; a layer's own arguments are checked by Keras (see model/build.py). The
comment beside each field is its description in the JSON Schema (schema.py reads them).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    model_serializer,
    model_validator,
)

from kcli.config.source_rules import TABLES, check_data

SaveFormat = Literal["keras", "h5", "weights", "savedmodel"]
ALL_SAVE_FORMATS: tuple[str, ...] = ("keras", "h5", "weights", "savedmodel")
DataSource = Literal["builtin", "keras", "npz", "csv", "parquet", "tfrecord", "synthetic", "python", "images"]
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


MissingPolicy = Literal["error", "fill", "indicator"]
MAX_SEQUENCE_LENGTH = 100_000   # text int: 100k ids x 32 rows x (8 B id + a 16-float embedding) = 230 MB a batch


class ColumnConfig(_Strict):
    """`data.columns.<name>:` how one feature column of a CSV / Parquet table enters the model. Every field left
    out is inferred from the training split and recorded in the run's config.yaml."""

    # number: standardized (a Normalization adapted on the training split); category: a StringLookup (text) or
    # IntegerLookup (whole numbers) with one-hot or an embedding; text: a TextVectorization adapted on the
    # training split (a bag of words, or token ids into an Embedding and `layers`); ignore: not a feature.
    # Default: numbers -> number, free text (kcli.data.column_stats.looks_like_text) -> text, other text -> category
    kind: Literal["number", "category", "text", "ignore"] | None = None
    normalize: bool | None = None    # number: standardize (default true)
    # category: one_hot (default up to 50 values) or embedding (default above 50 values)
    encoding: Literal["one_hot", "embedding"] | None = None
    # category embedding: its width (default min(50, round(1.6 * values ** 0.56))); text int: the Embedding's (16)
    dim: PositiveInt | None = None
    # empty cells (and NaN): error (default), fill (numbers: `fill`, default the training mean; text: a
    # category of its own; whole-number categories: -1), indicator (fill, plus a 0/1 "was missing" feature)
    missing: MissingPolicy | None = None
    fill: float | None = None        # number, missing fill/indicator: the value (default: the training mean)
    # category: the values (default: those of the training split); text: the adapted tokens, most frequent
    # first, without the padding and OOV tokens (recorded)
    vocabulary: list[str] | list[int] | None = None
    # text: TextVectorization's arguments, as Keras names them (empty text is valid: no tokens)
    output_mode: Literal["int", "multi_hot", "count", "tf_idf"] | None = None   # text: default multi_hot (bag of words)
    max_tokens: PositiveInt | None = None      # text: the vocabulary's size at most (20000, reserved tokens included)
    sequence_length: PositiveInt | None = None   # text int: token ids per row, padded or cut (200)
    ngrams: PositiveInt | None = None          # text: also n-grams up to this n (default: words only)
    # text: before splitting (default lower_and_strip_punctuation)
    standardize: Literal["lower_and_strip_punctuation", "lower", "strip_punctuation", "none"] | None = None
    split: Literal["whitespace", "character", "none"] | None = None   # text: tokens (default whitespace)
    # text int: the layers after the Embedding, as in model.layers; they must end in one vector per row
    # (default [GlobalAveragePooling1D])
    layers: list[Spec] | None = None
    idf_weights: list[float] | None = None     # text tf_idf: the adapted inverse document frequencies (recorded)

    @model_validator(mode="after")
    def _fits_kind(self) -> ColumnConfig:
        text = ("output_mode", "max_tokens", "sequence_length", "ngrams", "standardize", "split", "layers",
                "idf_weights")
        wrong = {"number": ("encoding", "dim", "vocabulary", *text), "category": ("normalize", "fill", *text),
                 "text": ("normalize", "encoding", "missing", "fill"),
                 "ignore": ("normalize", "encoding", "dim", "missing", "fill", "vocabulary", *text)
                 }.get(self.kind or "", ())
        if self.kind == "text" and (self.output_mode or "multi_hot") != "int":
            wrong = (*wrong, "sequence_length", "dim", "layers")
        if self.kind == "text" and self.output_mode != "tf_idf":
            wrong = (*wrong, "idf_weights")
        given = [k for k in wrong if getattr(self, k) is not None]
        if given:
            what = f"output_mode {self.output_mode or 'multi_hot'}" if self.kind == "text" and \
                all(k in ("sequence_length", "dim", "layers", "idf_weights") for k in given) else f"kind {self.kind}"
            raise ValueError(f"{', '.join(given)}: not used by a column of {what}")
        if self.dim is not None and self.encoding == "one_hot":
            raise ValueError("`dim` is the width of an embedding: set encoding: embedding (or drop dim)")
        self._text_sizes()
        if self.kind == "text":
            self._text_recorded()
        return self

    def _text_recorded(self) -> None:
        """A hand-edited vocabulary / idf_weights as TextVectorization takes them (else Keras fails mid-build)."""
        words = self.vocabulary
        if words is not None and (not words or not all(isinstance(w, str) and w for w in words)):
            raise ValueError("vocabulary: a text column's tokens are non-empty strings (leave it out to learn it)")
        if words is not None and len(set(words)) < len(words):
            raise ValueError("vocabulary: a token is listed twice")
        if self.idf_weights is not None and len(self.idf_weights) != len(words or ()):
            raise ValueError(f"idf_weights: one per vocabulary token ({len(words or ())}), not {len(self.idf_weights)}")
        if self.output_mode == "tf_idf" and words is not None and self.idf_weights is None:
            raise ValueError("idf_weights: output_mode tf_idf with a vocabulary needs them too (or leave out both)")

    def _text_sizes(self) -> None:
        """max_tokens leaves room for a word; sequence_length fits a batch in memory (else Keras fails mid-run)."""
        reserved = ("padding and OOV", 2) if self.output_mode == "int" else ("OOV", 1)
        if self.max_tokens is not None and self.max_tokens <= reserved[1]:
            raise ValueError(f"max_tokens {self.max_tokens} counts the reserved {reserved[0]} token(s) and leaves "
                             f"no room for a word: give at least {reserved[1] + 1}")
        if self.sequence_length is not None and self.sequence_length > MAX_SEQUENCE_LENGTH:
            raise ValueError(f"sequence_length {self.sequence_length}: token ids per row, at most "
                             f"{MAX_SEQUENCE_LENGTH} (a batch of such rows would not fit in memory)")


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
    # csv / parquet columns (path: a file, a folder or a glob): read in blocks during training instead of whole,
    # with model.input_shape too (the number columns as one matrix); auto (default) streams files larger than
    # 512 MiB (or a quarter of the available memory)
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
    # validation_split / test_split hold out that share of every class (seeded, rows keep file order), for
    # class-imbalanced data; needs one class label per row in memory (not a regression, a stream or python)
    stratify: bool = False
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
        check_data(self)
        return self


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
    # (tests/training/test_equivalence.py, benchmarks/RESULTS.md); batch-level callbacks then fire every 32 batches.
    # Under `distribute: mirrored` it is 1 (Keras 3.15 fails with it and > 1); multi_worker keeps 32 (fewer calls,
    # less memory kept by TensorFlow per call: distributed/multiworker_fix.py).
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
            # data.stream: one input_shape reads a csv / parquet table's number columns as one matrix, streamed
            # like a table of columns; named model.inputs are read whole
            table_keys = ("columns", "missing", "sample_weight") + (("stream",) if model.inputs is not None else ())
            given = [f"data.{k}" for k in table_keys if getattr(data, k) is not None]
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
