"""`tracking.mlflow`: a run logged to MLflow as it trains (opt-in, never on by surprise).

The resolved config goes in as params (flattened key paths), every epoch's logged values as metrics with
step = epoch, and at the end the run's files (config, summary, history, pictures, metrics, model.keras) as
artifacts. The MLflow run id is kept in run.json, so `kcli train --resume` continues the same MLflow run: it
first logs the epochs MLflow lacks (a kill can land between kcli's checkpoint and MLflow's write) and never an
epoch MLflow already has, so the metric history has each step exactly once.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import keras

from kcli import runs
from kcli.config import Config, MlflowConfig, flatten
from kcli.errors import ConfigError

INSTALL_HINT = "pip install 'kcli-keras[mlflow]' (in a checkout: pip install -e '.[mlflow]')"
ARTIFACT_FILES = ("config.yaml", "summary.txt", "history.csv", "history.json", "history.png", "metrics.json",
                  "run.json", "model.keras")
MAX_PARAM = 6000   # MLflow's limit on a param value
# Bounded waiting for a server that stops answering mid-run (about a minute), unless set in the environment.
RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
           "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def reachable(cfg: Config) -> None:
    """The tracking store answers, checked before a run directory exists: an http(s) server its /health within
    10 s; any other URI (a database, a folder) by opening it with MLflow's own client, as the run will."""
    if cfg.tracking is None or cfg.tracking.mlflow is None:
        return
    uri = cfg.tracking.mlflow.uri
    if not uri.startswith(("http://", "https://")):
        _store_opens(uri)
        return
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=10):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot log to MLflow at {uri}: {short(exc)}", key="tracking.mlflow.uri") from None


def _store_opens(uri: str) -> None:
    """MLflow opens a non-http store (SQLite file, database server, folder) and reads from it."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        return   # check() says how to install MLflow
    import logging

    log = logging.getLogger("mlflow")
    level = log.level
    log.setLevel(logging.CRITICAL)   # its warnings about the same failure: the line below says it
    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except ModuleNotFoundError as exc:   # mysql://, postgresql://, ... without their driver
        raise ConfigError(f"cannot log to MLflow at {uri}: its database driver {exc.name!r} is not installed; "
                          "install it, or use an http(s) server or sqlite:///FILE", key="tracking.mlflow.uri") from None
    except Exception as exc:  # MlflowException, SQLAlchemy's errors, OSError: any store that cannot be used
        said = re.sub(r"\s*(\[SQL:|\(Background on this error).*", "", " ".join(str(exc).split()))   # SQLAlchemy's tail
        raise ConfigError(f"cannot log to MLflow at {uri}: {short(RuntimeError(said))}",
                          key="tracking.mlflow.uri") from None
    finally:
        log.setLevel(level)


def check(cfg: Config) -> None:
    """The MLflow client is installed (before a run directory exists)."""
    if cfg.tracking is None or cfg.tracking.mlflow is None:
        return
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        raise ConfigError(f"tracking.mlflow needs MLflow: {INSTALL_HINT}", key="tracking.mlflow")


class MlflowRun:
    """One MLflow run for one kcli run (created, or continued on --resume)."""

    def __init__(self, settings: MlflowConfig, cfg: Config, run_dir: Path, record: runs.RunRecord) -> None:
        for name, value in RETRIES.items():   # MLflow's own defaults retry for minutes; the user's setting wins
            os.environ.setdefault(name, value)
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=settings.uri)
        self.run_dir = run_dir
        self.run_id: str | None = record.data.get("mlflow_run_id")
        try:
            if self.run_id is None:
                self.run_id = self._create(settings.experiment or cfg.name or "kcli", cfg)
                record.update(mlflow_run_id=self.run_id, mlflow_uri=settings.uri)
            else:
                self.client.update_run(self.run_id, status="RUNNING")
        except Exception as exc:  # MLflow raises MlflowException / requests errors for an unreachable server
            raise ConfigError(f"cannot log to MLflow at {settings.uri}: {short(exc)}", key="tracking.mlflow.uri") \
                from None

    def _create(self, experiment: str, cfg: Config) -> str:
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        run = self.client.create_run(experiment_id, run_name=self.run_dir.name,
                                     tags={"kcli.run_dir": str(self.run_dir.resolve())})
        from mlflow.entities import Param

        flat = flatten(cfg.model_dump(mode="json", by_alias=True, exclude_none=True))
        # MLflow keys take letters, digits, _ - . / and spaces: model.layers[0].units -> model.layers.0.units
        params = [Param(re.sub(r"\[(\d+)\]", r".\1", k), json.dumps(v) if not isinstance(v, str) else v)
                  for k, v in flat.items()]
        params = [Param(p.key, p.value[:MAX_PARAM]) for p in params]
        for i in range(0, len(params), 100):   # MLflow takes at most 100 params per batch
            self.client.log_batch(run.info.run_id, params=params[i:i + 100])
        return str(run.info.run_id)

    def logged_steps(self) -> set[int]:
        """The epochs MLflow already has (by the loss metric, which every epoch logs)."""
        assert self.run_id is not None
        return {m.step for m in self.client.get_metric_history(self.run_id, "loss")}

    def log_epochs(self, rows: list[dict[str, Any]], skip: set[int] | None = None) -> None:
        from mlflow.entities import Metric

        assert self.run_id is not None
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, int(row["epoch"])) for row in rows if int(row["epoch"]) not in (skip or ())
                   for k, v in row.items() if k != "epoch" and v is not None]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000])

    def finish(self, status: str) -> None:
        """Upload the run's files (on success) and close the MLflow run with FINISHED / FAILED / KILLED."""
        assert self.run_id is not None
        if status == "FINISHED":
            for name in ARTIFACT_FILES:
                if (self.run_dir / name).is_file():
                    self.client.log_artifact(self.run_id, str(self.run_dir / name))
        self.client.set_terminated(self.run_id, status=status)


class Tracker(keras.callbacks.Callback):
    """After each epoch (after kcli's checkpoint), that epoch's row to MLflow; on resume, the missing ones first."""

    def __init__(self, mlflow_run: MlflowRun, rows: list[dict[str, Any]]) -> None:
        super().__init__()
        self.mlflow_run = mlflow_run
        self.rows = rows   # the Recorder's rows (the same list object)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.rows:
            self.mlflow_run.log_epochs(self.rows, skip=self.mlflow_run.logged_steps())

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.rows:
            self.mlflow_run.log_epochs(self.rows[-1:])


def short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."
