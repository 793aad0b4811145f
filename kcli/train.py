"""`kcli train` and `kcli summary`: the only place that drives training."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from kcli import config as config_mod
from kcli import data as data_mod
from kcli import model as model_mod
from kcli import runs
from kcli.config import Config, LoadedConfig
from kcli.data import Splits
from kcli.display import Display, TrainingProgress
from kcli.errors import KcliError, TrainingFailed
from kcli.imports import Registry, load_imports


@dataclass
class Prepared:
    """Everything checked and built before a run directory is created."""

    loaded: LoadedConfig
    cfg: Config
    registry: Registry
    splits: Splits | None
    model: keras.Model


def prepare(path: Path, with_data: bool = True) -> Prepared:
    """Load the config, the user's imports and the data; build and compile the model; check they fit."""
    loaded = config_mod.load(path)
    try:
        cfg = config_mod.resolve(loaded)
        registry = load_imports(cfg.imports)
        input_shape = tuple(cfg.model.input_shape)
        keras.backend.clear_session()  # fresh layer names (sequential/dense/...) as in a new process
        keras.utils.set_random_seed(cfg.seed)  # before anything random, as a hand-written script does
        splits = data_mod.load(cfg.data, cfg.seed, input_shape) if with_data else None
        if splits is not None:
            data_mod.check_features(splits, input_shape)
            if cfg.data.one_hot is True:
                cfg.data.one_hot = splits.classes  # record the inferred count: evaluate/predict reuse it
        model = model_mod.build(cfg, registry)
        model_mod.compile_model(model, cfg.compile, registry)
        if splits is not None:
            model_mod.check_labels(splits, model, model.loss, input_shape)
    except KcliError as exc:
        raise exc.located(loaded.path, loaded.lines) from None
    return Prepared(loaded, cfg, registry, splits, model)


def summary(path: Path, display: Display) -> None:
    """Build the model without data or training and show its summary and trainable variables."""
    prepared = prepare(path, with_data=False)
    display.summary(model_mod.describe(prepared.model), variables=True)


def train(path: Path, runs_dir: Path, display: Display) -> Path:
    """Train what the config describes and write a complete run directory; returns its path."""
    prep = prepare(path)
    cfg, splits, model = prep.cfg, prep.splits, prep.model
    assert splits is not None
    description = model_mod.describe(model)
    display.config(_short_config(cfg, splits))
    display.summary(description)

    run_dir = runs.new_run_dir(runs_dir, cfg.name or path.stem)
    record = runs.RunRecord.start(run_dir, cfg.name or path.stem, cfg.seed or 0)
    try:
        runs.write_text(run_dir / runs.CONFIG, config_mod.dump(cfg))
        record.update(imports={"files": runs.copy_code(run_dir, prep.registry.files),
                               "modules": prep.registry.modules},
                      features=splits.train.columns)  # CSV column names, for predict
        runs.write_text(run_dir / runs.SUMMARY, display.summary_text(description))
        rows = _fit(model, cfg, splits, run_dir, record, display)
        display.history(rows, runs.history_columns(rows, splits.validation is not None))
        if splits.test is not None:
            metrics = model_mod.evaluate(model, splits.test.x, splits.test.y, cfg.data.batch_size)
            runs.write_json(run_dir / runs.METRICS, metrics)
            display.metrics("Test metrics", metrics)
        record.update(artifacts=runs.save_model(model, run_dir, list(cfg.save or [])))
    except KeyboardInterrupt:
        record.finish("interrupted", error="interrupted by the user (Ctrl-C)")
        display.run_dir(run_dir, "interrupted")
        raise
    except BaseException as exc:
        record.finish("failed", error=f"{type(exc).__name__}: {exc}")
        display.run_dir(run_dir, "failed")
        raise
    record.finish("completed")
    display.run_dir(run_dir, "completed")
    return run_dir


def _fit(model: keras.Model, cfg: Config, splits: Splits, run_dir: Path, record: runs.RunRecord,
         display: Display) -> list[dict[str, Any]]:
    """model.fit with kcli's history recorder and progress display; returns one row per epoch."""
    validation = (splits.validation.x, splits.validation.y) if splits.validation is not None else None
    steps = math.ceil(len(splits.train) / cfg.data.batch_size)

    def on_epoch(rows: list[dict[str, Any]]) -> None:
        runs.write_history(run_dir, rows, validation is not None)
        record.update(epochs_completed=len(rows))

    recorder = _Recorder(on_epoch)
    with display.progress(cfg.fit.epochs, steps) as progress:
        model.fit(splits.train.x, splits.train.y, batch_size=cfg.data.batch_size, epochs=cfg.fit.epochs,
                  validation_data=validation, validation_freq=cfg.fit.validation_freq,
                  shuffle=cfg.data.shuffle, callbacks=[recorder, _ProgressBridge(progress)], verbose=0)
    if recorder.nan_at is not None:
        raise TrainingFailed(f"training failed: the loss became NaN in epoch {recorder.nan_at}; "
                             "lower the learning rate or check the data for NaN/inf values")
    return recorder.rows


class _Recorder(keras.callbacks.Callback):
    """One history row per epoch (val_* only where validation ran), saved as it goes; stops on NaN."""

    def __init__(self, on_epoch: Any) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.nan_at: int | None = None
        self._epoch = 0
        self._on_epoch = on_epoch

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.nan_at = self._epoch + 1
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.nan_at is not None:
            return
        self.rows.append({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})
        self._on_epoch(self.rows)


class _ProgressBridge(keras.callbacks.Callback):
    """Forwards Keras's callback events to the Rich progress display."""

    def __init__(self, progress: TrainingProgress) -> None:
        super().__init__()
        self.progress = progress

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.progress.epoch_begin(epoch)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.progress.batch_end(batch, logs or {})

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.progress.epoch_end(epoch, logs or {})


def _short_config(cfg: Config, splits: Splits) -> list[tuple[str, str]]:
    sizes = ", ".join(f"{name} {len(a)}" for name, a in (("train", splits.train), ("validation", splits.validation),
                                                          ("test", splits.test)) if a is not None)
    source = cfg.data.name if cfg.data.source == "builtin" else (cfg.data.path or cfg.data.source)
    model = (f"{len(cfg.model.layers)} layers" if cfg.model.layers is not None else f"class {cfg.model.class_}")
    return [
        ("run", f"{cfg.name}  (seed {cfg.seed})"),
        ("data", f"{cfg.data.source}: {source}  [{sizes}]  batch {cfg.data.batch_size}"),
        ("model", f"{model}, input_shape {list(cfg.model.input_shape)}"),
        ("compile", f"optimizer {_spec(cfg.compile.optimizer)}, loss {_spec(cfg.compile.loss)}, "
                    f"metrics {[_spec(m) for m in cfg.compile.metrics]}"),
        ("fit", f"epochs {cfg.fit.epochs}, validation_freq {cfg.fit.validation_freq}"),
    ]


def _spec(spec: config_mod.Spec) -> str:
    return spec.name if not spec.args else f"{spec.name}({', '.join(f'{k}={v}' for k, v in spec.args.items())})"
