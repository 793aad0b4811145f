"""The training side of a sweep trial: `kcli sweep` starts `kcli train` with KCLI_SWEEP_TRIAL set, and this
callback reports the sweep's metric to Optuna after every epoch and stops training when Optuna prunes the trial.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from typing import Any

import keras

ENV = "KCLI_SWEEP_TRIAL"   # JSON: {"storage": URL, "study": NAME, "trial_id": ID, "metric": NAME, "prune": BOOL}


class Report(keras.callbacks.Callback):
    """trial.report(metric, epoch) after each epoch the metric is logged; should_prune() stops training."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        self.metric = str(spec["metric"])
        self.pruned_at: int | None = None
        self.trial: Any = None
        self._error: BaseException | None = None
        # Importing Optuna and opening the study (~0.5 s) overlaps with building the model and the first epoch.
        self._ready = threading.Thread(target=self._open, args=(spec,), daemon=True)
        self._ready.start()

    def _open(self, spec: dict[str, Any]) -> None:
        try:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            study = optuna.load_study(study_name=spec["study"], storage=spec["storage"])
            self.trial = optuna.trial.Trial(study, int(spec["trial_id"]))
        except BaseException as exc:  # raised in the training thread, at the first report
            self._error = exc

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = (logs or {}).get(self.metric)
        if value is None:
            return   # e.g. a validation metric on an epoch without validation (validation_freq)
        self._ready.join()
        if self._error is not None:
            raise self._error
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # a resumed trial reports its first epochs again: Optuna keeps the first
            self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch + 1
            self.trial.set_user_attr("pruned_at_epoch", self.pruned_at)
            self.model.stop_training = True


def from_env() -> Report | None:
    """The reporting callback when this process trains a sweep trial, else None."""
    raw = os.environ.get(ENV)
    spec = json.loads(raw) if raw else None
    return Report(spec) if spec and spec.get("prune", True) else None
