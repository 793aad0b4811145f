"""Keras callbacks: the user's (`fit.callbacks`) and kcli's own (history, progress events, checkpoints).

User callbacks resolve through `keras.callbacks`, then the classes in `imports`. Paths they write
default into the run directory. Callbacks that watch a `monitor` only see epochs where it was logged,
so `monitor: val_loss` with `validation_freq: 2` neither warns every other epoch nor acts on stale values.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kcli import events
from kcli.config import keras_rules
from kcli.config.code import Registry
from kcli.config.keras_names import higher_is_better
from kcli.config.models import Config, Spec
from kcli.config.suggest import did_you_mean
from kcli.errors import ConfigError
from kcli.files import atomic
from kcli.model.classes import check_args, class_names, construct, find_class
from kcli.run import state
from kcli.training import checkpoints

# Where a callback's output goes when the config does not say (relative paths land in the run dir too).
_PATH_ARGS: dict[str, tuple[str, str]] = {
    "TensorBoard": ("log_dir", "tensorboard"),
    "CSVLogger": ("filename", "training_log.csv"),
    "ModelCheckpoint": ("filepath", "checkpoints/epoch-{epoch:03d}.keras"),
}
# Counters of built-in callbacks that a resumed run carries over (Keras resets them in on_train_begin).
_RESUMABLE_ATTRS = ("wait", "best", "cooldown_counter", "stopped_epoch", "best_epoch")


def _class(spec: Spec, key: str, registry: Registry) -> type:
    cls = find_class(spec.name, keras.callbacks, keras.callbacks.Callback, registry, key)
    if cls is None:
        known = class_names(keras.callbacks, keras.callbacks.Callback) + list(registry.classes)
        raise keras_rules.unknown("callback", spec.name, known, key)
    if not issubclass(cls, keras.callbacks.Callback):
        raise ConfigError(f"{cls.__name__} is not a keras Callback", key=key)
    keras_rules.check_callback(cls.__name__, key)
    return cls


def check(cfg: Config, registry: Registry) -> None:
    """Resolve every configured callback and check its arguments (before a run directory exists)."""
    for i, spec in enumerate(cfg.fit.callbacks):
        key = keras_rules.callback_key(i, spec.name)
        cls = _class(spec, key, registry)
        check_args(cls, _args(cls, spec.args, Path("."), key, registry), key)


def check_monitors(cfg: Config, registry: Registry, metrics: list[str], validation: bool) -> None:
    """Every `monitor` (of a callback, explicit or its default, and fit.checkpoint.monitor) must name a value
    that training logs: checked before a run directory exists, instead of failing (or silently never acting)
    during training."""
    logged = ["loss", *metrics]
    for i, spec in enumerate(cfg.fit.callbacks):
        key = keras_rules.callback_key(i, spec.name)
        monitor = spec.args.get("monitor", _default_monitor(_class(spec, key, registry)))
        if isinstance(monitor, str):
            _check_monitor(monitor, logged, validation, f"{key}.monitor")
    if cfg.fit.checkpoint.monitor is not None:
        _check_monitor(cfg.fit.checkpoint.monitor, logged, validation, "fit.checkpoint.monitor")


def _default_monitor(cls: type) -> Any:
    try:
        param = inspect.signature(cls.__init__).parameters.get("monitor")
    except (TypeError, ValueError):
        return None
    return None if param is None or param.default is param.empty else param.default


def _check_monitor(monitor: str, logged: list[str], validation: bool, key: str) -> None:
    base = monitor.removeprefix("val_")
    if base in logged or base in ("learning_rate", "lr"):
        if monitor.startswith("val_") and not validation:
            raise ConfigError(f"monitor {monitor!r} needs validation data (data.validation or "
                              f"data.validation_split); without it, monitor {base!r}", key=key)
        return
    names = [*logged, *(f"val_{n}" for n in logged if validation)]
    raise ConfigError(f"monitor {monitor!r} is never logged{did_you_mean(monitor, names)}; logged values: "
                      f"{', '.join(names)}", key=key)


def build(cfg: Config, registry: Registry, run_dir: Path) -> list[keras.callbacks.Callback]:
    """The user's callbacks, with output paths inside `run_dir`."""
    built = []
    for i, spec in enumerate(cfg.fit.callbacks):
        key = keras_rules.callback_key(i, spec.name)
        cls = _class(spec, key, registry)
        callback = construct(cls, _args(cls, spec.args, run_dir, key, registry), key)
        built.append(_only_when_logged(callback, key))
    return built


def _args(cls: type, args: dict[str, Any], run_dir: Path, key: str, registry: Registry) -> dict[str, Any]:
    args = dict(args)
    if cls.__name__ in _PATH_ARGS:
        name, default = _PATH_ARGS[cls.__name__]
        value = Path(str(args.get(name, default)))
        args[name] = str(value if value.is_absolute() else run_dir / value)
    if cls.__name__ == "LearningRateScheduler" and "schedule" in args:
        args["schedule"] = _schedule_function(args["schedule"], f"{key}.schedule", registry)
    return args


def _schedule_function(value: Any, key: str, registry: Registry) -> Callable[[int, float], float]:
    """`{ExponentialDecay: {...}}` (evaluated at the epoch number) or `file.py:function` / `module:function`."""
    if isinstance(value, dict):
        spec = Spec.model_validate(value)
        base = keras.optimizers.schedules.LearningRateSchedule
        cls = getattr(keras.optimizers.schedules, spec.name, None)
        if not (inspect.isclass(cls) and issubclass(cls, base)):
            known = [n for n, o in vars(keras.optimizers.schedules).items() if inspect.isclass(o)]
            raise ConfigError(f"unknown schedule {spec.name!r}{did_you_mean(spec.name, known)}", key=key)
        schedule = construct(cls, spec.args, f"{key}.{spec.name}")
        return lambda epoch, lr: float(schedule(epoch))
    if isinstance(value, str) and ":" in value:
        target, name = value.rsplit(":", 1)
        fn = getattr(registry.load(target, key), name, None)
        if callable(fn):
            return fn
        raise ConfigError(f"{target} has no function {name!r}", key=key)
    raise ConfigError("schedule must be a keras schedule ({ExponentialDecay: {...}}) or file.py:function", key=key)


def _only_when_logged(callback: keras.callbacks.Callback, key: str) -> keras.callbacks.Callback:
    """Skip on_epoch_end on epochs where the monitored value was not logged (no validation that epoch)."""
    monitor = getattr(callback, "monitor", None)
    if not isinstance(monitor, str):
        return callback
    original = callback.on_epoch_end

    def on_epoch_end(epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        if monitor in logs:
            original(epoch, logs)
        elif not monitor.startswith("val_") or any(k.startswith("val_") for k in logs):
            raise ConfigError(f"monitor {monitor!r} is never logged; logged values: {', '.join(logs)}", key=key)

    callback.on_epoch_end = on_epoch_end
    return callback


def callback_state(callbacks: list[keras.callbacks.Callback]) -> list[dict[str, Any]]:
    """The counters of each user callback (EarlyStopping's wait/best, ...), for resuming."""
    state = []
    for cb in callbacks:
        values = {a: getattr(cb, a) for a in _RESUMABLE_ATTRS if hasattr(cb, a)}
        state.append({a: float(v) if isinstance(v, float | np.floating) else v for a, v in values.items()
                      if isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)})
    return state


def changes_learning_rate(callbacks: list[keras.callbacks.Callback]) -> bool:
    """Whether a user callback sets the learning rate (its value then becomes a history column)."""
    kinds = (keras.callbacks.ReduceLROnPlateau, keras.callbacks.LearningRateScheduler)
    return any(isinstance(cb, kinds) for cb in callbacks)


def callback_arrays(callbacks: list[keras.callbacks.Callback]) -> dict[str, np.ndarray]:
    """Weights a user callback holds (EarlyStopping(restore_best_weights=True)'s best_weights), for resuming:
    `cb<i>_w<j>` -> array."""
    arrays: dict[str, np.ndarray] = {}
    for i, cb in enumerate(callbacks):
        for j, value in enumerate(getattr(cb, "best_weights", None) or []):
            arrays[f"cb{i}_w{j}"] = np.asarray(value)
    return arrays


def restore_callback_arrays(callbacks: list[keras.callbacks.Callback], arrays: dict[str, np.ndarray]) -> None:
    """Put `callback_arrays` back (after Keras's on_train_begin reset them)."""
    for i, cb in enumerate(callbacks):
        found = sorted((int(k.split("_w")[1]), v) for k, v in arrays.items() if k.startswith(f"cb{i}_w"))
        if found:
            cb.best_weights = [v for _, v in found]


class Recorder(keras.callbacks.Callback):
    """One history row per epoch (val_* only where validation ran), saved as it goes; stops on NaN.

    Also the wall time of each epoch: from the end of the previous epoch (or the start of training) to the
    end of this one, so it includes the work every callback does between epochs (checkpoints, files).
    """

    def __init__(self, rows: list[dict[str, Any]], on_epoch: Callable[[list[dict[str, Any]], float], None],
                 track_lr: bool = False) -> None:
        super().__init__()
        self.rows = rows
        # With a learning-rate callback, every row gets the rate the epoch trained with (Keras logs it only on
        # the epochs where the callback ran its on_epoch_end, and kcli skips those without the monitored value).
        self.track_lr = track_lr
        self._lr: float | None = None
        self.nan_at: int | None = None
        self._epoch = 0
        self._on_epoch = on_epoch
        self._last = time.perf_counter()

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._last = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch
        if self.track_lr:   # after the user's callbacks: a scheduler has set this epoch's rate already
            self._lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.nan_at = self._epoch + 1
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.nan_at is not None:
            return
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        if self.track_lr and "learning_rate" not in row and self._lr is not None:
            row["learning_rate"] = self._lr
        self.rows.append(row)
        now = time.perf_counter()
        seconds, self._last = now - self._last, now
        self._on_epoch(self.rows, seconds)


class ProgressBridge(keras.callbacks.Callback):
    """Forwards Keras's callback calls to the listener as progress events (EpochBegin, BatchEnd, EpochEnd)."""

    def __init__(self, listener: events.Listener) -> None:
        super().__init__()
        self.listener = listener

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.listener(events.EpochBegin(epoch))

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.listener(events.BatchEnd(batch, dict(logs or {})))   # a copy: Keras reuses its logs dict

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.listener(events.EpochEnd(epoch, dict(logs or {})))


class Checkpointer(keras.callbacks.Callback):
    """The training state after every epoch (checkpoints/state.npz: every model and optimizer variable and
    the callback counters, for `--resume`) and the Keras-format checkpoints/last.weights.h5 and
    best.weights.h5 (`fit.checkpoint.monitor`).

    A state snapshot costs a few ms; Keras's save_weights ~25-35 ms whatever the model size, which is a third
    of a digits-MLP epoch. So the .weights.h5 files are written from the snapshots at most every
    `interval` seconds (`fit.checkpoint.interval`; every epoch when epochs are longer or with 0), at the end
    of training and when training is interrupted (`flush`). Until then state.npz also keeps the best
    epoch's snapshot, so a resumed run still writes the right best.weights.h5.
    """

    def __init__(self, run_dir: Path, monitor: str | None, mode: str, user: list[keras.callbacks.Callback],
                 interval: float, resumed: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.monitor = monitor
        self.better = _better(monitor, mode)
        self.user = user
        self.interval = interval
        resumed = resumed or {}
        self.best: float | None = resumed.get("best")
        self.best_epoch: int | None = resumed.get("best_epoch")
        self._restore = resumed.get("callbacks")
        self._restore_arrays: dict[str, np.ndarray] = resumed.get("callback_arrays") or {}
        self._last: list[np.ndarray] | None = None                # the snapshot not in last.weights.h5 yet
        self._best: list[np.ndarray] | None = resumed.get("best_values")   # not in best.weights.h5 yet
        self._written = time.monotonic()
        self._at_epoch_end = False   # whether the model holds the values of self._last

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        # Runs after the user's callbacks reset themselves: put their counters back when resuming.
        for cb, values in zip(self.user, self._restore or []):
            for attr, value in values.items():
                setattr(cb, attr, value)
        restore_callback_arrays(self.user, self._restore_arrays)
        self._written = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._at_epoch_end = False

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not math.isfinite(float((logs or {}).get("loss", 0.0))):
            return   # a diverged epoch is not a state to keep (the run fails; see Recorder)
        values = checkpoints.snapshot(self.model)
        self._at_epoch_end = True
        value = (logs or {}).get(self.monitor) if self.monitor else None
        if value is not None and (self.best is None or self.better(float(value), self.best)):
            self.best, self.best_epoch, self._best = float(value), epoch + 1, values
        self._last = values
        if time.monotonic() - self._written >= self.interval:
            self.flush()
        best_behind = self._best is not None and self._best is not values
        checkpoints.save_state(self.run_dir, values, self._info(epoch + 1), self._best if best_behind else None,
                         callback_arrays(self.user))

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        # From the snapshot, not the model: a user callback's on_train_end ran first and may have changed the
        # weights (EarlyStopping(restore_best_weights=True)); last.weights.h5 holds the last epoch's.
        self._at_epoch_end = False
        self.flush()

    def flush(self) -> None:
        """Write the pending .weights.h5 files: the last completed epoch's and the best epoch's weights
        (also after an interruption or error mid-epoch: they come from the snapshots)."""
        folder = self.run_dir / state.CHECKPOINTS
        if self._last is not None:
            last = None if self._at_epoch_end else self._last
            checkpoints.save_weights(self.model, folder / state.LAST_WEIGHTS, last)
            if self._best is self._last:
                # the same weights were just written: a file copy is ~20x cheaper than a second save
                atomic.copy_file(folder / state.LAST_WEIGHTS, folder / state.BEST_WEIGHTS)
                self._best = None
            self._last = None
        if self._best is not None:
            checkpoints.save_weights(self.model, folder / state.BEST_WEIGHTS, self._best)
            self._best = None
        self._written = time.monotonic()

    def _info(self, epoch: int) -> dict[str, Any]:
        return {"epoch": epoch, "monitor": self.monitor, "best": self.best, "best_epoch": self.best_epoch,
                "callbacks": callback_state(self.user)}


def _better(monitor: str | None, mode: str) -> Callable[[float, float], bool]:
    if mode == "auto":
        mode = "max" if higher_is_better(monitor or "") else "min"
    return (lambda new, best: new > best) if mode == "max" else (lambda new, best: new < best)


class ClusterUp(keras.callbacks.Callback):
    """Multi-worker: tells the start-up watchdog (kcli/distributed/strategy.py) that the first step (an all-reduce
    with every worker) went through."""

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        from kcli.distributed import strategy as distribute

        distribute.cluster_up()
