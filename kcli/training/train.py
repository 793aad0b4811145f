"""`kcli train`, `kcli summary` and `kcli validate`: the only place that drives training."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kcli import data as data_mod
from kcli.config import model_io as ports_mod
from kcli.config import models as config_mod
from kcli.config import resolve as resolve_mod
from kcli.config.code import CodeLock, Registry, load_imports
from kcli.config.models import Config, LoadedConfig
from kcli.data import Splits, pipeline
from kcli.data import stream as stream_mod
from kcli.data.python_source import Stream
from kcli.distributed import cluster as cluster_mod
from kcli.distributed import strategy as distribute
from kcli.distributed import workers
from kcli.errors import (
    ConfigError,
    DataError,
    ExportFailed,
    Interrupted,
    KcliError,
    RunError,
    TrainingFailed,
    WorkerLost,
)
from kcli.model import build as model_mod
from kcli.model import compile as compile_mod
from kcli.model import outputs as outputs_mod
from kcli.model import preprocess, warmstart
from kcli.model import summary as summary_mod
from kcli.model import table_inputs as tabular
from kcli.output.display import Display
from kcli.run import artifacts, pictures, trust, verify
from kcli.run import folder as runs
from kcli.training import callbacks as callbacks_mod
from kcli.training import state, tracking
from kcli.training import sweep_trial as trial_mod


@dataclass
class Prepared:
    """Everything checked and built before a run directory is created."""

    loaded: LoadedConfig
    cfg: Config
    registry: Registry
    splits: Splits | None
    model: keras.Model
    warm: list[warmstart.Outcome] = field(default_factory=list)   # what model.init_from loaded, layer by layer


@dataclass
class Start:
    """Where training begins: epoch 0 of a new run, or the saved state of an interrupted one."""

    run_dir: Path
    record: runs.RunRecord
    epoch: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] | None = None


STREAM_CACHE = ".stream-cache"


def prepare(path: Path, overrides: list[str] | None = None, with_data: bool = True,
            warm: bool = True, runs_dir: Path = Path("runs"), stream_cache: Path | None = None,
            lock: CodeLock | None = None) -> Prepared:
    """Load the config, the user's imports and the data; build and compile the model (warm-started from
    model.init_from unless `warm` is off: a resumed run has its own state); check they fit. `lock`: a run's
    config (resume) loads only that run's own code."""
    loaded = config_mod.load(path, overrides)
    splits: Splits | None = None
    try:
        cfg = resolve_mod.resolve(loaded)
        init = cfg.model.init_from
        if init is not None and init.startswith(resolve_mod.LATEST_RUN):   # recorded as the run it found
            found = runs.latest_named(runs_dir, init.removeprefix(resolve_mod.LATEST_RUN), "model.init_from")
            cfg.model.init_from = str(found.resolve())
        if with_data:
            _check_cluster(cfg)
        registry = load_imports(cfg.imports, lock)
        ports = ports_mod.of(cfg.model, cfg.data)
        keras.backend.clear_session()  # fresh layer names (sequential/dense/...) as in a new process
        keras.utils.set_random_seed(cfg.seed)  # before anything random, as a hand-written script does
        if cfg.distribute == "multi_worker":   # before any TensorFlow op (a tf.data source makes some):
            distribute.strategy(cfg.distribute, distribute.LIMITS)   # collectives are configured at start-up
        # the inputs of a table's columns are known once its columns are read (or all declared)
        with_data = with_data or (ports.tabular and not ports.inputs)
        # a streamed table keeps its rows as read in `stream_cache` (training: RUNS/.stream-cache) while it trains
        splits = data_mod.load(cfg.data, cfg.seed, ports, registry, stream_cache) if with_data else None
        ports = ports_mod.of(cfg.model, cfg.data)
        if splits is not None and cfg.distribute == "multi_worker" and getattr(splits.train, "epoch_setter", None):
            raise ConfigError("a streamed table is not split across workers yet (each would read every file): "
                              "set data.stream: false to read it whole, or train in one process", key="data.stream")
        if splits is not None and cfg.distribute == "multi_worker" and not isinstance(splits.train, Stream):
            uneven = distribute.uneven_batches(len(splits.train), cfg.data.batch_size, distribute.replicas())
            if uneven:
                splits.notes.append(uneven)
        if splits is not None:
            data_mod.check_features(splits, ports)
            if cfg.data.one_hot is True:
                cfg.data.one_hot = splits.classes  # record the inferred count: evaluate/predict reuse it
            if cfg.fit.class_weight == "balanced":   # recorded as the weights it counted
                cfg.fit.class_weight = data_mod.balanced_class_weight(splits.train)
        with _strategy_scope(cfg):
            model = model_mod.build(cfg, registry)
            compile_mod.compile_model(model, cfg.compile, registry)
        if splits is not None:   # Normalization layers learn mean and variance from the training split only
            with _strategy_scope(cfg):
                done = (tabular.adapt(model, splits.train, cfg.data.columns, ports, splits.column_stats)
                        if ports.tabular else ())
                preprocess.adapt(model, splits.train, ports, done)
        outcomes = (warmstart.warm_start(model, cfg.model.init_from, cfg.model.skip_mismatch, registry.classes)
                    if warm and cfg.model.init_from else [])
        callbacks_mod.check(cfg, registry)
        tracking.check(cfg)
        if splits is not None:
            outputs_mod.check_labels(splits, model, model.loss, ports)
            callbacks_mod.check_monitors(cfg, registry, compile_mod.metric_names(cfg.compile, registry),
                                         splits.validation is not None)
    except KcliError as exc:
        if splits is not None and splits.cache is not None:   # a mistake found after a streamed table was read
            splits.cache.close()
        raise loaded.locate(exc) from None
    return Prepared(loaded, cfg, registry, splits, model, outcomes)


def _check_cluster(cfg: Config) -> None:
    """A TF_CONFIG cluster of several workers trains only under `distribute: multi_worker` (else every worker
    would train alone and write its own run)."""
    cluster = cluster_mod.from_env()
    if cluster is not None and cluster.workers > 1 and cfg.distribute != "multi_worker":
        raise ConfigError(f"TF_CONFIG describes a cluster of {cluster.workers} workers, but distribute is "
                          f"{cfg.distribute}: set distribute: multi_worker (or unset TF_CONFIG to train in this "
                          "process alone)", key="distribute")


def _one_batch(prep: Prepared) -> None:
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


def _strategy_scope(cfg: Config) -> contextlib.AbstractContextManager[Any]:
    """The tf.distribute strategy's scope for `distribute` (variables are created distributed), else nothing."""
    return distribute.scope(cfg.distribute)


def summary(path: Path, display: Display, overrides: list[str] | None = None, plot: Path | None = None,
            runs_dir: Path = Path("runs")) -> None:
    """Build the model without data or training and show its summary and trainable variables (and draw it)."""
    if plot is not None:
        summary_mod.check_plot_tools(plot)
    prepared = prepare(path, overrides, with_data=False, runs_dir=runs_dir)
    display.summary(summary_mod.describe(prepared.model), variables=True)
    if plot is not None:
        summary_mod.plot_model(prepared.model, plot)
        display.note(f"written: {plot}")


def fast_dev_run(path: Path, display: Display, overrides: list[str] | None = None,
                 runs_dir: Path = Path("runs")) -> None:
    """One batch of train, validation and test through the whole of `kcli train` (every artifact written and
    verified) in a temporary runs directory that is removed: the check before a long run."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kcli-fast-dev-run-") as tmp:
        train(path, Path(tmp), display, overrides, one_batch=True, init_runs=runs_dir)
    display.note(f"fast dev run ok: one batch of each split, every artifact written and verified, nothing kept "
                 f"({time.perf_counter() - started:.1f} s)")


def train(path: Path | None, runs_dir: Path, display: Display, overrides: list[str] | None = None,
          resume: str | None = None, keep_best: bool = False, allow_data_change: bool = False,
          one_batch: bool = False, init_runs: Path | None = None, trust_code: bool = False) -> Path:
    """Train what the config describes and write a complete run directory; returns its path. `init_runs`: where
    `init_from: latest:NAME` looks (default: runs_dir). A worker of a cluster (TF_CONFIG) other than the chief
    trains alike but in a temporary directory that is removed: only the chief writes under runs_dir."""
    cluster = cluster_mod.from_env()
    if cluster is not None and cluster.workers > 1 and not cluster.is_chief:
        with tempfile.TemporaryDirectory(prefix="kcli-worker-") as tmp, distribute.removed_at_exit(Path(tmp)):
            if resume is not None:
                resume = str(_private_copy(runs.find_run(resume, runs_dir, "--resume", resumable=True), Path(tmp)))
            _train(path, Path(tmp), display, overrides, resume, keep_best, allow_data_change, one_batch,
                   init_runs or runs_dir, cluster, trust_code)
        display.note(f"{cluster.task} done; the chief writes the run directory")
        return runs_dir
    return _train(path, runs_dir, display, overrides, resume, keep_best, allow_data_change, one_batch, init_runs,
                  cluster, trust_code)


def _private_copy(run_dir: Path, tmp: Path) -> Path:
    """A worker's own copy of the run it resumes with the others (the chief alone writes the original)."""
    copy = tmp / run_dir.name
    # links stay links: followed, a code/ link (or a model.keras link) out of the run would pass as the run's own
    shutil.copytree(run_dir, copy, symlinks=True, ignore=shutil.ignore_patterns(".tmp-*"))
    record = runs.load_record(copy, "--resume")
    record["status"] = "interrupted"   # the chief has marked the original running by now
    runs.write_json(copy / runs.RUN_JSON, record)
    return copy


def _train(path: Path | None, runs_dir: Path, display: Display, overrides: list[str] | None, resume: str | None,
           keep_best: bool, allow_data_change: bool, one_batch: bool, init_runs: Path | None,
           cluster: cluster_mod.Cluster | None, trust_code: bool = False) -> Path:
    if resume is not None:
        prep, start = _resume(path, overrides, resume, runs_dir, allow_data_change, display, trust_code)
        tracking.reachable(prep.cfg)
    else:
        assert path is not None
        prep = prepare(path, overrides, runs_dir=init_runs or runs_dir, stream_cache=runs_dir / STREAM_CACHE)
        try:
            tracking.reachable(prep.cfg)
        except KcliError as exc:
            raise prep.loaded.locate(exc) from None
        if one_batch:
            _one_batch(prep)
        name = prep.cfg.name or path.stem
        run_dir = runs.new_run_dir(runs_dir, name)
        start = Start(run_dir, runs.RunRecord.start(run_dir, name, prep.cfg.seed or 0))
    cfg, splits, model = prep.cfg, prep.splits, prep.model
    _announce(start.run_dir)
    if cfg.distribute == "multi_worker":
        start.record.update(cluster=cluster.describe() if cluster else None,
                            strategy=distribute.devices(cfg.distribute))
    assert splits is not None
    description = summary_mod.describe(model)
    display.config(_short_config(cfg, splits))
    for note in splits.notes:
        display.warning(note)
    if splits.notes:
        start.record.update(data_notes=list(splits.notes))
    display.summary(description)
    if prep.warm:
        display.warm_start(cfg.model.init_from or "", prep.warm)
    run_dir, record = start.run_dir, start.record
    tracked: tracking.MlflowRun | None = None
    try:
        if resume is None:
            _write_run_files(prep, run_dir, record, display.summary_text(description), display)
        record.update(keep_best=keep_best)
        if cfg.tracking is not None and cfg.tracking.mlflow is not None:
            tracked = tracking.MlflowRun(cfg.tracking.mlflow, cfg, run_dir, record)
            display.note(f"tracking: MLflow run {tracked.run_id} at {tracking.masked(cfg.tracking.mlflow.uri)}")
        chief = cluster is None or cluster.workers <= 1 or cluster.is_chief
        if chief:
            pictures.warm_up()
        rows = _fit(model, prep, start, display, tracked)
        display.history(rows, runs.history_columns(rows, splits.validation is not None))
        if chief:
            pictures.history(rows, run_dir / pictures.HISTORY_PNG, f"{run_dir.name}")
        _finish_model(model, prep, run_dir, record, keep_best, display, chief)
    except KeyboardInterrupt:
        _close_tracking(tracked, "KILLED")
        with contextlib.suppress(OSError):   # a full disk: run.json keeps its last state
            record.finish("interrupted", error="interrupted by the user (Ctrl-C)")
        saved = state.saved_epoch(run_dir)
        if not saved:
            raise Interrupted("interrupted before the first epoch finished; nothing to resume") from None
        several = f" --workers {cluster.workers}" if cluster is not None and cluster.workers > 1 else ""
        raise Interrupted(f"interrupted; the state after epoch {saved} of {cfg.fit.epochs} is saved. "
                          f"Continue with: kcli train --resume {run_dir}{several}") from None
    except BaseException as exc:
        if cluster is not None and cluster.workers > 1 and distribute.lost_peer(exc):
            _close_tracking(tracked, "KILLED")
            raise _worker_lost(exc, run_dir, record, cfg, cluster) from None
        _close_tracking(tracked, "FAILED")
        with contextlib.suppress(OSError):   # a full disk: run.json keeps its last state
            record.finish("failed", error=f"{type(exc).__name__}: {exc}")
        display.run_dir(run_dir, "failed")
        raise
    finally:
        if splits.cache is not None:   # a streamed table's rows as read: not needed after training
            splits.cache.close()
    record.finish("completed")
    if tracked is not None:   # after run.json says completed, so that the uploaded copy says so too
        try:
            tracked.finish("FINISHED")
        except Exception as exc:  # the run itself is complete and verified; MLflow only lost its copy
            display.warning(f"MLflow did not take the run's files ({tracking.short(exc)}); the run is complete")
    if not one_batch:   # a fast dev run's directory is about to be removed
        display.run_dir(run_dir, "completed")
    return run_dir


def _announce(run_dir: Path) -> None:
    """Tell a `--workers` launcher where the run is (it marks the run interrupted should this process be killed)."""
    target = os.environ.get(workers.RUN_DIR_ENV)
    if target:
        with contextlib.suppress(OSError):
            Path(target).write_text(str(run_dir.resolve()))


def _worker_lost(exc: BaseException, run_dir: Path, record: runs.RunRecord, cfg: Config,
                 cluster: cluster_mod.Cluster) -> WorkerLost:
    """A peer of the cluster died or stopped answering: the run is interrupted, resumable by all workers."""
    reason = distribute.peer_reason(exc)
    with contextlib.suppress(OSError):
        record.finish("interrupted", error=f"a worker of the cluster was lost: {reason}")
    saved = state.saved_epoch(run_dir)
    if not cluster.is_chief:
        return WorkerLost(f"training stopped on {cluster.task}: a worker of the cluster was lost ({reason}); the "
                          "chief's run directory keeps the state of the last completed epoch")
    where = (f"the state after epoch {saved} of {cfg.fit.epochs} is saved. Continue with: kcli train --resume "
             f"{run_dir} --workers {cluster.workers} (or start every worker again with --resume)" if saved else
             "no epoch had finished; nothing to resume")
    return WorkerLost(f"training stopped on {cluster.task}: a worker of the cluster was lost ({reason}); {where}")


def _close_tracking(tracked: tracking.MlflowRun | None, status: str) -> None:
    """Tell MLflow how the run ended; an unreachable server must not hide the real error."""
    if tracked is not None:
        with contextlib.suppress(Exception):
            tracked.finish(status)


def _write_run_files(prep: Prepared, run_dir: Path, record: runs.RunRecord, summary_text: str,
                     display: Display) -> None:
    runs.write_text(run_dir / runs.CONFIG, config_mod.dump(prep.cfg))
    record.update(imports={"files": runs.copy_code(run_dir, prep.registry.sources), "modules": prep.registry.modules},
                  features=prep.splits.train.columns if prep.splits else None,  # CSV column names, for predict
                  classes=prep.splits.class_names if prep.splits else None,   # image folders: names by class id
                  data_files=data_mod.fingerprints(prep.cfg.data),   # resume and evaluate notice changed data
                  init_from={"source": prep.cfg.model.init_from, "layers": prep.warm} if prep.warm else None,
                  overrides=prep.loaded.overrides)
    runs.write_text(run_dir / runs.SUMMARY, summary_text)
    problem = trust.remember([run_dir / f for f in record.data["imports"]["files"]], prep.registry.modules)
    if problem:
        display.warning(problem)


def _resume(path: Path | None, overrides: list[str] | None, ref: str, runs_dir: Path, allow_data_change: bool,
            display: Display, trust_code: bool = False) -> tuple[Prepared, Start]:
    """Rebuild the run's model from its saved config and load the state of its last completed epoch."""
    run_dir = runs.find_run(ref, runs_dir, "--resume", resumable=True)
    record = state.resumable_record(run_dir)
    if path is not None or overrides:
        _same_config(path or run_dir / runs.CONFIG, overrides, config_mod.load(run_dir / runs.CONFIG).config)
    changed = data_mod.changed_files(record.get("data_files") or {})
    if changed and not allow_data_change:
        raise RunError(f"the data changed since this run started: {', '.join(changed)}; continuing would train "
                       "on other data. Restore the files, or pass --allow-data-change to continue on the new "
                       "contents", key="--resume")
    # the run's config.yaml is data like any run file: it runs the run's own trusted code/, nothing it names else
    saved = config_mod.mapping(config_mod.load(run_dir / runs.CONFIG).config)
    lock = trust.run_lock(run_dir, record, trust_code, saved)
    prep = prepare(run_dir / runs.CONFIG, warm=False, stream_cache=run_dir.parent / STREAM_CACHE, lock=lock)
    if changed:
        display.warning(f"continuing on changed data: {', '.join(changed)} (--allow-data-change)")
        record["data_files"] = data_mod.fingerprints(prep.cfg.data)
    with _strategy_scope(prep.cfg):   # the optimizer's variables are made here, distributed like the model's
        saved_state = state.load_state(run_dir, prep.model)   # before anything is removed: a refusal loses nothing
    state.remove_partial_files(run_dir)
    artifacts.remove_final_artifacts(run_dir)   # written by a process that died before it could verify them
    epoch = int(saved_state["epoch"])
    rows = [r for r in runs.read_history(run_dir) if r.get("epoch", 0) <= epoch]
    return prep, Start(run_dir, runs.RunRecord.resume(run_dir, record, epoch), epoch, rows, saved_state)


def _same_config(path: Path, overrides: list[str] | None, saved: Config) -> None:
    """Refuse to resume with a config that differs from the run's (naming the keys that differ)."""
    loaded = config_mod.load(path, overrides)
    mine = resolve_mod.resolve(loaded)
    if loaded.config.seed is None:
        mine.seed = saved.seed
    if loaded.config.name is None:
        mine.name = saved.name
    if mine.data.one_hot is True and isinstance(saved.data.one_hot, int):
        mine.data.one_hot = saved.data.one_hot   # the saved config records the inferred class count
    if mine.fit.class_weight == "balanced" and isinstance(saved.fit.class_weight, dict):
        mine.fit.class_weight = saved.fit.class_weight   # ... and the counted class weights
    differ = config_mod.differences(mine, saved)
    if differ:
        shown = ", ".join(f"{k}: {theirs!r} -> {mine!r}" for k, (theirs, mine) in list(differ.items())[:6])
        raise RunError(f"the config differs from the run's saved config (run's -> yours: {shown}); resume "
                       "without CONFIG to use the run's own, or start a new run", key="--resume")


def _fit(model: keras.Model, prep: Prepared, start: Start, display: Display,
         tracked: tracking.MlflowRun | None = None) -> list[dict[str, Any]]:
    """model.fit with kcli's history recorder, checkpoints and progress display; returns one row per epoch."""
    cfg, splits, run_dir = prep.cfg, prep.splits, start.run_dir
    assert splits is not None
    if isinstance(splits.train, Stream):   # the user's own datasets, as they made them
        validation = splits.validation.dataset if isinstance(splits.validation, Stream) else None
        steps: int | None = splits.train.batches
        setter = splits.train.epoch_setter   # a streamed table's order depends on (seed, epoch)
        inputs = pipeline.FitInput(splits.train.dataset, callbacks=[setter.callback()] if setter else [])
    else:
        validation = pipeline.validation(splits.validation, cfg.data)
        steps = math.ceil(len(splits.train) / cfg.data.batch_size)
        inputs = pipeline.training(splits.train, cfg.data, cfg.seed or 0)
        if cfg.distribute == "multi_worker":   # in-memory data: every worker takes its share of each global batch
            inputs.x, validation = pipeline.shard_by_data(inputs.x), pipeline.shard_by_data(validation)
    times: list[float] = list(start.record.data.get("epoch_seconds", []))[:start.epoch]

    def on_epoch(rows: list[dict[str, Any]], seconds: float) -> None:
        runs.write_history(run_dir, rows, validation is not None)
        times.append(round(seconds, 4))
        start.record.update(epochs_completed=len(rows), epoch_seconds=times)

    user = callbacks_mod.build(cfg, prep.registry, run_dir)
    report = trial_mod.from_env()   # a sweep trial: the metric goes to Optuna, which may prune
    recorder = callbacks_mod.Recorder(list(start.rows), on_epoch, callbacks_mod.changes_learning_rate(user))
    monitor = cfg.fit.checkpoint.monitor or ("val_loss" if validation is not None else None)
    checkpointer = callbacks_mod.Checkpointer(run_dir, monitor, cfg.fit.checkpoint.mode, user,
                                               cfg.fit.checkpoint.interval, start.state)
    with (display.progress(cfg.fit.epochs, steps, start.epoch) as progress, _flushed(checkpointer),
          _stream_failures(prep, run_dir)):
        model.fit(inputs.x, inputs.y, batch_size=inputs.batch_size,
                  epochs=cfg.fit.epochs, initial_epoch=start.epoch, validation_data=validation,
                  validation_freq=cfg.fit.validation_freq, shuffle=inputs.shuffle, sample_weight=inputs.sample_weight,
                  class_weight=cfg.fit.class_weight if isinstance(cfg.fit.class_weight, dict) else None,
                  # the recorder after the user's callbacks: LR callbacks add `learning_rate` to the logs
                  callbacks=[*inputs.callbacks, *user, recorder, checkpointer,
                             callbacks_mod.ProgressBridge(progress), *([report] if report else []),
                             *([tracking.Tracker(tracked, recorder.rows)] if tracked else []),
                             *([callbacks_mod.ClusterUp()] if cfg.distribute == "multi_worker" else [])], verbose=0)
    if recorder.nan_at is not None:
        raise TrainingFailed(f"training failed: the loss became NaN in epoch {recorder.nan_at}; "
                             "lower the learning rate or check the data for NaN/inf values")
    start.record.update(best={"monitor": monitor, "value": checkpointer.best, "epoch": checkpointer.best_epoch})
    if report is not None and report.pruned_at is not None:
        start.record.update(pruned_at_epoch=report.pruned_at)
        display.note(f"pruned by the sweep after epoch {report.pruned_at}: its metric lags the other trials'")
    return recorder.rows


@contextlib.contextmanager
def _stream_failures(prep: Prepared, run_dir: Path) -> Iterator[None]:
    """A streamed file that vanished or changed during fit: its own one-line error (not tf.data's wrapping),
    and how to go on from the last saved epoch."""
    splits = prep.splits
    try:
        with stream_mod.reader_errors(*((splits.train, splits.validation, splits.test) if splits else ())):
            yield
    except DataError as exc:
        saved = state.saved_epoch(run_dir)
        then = f"; the state after epoch {saved} is saved: mend it, then kcli train --resume {run_dir}" if saved else ""
        raise prep.loaded.locate(DataError(f"{exc.message}{then}", key=exc.key)) from None


@contextlib.contextmanager
def _flushed(checkpointer: callbacks_mod.Checkpointer) -> Iterator[None]:
    """On Ctrl-C or an error inside fit, still write the last completed epoch's .weights.h5 files."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            checkpointer.flush()
        raise


def _finish_model(model: keras.Model, prep: Prepared, run_dir: Path, record: runs.RunRecord, keep_best: bool,
                  display: Display, chief: bool = True) -> None:
    """--keep-best, test metrics (every worker of a cluster takes part), final artifacts (the chief only)."""
    splits = prep.splits
    assert splits is not None
    best = run_dir / state.CHECKPOINTS / state.BEST_WEIGHTS
    if keep_best and best.is_file():
        model.load_weights(best)
        display.note(f"restored the best weights ({record.data['best']['monitor']} = "
                     f"{record.data['best']['value']:.4f} at epoch {record.data['best']['epoch']})")
    elif keep_best:
        display.note("--keep-best: nothing was monitored (no validation data and no fit.checkpoint.monitor); "
                     "keeping the last weights")
    if splits.test is not None:
        with _stream_failures(prep, run_dir):
            metrics = (outputs_mod.evaluate(model, splits.test.dataset, None, None) if isinstance(splits.test, Stream)
                       else outputs_mod.evaluate(model, splits.test.x, splits.test.y, prep.cfg.data.batch_size,
                                               splits.test.w))
        runs.write_json(run_dir / runs.METRICS, metrics)
        display.metrics("Test metrics", metrics)
    if not chief:
        return
    started = time.perf_counter()
    ports = ports_mod.of(prep.cfg.model, prep.cfg.data)
    written = artifacts.save_model(model, run_dir, list(prep.cfg.save or []), ports)
    saved = time.perf_counter()
    verified = _verify_artifacts(model, prep, run_dir, written, display)
    record.update(artifacts=written, verified=verified, save_seconds=round(saved - started, 3),
                  verify_seconds=round(time.perf_counter() - saved, 3))


def _verify_artifacts(model: keras.Model, prep: Prepared, run_dir: Path, written: dict[str, str],
                      display: Display) -> dict[str, str]:
    """Load every artifact back with its own runtime and compare its outputs with the live model's on real
    rows; a run is only "completed" when they agree (or, for a .keras/.h5 that Keras cannot deserialize, when
    the weights can stand in for it)."""
    splits = prep.splits
    assert splits is not None
    real = next(a.x for a in (splits.test, splits.validation, splits.train) if a is not None)
    x = verify.samples(ports_mod.of(prep.cfg.model, prep.cfg.data), real)
    expected = verify.reference(model, x)
    custom = prep.registry.classes
    compute = verify.compute_dtype(model)
    report: dict[str, str] = {}
    for fmt, name in written.items():
        try:
            diff = verify.check(fmt, run_dir / name, x, expected, custom,
                                lambda: model_mod.rebuild(prep.cfg, prep.registry), compute)
        except verify.NotReloadable as exc:
            fallback = ("kcli evaluate/predict/export rebuild the model from config.yaml, code/ and "
                        "model.weights.h5 instead" if "weights" in written else
                        "and `save` has no weights to rebuild it from: add weights to `save`")
            hint = verify.not_reloadable_hint(model, custom)
            display.warning(f"{name} cannot be reloaded by Keras ({exc}). Fix {hint}; {fallback}")
            report[fmt] = f"not reloadable: {exc}"
            continue
        except ExportFailed as exc:
            raise TrainingFailed(f"a saved artifact does not reproduce the trained model: {exc}") from None
        report[fmt] = f"ok: outputs within {diff:.1g} on {ports_mod.rows(x)} rows"
    return report


def _short_config(cfg: Config, splits: Splits) -> list[tuple[str, str]]:
    sizes = ", ".join(f"{name} {a.size() if isinstance(a, Stream) else len(a)}"
                      for name, a in (("train", splits.train), ("validation", splits.validation), ("test", splits.test))
                      if a is not None)
    source = (cfg.data.name if cfg.data.source in ("builtin", "keras") else
              cfg.data.function if cfg.data.source == "python" else (cfg.data.path or cfg.data.source))
    model = (f"{len(cfg.model.layers)} layers" if cfg.model.layers is not None else
             f"graph of {len(cfg.model.graph)} nodes" if cfg.model.graph is not None else f"class {cfg.model.class_}")
    ports = ports_mod.of(cfg.model, cfg.data)
    inputs = (", ".join(f"{p.name} {list(p.shape)}" for p in ports.inputs) if ports.named else
              f"input_shape {list(ports.single_shape)}")
    return [
        ("run", f"{cfg.name}  (seed {cfg.seed})"),
        ("devices", distribute.devices(cfg.distribute)),
        ("data", f"{cfg.data.source}: {source}  [{sizes}]"
                 + (f"  batch {cfg.data.batch_size}" if cfg.data.source != "python" else "")),
        ("model", f"{model}, {inputs}" + (f", outputs {', '.join(ports.outputs)}" if ports.outputs else "")),
        ("compile", f"optimizer {_spec(cfg.compile.optimizer)}, loss {_spec(cfg.compile.loss)}, "
                    f"metrics {_spec(cfg.compile.metrics)}"),
        ("fit", f"epochs {cfg.fit.epochs}, validation_freq {cfg.fit.validation_freq}"
                + (f", callbacks {[_spec(c) for c in cfg.fit.callbacks]}" if cfg.fit.callbacks else "")),
    ]


def _spec(spec: Any) -> str:
    """A Spec as `Name(arg=value)`; per-output specs as `{out: ...}`, lists as `[...]`."""
    if isinstance(spec, dict):
        return "{" + ", ".join(f"{k}: {_spec(v)}" for k, v in spec.items()) + "}"
    if isinstance(spec, list):
        return "[" + ", ".join(_spec(s) for s in spec) + "]"
    return spec.name if not spec.args else f"{spec.name}({', '.join(f'{k}={v}' for k, v in spec.args.items())})"
