"""Before a run directory exists: load the config, the user's code and the data; build, compile and warm-start the
model; check that they fit together. Every user mistake is found here, so a refused run leaves nothing behind."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from kcli import events
from kcli.config import loading as config_mod
from kcli.config import model_io as ports_mod
from kcli.config import resolve as resolve_mod
from kcli.config.code import CodeLock, Registry, load_imports
from kcli.config.loading import LoadedConfig
from kcli.config.models import Config
from kcli.data import column_stats, labels
from kcli.data.checks import check_features
from kcli.data.load import load
from kcli.data.python_source import Stream
from kcli.data.splits import Splits
from kcli.data.stream_shard import Shard
from kcli.distributed import cluster as cluster_mod
from kcli.distributed import strategy as distribute
from kcli.errors import ConfigError, KcliError
from kcli.model import build as model_mod
from kcli.model import compile as compile_mod
from kcli.model import outputs as outputs_mod
from kcli.model import preprocess, warmstart
from kcli.model import table_inputs as tabular
from kcli.run import find
from kcli.training import callbacks as callbacks_mod
from kcli.training import tracking

STREAM_CACHE = ".stream-cache"


@dataclass
class Prepared:
    """Everything checked and built before a run directory is created."""

    loaded: LoadedConfig
    cfg: Config
    registry: Registry
    splits: Splits | None
    model: keras.Model
    warm: list[warmstart.Outcome] = field(default_factory=list)   # what model.init_from loaded, layer by layer


def prepare(path: Path, overrides: list[str] | None = None, with_data: bool = True,
            warm: bool = True, runs_dir: Path = Path("runs"), stream_cache: Path | None = None,
            lock: CodeLock | None = None, listener: events.Listener = events.ignore) -> Prepared:
    """Load the config, the user's imports and the data; build and compile the model (warm-started from
    model.init_from unless `warm` is off: a resumed run has its own state); check they fit. `lock`: a run's
    config (resume) loads only that run's own code. `listener` hears a multi-worker cluster that never comes up."""
    loaded = config_mod.load(path, overrides)
    splits: Splits | None = None
    with loaded.located():   # every mistake below names the file and line (or --set) of its key
        try:
            cfg = resolve_mod.resolve(loaded, latest=lambda name: find.latest_named(runs_dir, name, "model.init_from"))
            if with_data:
                _check_cluster(cfg)
            registry = load_imports(cfg.imports, lock)
            keras.backend.clear_session()  # fresh layer names (sequential/dense/...) as in a new process
            keras.utils.set_random_seed(cfg.seed)  # before anything random, as a hand-written script does
            if cfg.distribute == "multi_worker":   # before any TensorFlow op (a tf.data source makes some):
                distribute.strategy(cfg.distribute, distribute.LIMITS, listener)   # collectives are set at start-up
            splits = _data(cfg, registry, with_data, stream_cache)
            model = _model(cfg, registry, splits)
            _scale_hint(cfg, splits, model)
            outcomes = (warmstart.warm_start(model, cfg.model.init_from, cfg.model.skip_mismatch, registry.classes)
                        if warm and cfg.model.init_from else [])
            _check(cfg, registry, splits, model)
        except KcliError:
            if splits is not None and splits.cache is not None:   # a mistake found after a streamed table was read
                splits.cache.close()
            raise
    return Prepared(loaded, cfg, registry, splits, model, outcomes)


def _data(cfg: Config, registry: Registry, with_data: bool, stream_cache: Path | None) -> Splits | None:
    """The data splits (None without data), checked against the model's inputs; inferred counts recorded."""
    ports = ports_mod.of(cfg.model, cfg.data)
    # the inputs of a table's columns are known once its columns are read (or all declared)
    with_data = with_data or (ports.tabular and not ports.inputs)
    # a streamed table keeps its rows as read in `stream_cache` (training: RUNS/.stream-cache) while it trains
    splits = load(cfg.data, cfg.seed, ports, registry, stream_cache, _shard(cfg)) if with_data else None
    ports = ports_mod.of(cfg.model, cfg.data)
    if splits is not None and cfg.distribute == "multi_worker" and not isinstance(splits.train, Stream):
        uneven = distribute.uneven_batches(len(splits.train), cfg.data.batch_size, distribute.replicas())
        if uneven:
            splits.notes.append(uneven)
    if splits is not None:
        check_features(splits, ports)
        if cfg.data.one_hot is True:
            cfg.data.one_hot = splits.classes  # record the inferred count: evaluate/predict reuse it
        if cfg.fit.class_weight == "balanced":   # recorded as the weights it counted
            cfg.fit.class_weight = labels.balanced_class_weight(splits.train)
    return splits


def _shard(cfg: Config) -> Shard | None:
    """This worker's place in a cluster of several (a streamed table is split among them), else None."""
    cluster = distribute.cluster_of(cfg.distribute)
    if cluster is None or cluster.workers < 2:
        return None
    return Shard(cluster.rank, cluster.workers, distribute.replicas())


def _model(cfg: Config, registry: Registry, splits: Splits | None) -> keras.Model:
    """The compiled model, its preprocessing layers adapted to the training split."""
    ports = ports_mod.of(cfg.model, cfg.data)
    with distribute.scope(cfg.distribute):   # variables are created distributed
        model = model_mod.build(cfg, registry)
        compile_mod.compile_model(model, cfg.compile, registry)
    if splits is not None:   # Normalization layers learn mean and variance from the training split only
        with distribute.scope(cfg.distribute):
            done = (tabular.adapt(model, splits.train, cfg.data.columns, ports, splits.column_stats)
                    if ports.tabular else ())
            preprocess.adapt(model, splits.train, ports, done, _streamed_moments(cfg, splits))
    return model


def _streamed_moments(cfg: Config, splits: Splits) -> tuple[np.ndarray, np.ndarray] | None:
    """A streamed table's number columns as model.input_shape's one input: their mean and variance (scaled as fed)
    from the pass before training, so that a Normalization need not read the stream again."""
    train = splits.train
    if not isinstance(train, Stream) or not train.columns or splits.column_stats is None:
        return None
    moments = np.array([splits.column_stats[name].filled_moments(0.0) for name in train.columns], np.float64)
    scale = cfg.data.scale if cfg.data.scale is not None else 1.0
    return moments[:, 0] * scale, moments[:, 1] * scale * scale


def _scale_hint(cfg: Config, splits: Splits | None, model: keras.Model) -> None:
    """A table's number columns of very different scales fed as they are (model.input_shape, no Normalization):
    a note (a warning, kept in run.json) saying how to standardize them."""
    if splits is None or not splits.spreads or preprocess.standardizes(model):
        return
    hint = column_stats.scales_apart(splits.spreads, cfg.data.path or "data.path")
    if hint is not None:
        splits.notes.append(hint)


def _check(cfg: Config, registry: Registry, splits: Splits | None, model: keras.Model) -> None:
    """Callbacks, tracking, labels and monitors against the built model (before a run directory exists)."""
    callbacks_mod.check(cfg, registry)
    tracking.check(cfg)
    if splits is not None:
        outputs_mod.check_labels(splits, model, model.loss, ports_mod.of(cfg.model, cfg.data))
        callbacks_mod.check_monitors(cfg, registry, compile_mod.metric_names(cfg.compile, registry),
                                     splits.validation is not None)


def _check_cluster(cfg: Config) -> None:
    """A TF_CONFIG cluster of several workers trains only under `distribute: multi_worker` (else every worker
    would train alone and write its own run)."""
    cluster = cluster_mod.from_env()
    if cluster is not None and cluster.workers > 1 and cfg.distribute != "multi_worker":
        raise ConfigError(f"TF_CONFIG describes a cluster of {cluster.workers} workers, but distribute is "
                          f"{cfg.distribute}: set distribute: multi_worker (or unset TF_CONFIG to train in this "
                          "process alone)", key="distribute")


def one_batch(prep: Prepared) -> None:
    """--fast-dev-run: one epoch over the first batch of every split, validated."""
    assert prep.splits is not None
    rows = np.arange(prep.cfg.data.batch_size)
    for name in ("train", "validation", "test"):
        arrays = getattr(prep.splits, name)
        if isinstance(arrays, Stream):
            setattr(prep.splits, name, arrays.take_first())
        elif arrays is not None:
            setattr(prep.splits, name, arrays.take(rows[:len(arrays)]))
    prep.cfg.fit.epochs, prep.cfg.fit.validation_freq = 1, 1
