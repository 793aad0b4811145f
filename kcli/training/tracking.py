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
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import keras

from kcli.config.dump import flatten
from kcli.config.models import Config, MlflowConfig
from kcli.errors import ConfigError, cut, masked
from kcli.files import readable
from kcli.run import records

INSTALL_HINT = "pip install 'kcli-keras[mlflow]' (in a checkout: pip install -e '.[mlflow]')"
ARTIFACT_FILES = ("config.yaml", "summary.txt", "history.csv", "history.json", "history.png", "metrics.json",
                  "run.json", "model.keras")
MAX_PARAM = 6000   # MLflow's limit on a param value
# Bounded waiting for a server that stops answering mid-run (about a minute), unless set in the environment.
RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
           "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def reachable(cfg: Config) -> None:
    """The tracking store answers, checked before a run directory exists: an http(s) server its /health within
    10 s; a local store's file or folder by readable's rules (a FIFO or a link loop would hang MLflow); any other
    URI (a database, a folder) by opening it with MLflow's own client, as the run will."""
    if cfg.tracking is None or cfg.tracking.mlflow is None:
        return
    uri = cfg.tracking.mlflow.uri
    if not uri.startswith(("http://", "https://")):
        _local_store_usable(uri)
        _store_opens(uri)
        return
    import http.client

    try:
        with urllib.request.urlopen(_health_request(uri), timeout=10):
            pass
    except (OSError, ValueError, http.client.HTTPException) as exc:   # InvalidURL: a bad port or host
        raise ConfigError(f"cannot log to MLflow: {_reason(exc)}", key=KEY) from None


KEY = "tracking.mlflow.uri"


def _health_request(uri: str) -> urllib.request.Request:
    """GET URI/health, with the URI's user:password (if any) sent as HTTP basic auth, as MLflow's client does
    (urllib would read them as part of the host name)."""
    import base64
    import urllib.request
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    request = urllib.request.Request(f"{parts._replace(netloc=host).geturl().rstrip('/')}/health")
    if parts.username is not None:
        token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(token).decode())
    return request


def _reason(exc: BaseException) -> str:
    """What went wrong reaching a server, without the URL (the location of the error names it, masked)."""
    reason = getattr(exc, "reason", None)
    if isinstance(exc, urllib.error.HTTPError):
        return f"the server answered HTTP {exc.code} {exc.reason}"
    if isinstance(reason, OSError):
        exc = reason
    text = getattr(exc, "strerror", None) or str(reason or exc)
    return short(RuntimeError(text))


def _local_store(uri: str) -> tuple[Path, bool] | None:
    """The file (sqlite:///FILE) or folder (file:///DIR, a plain path) of a local store, and whether it is a
    folder; None for any other store."""
    from urllib.parse import unquote, urlsplit

    if uri.startswith("sqlite:///"):
        name = uri[len("sqlite:///"):].split("?", 1)[0]
        return (None if name in ("", ":memory:") else (Path(unquote(name)), False))
    if uri.startswith("file:"):
        return Path(unquote(urlsplit(uri).path)), True
    return (Path(uri), True) if "://" not in uri else None


def _local_store_usable(uri: str) -> None:
    """A local store's file is a regular file (or not there yet, in a folder) and its folder a folder."""
    found = _local_store(uri)
    if found is None:
        return
    path, folder = found
    if not folder and not os.path.lexists(path):
        path, folder = path.parent if str(path.parent) else Path("."), True   # MLflow creates the file, not its folder
        if not os.path.lexists(path):
            raise ConfigError(f"cannot log to MLflow: the folder {path} does not exist", key=KEY)
    if folder and not os.path.lexists(path):
        return   # MLflow creates a store folder
    why = readable.problem(path)
    if folder:
        why = None if why == "is a folder, not a file" else (why or "is a file, not a folder")
    if why is not None:
        raise ConfigError(f"cannot log to MLflow: {path} {why}", key=KEY)


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
        raise ConfigError(f"cannot log to MLflow: its database driver {exc.name!r} is not installed; "
                          "install it, or use an http(s) server or sqlite:///FILE", key=KEY) from None
    except Exception as exc:  # MlflowException, SQLAlchemy's errors, OSError: any store that cannot be used
        said = re.sub(r"\s*(\[SQL:|\(Background on this error).*", "", " ".join(str(exc).split()))   # SQLAlchemy's tail
        raise ConfigError(f"cannot log to MLflow: {short(RuntimeError(said))}", key=KEY) from None
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

    def __init__(self, settings: MlflowConfig, cfg: Config, run_dir: Path, record: records.RunRecord) -> None:
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
            raise ConfigError(f"cannot log to MLflow at {masked(settings.uri)}: {short(exc)}", key=KEY) from None

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
    return cut(text, 200)
