"""model.fit as kcli runs it: the inputs (in memory, streamed, sharded across workers), the history recorder,
checkpoints, progress events, a sweep's pruning and MLflow; a failure inside fit keeps the last saved epoch."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras

from kcli import events
from kcli.data import pipeline
from kcli.data import stream as stream_mod
from kcli.data.python_source import Stream
from kcli.distributed import strategy as distribute
from kcli.errors import DataError, TrainingFailed
from kcli.run import records, state
from kcli.training import callbacks as callbacks_mod
from kcli.training import sweep_trial as trial_mod
from kcli.training import tracking
from kcli.training.prepare import Prepared
from kcli.training.resume import Start


def fit(model: keras.Model, prep: Prepared, start: Start, listener: events.Listener,
        tracked: tracking.MlflowRun | None = None) -> list[dict[str, Any]]:
    """model.fit with kcli's history recorder, checkpoints and progress events; returns one row per epoch."""
    cfg, run_dir = prep.cfg, start.run_dir
    inputs, validation, steps = _inputs(prep)
    times: list[float] = list(start.record.data.get("epoch_seconds", []))[:start.epoch]

    def on_epoch(rows: list[dict[str, Any]], seconds: float) -> None:
        records.write_history(run_dir, rows, validation is not None)
        times.append(round(seconds, 4))
        start.record.update(epochs_completed=len(rows), epoch_seconds=times)

    user = callbacks_mod.build(cfg, prep.registry, run_dir)
    report = trial_mod.from_env()   # a sweep trial: the metric goes to Optuna, which may prune
    recorder = callbacks_mod.Recorder(list(start.rows), on_epoch, callbacks_mod.changes_learning_rate(user))
    monitor = cfg.fit.checkpoint.monitor or ("val_loss" if validation is not None else None)
    checkpointer = callbacks_mod.Checkpointer(run_dir, monitor, cfg.fit.checkpoint.mode, user,
                                               cfg.fit.checkpoint.interval, start.state)
    with (_progress(listener, cfg.fit.epochs, steps, start.epoch), _flushed(checkpointer),
          stream_failures(prep, run_dir)):
        model.fit(inputs.x, inputs.y, batch_size=inputs.batch_size,
                  epochs=cfg.fit.epochs, initial_epoch=start.epoch, validation_data=validation,
                  validation_freq=cfg.fit.validation_freq, shuffle=inputs.shuffle, sample_weight=inputs.sample_weight,
                  class_weight=cfg.fit.class_weight if isinstance(cfg.fit.class_weight, dict) else None,
                  # the recorder after the user's callbacks: LR callbacks add `learning_rate` to the logs
                  callbacks=[*inputs.callbacks, *user, recorder, checkpointer,
                             callbacks_mod.ProgressBridge(listener), *([report] if report else []),
                             *([tracking.Tracker(tracked, recorder.rows)] if tracked else []),
                             *([callbacks_mod.ClusterUp()] if cfg.distribute == "multi_worker" else [])], verbose=0)
    if recorder.nan_at is not None:
        raise TrainingFailed(f"training failed: the loss became NaN in epoch {recorder.nan_at}; "
                             "lower the learning rate or check the data for NaN/inf values")
    start.record.update(best={"monitor": monitor, "value": checkpointer.best, "epoch": checkpointer.best_epoch})
    if report is not None and report.pruned_at is not None:
        start.record.update(pruned_at_epoch=report.pruned_at)
        listener(events.Note(f"pruned by the sweep after epoch {report.pruned_at}: its metric lags the other "
                             "trials'"))
    return recorder.rows


def _inputs(prep: Prepared) -> tuple[pipeline.FitInput, Any, int | None]:
    """What fit takes: the training input, the validation data (None without) and the batches per epoch."""
    cfg, splits = prep.cfg, prep.splits
    assert splits is not None
    if isinstance(splits.train, Stream):   # the user's own datasets, as they made them
        validation = splits.validation.dataset if isinstance(splits.validation, Stream) else None
        setter = splits.train.epoch_setter   # a streamed table's order depends on (seed, epoch)
        inputs = pipeline.FitInput(splits.train.dataset, callbacks=[setter.callback()] if setter else [])
        if setter is not None and setter.reader.part is not None:   # each worker reads its own part of the table
            inputs.x = distribute.already_sharded(inputs.x)
            validation = pipeline.shard_by_data(validation)   # each reads all of it; tf.distribute splits each batch
        return inputs, validation, splits.train.batches
    validation = pipeline.validation(splits.validation, cfg.data)
    steps = math.ceil(len(splits.train) / cfg.data.batch_size)
    inputs = pipeline.training(splits.train, cfg.data, cfg.seed)
    if cfg.distribute == "multi_worker":   # in-memory data: every worker takes its share of each global batch
        inputs.x, validation = pipeline.shard_by_data(inputs.x), pipeline.shard_by_data(validation)
    return inputs, validation, steps


@contextlib.contextmanager
def _progress(listener: events.Listener, epochs: int, steps: int | None, initial_epoch: int) -> Iterator[None]:
    """TrainingStarted before fit, TrainingEnded after it however it ends (a terminal's live bars close)."""
    listener(events.TrainingStarted(epochs, steps, initial_epoch))
    try:
        yield
    finally:
        listener(events.TrainingEnded())


@contextlib.contextmanager
def stream_failures(prep: Prepared, run_dir: Path) -> Iterator[None]:
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
