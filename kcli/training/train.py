"""One training run from start to end: prepare (or resume), show what is trained, fit, save and verify, and say
how it ended (completed, interrupted with how to resume, failed, a lost worker). The only place that drives
training; what it says goes to a listener as kcli.events."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from kcli import events
from kcli.config.models import Config
from kcli.distributed import cluster as cluster_mod
from kcli.distributed import strategy as distribute
from kcli.distributed import workers
from kcli.errors import Interrupted, WorkerLost
from kcli.model import summary as summary_mod
from kcli.model.summary_text import as_text
from kcli.run import find, pictures, records, state
from kcli.training import tracking
from kcli.training.fit import fit
from kcli.training.overview import short_config
from kcli.training.prepare import STREAM_CACHE, Prepared, one_batch, prepare
from kcli.training.resume import Start, new_run, private_copy, resume
from kcli.training.save import finish_model, write_run_files


@dataclass(frozen=True)
class Request:
    """What `kcli train` was asked beyond the config."""

    overrides: list[str] | None = None
    resume: str | None = None              # a run to continue from its last saved epoch
    keep_best: bool = False
    allow_data_change: bool = False
    one_batch: bool = False                # --fast-dev-run: one batch of each split
    init_runs: Path | None = None          # where `init_from: latest:NAME` looks (default: runs_dir)
    trust_code: bool = False


def fast_dev_run(path: Path, listener: events.Listener, overrides: list[str] | None = None,
                 runs_dir: Path = Path("runs")) -> None:
    """One batch of train, validation and test through the whole of `kcli train` (every artifact written and
    verified) in a temporary runs directory that is removed: the check before a long run."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kcli-fast-dev-run-") as tmp:
        train(path, Path(tmp), listener, Request(overrides, one_batch=True, init_runs=runs_dir))
    listener(events.Note(f"fast dev run ok: one batch of each split, every artifact written and verified, nothing "
                         f"kept ({time.perf_counter() - started:.1f} s)"))


def train(path: Path | None, runs_dir: Path, listener: events.Listener, request: Request = Request()) -> Path | None:
    """Train what the config describes and write a complete run directory; returns its path. A worker of a
    cluster (TF_CONFIG) other than the chief trains alike but in a temporary directory that is removed: only the
    chief writes under runs_dir (and a non-chief returns None)."""
    cluster = cluster_mod.from_env()
    if cluster is not None and cluster.workers > 1 and not cluster.is_chief:
        with tempfile.TemporaryDirectory(prefix="kcli-worker-") as tmp, distribute.removed_at_exit(Path(tmp)):
            if request.resume is not None:
                copy = private_copy(find.find_run(request.resume, runs_dir, "--resume", resumable=True), Path(tmp))
                request = replace(request, resume=str(copy))
            _train(path, Path(tmp), listener, request, cluster)
        listener(events.Note(f"{cluster.task} done; the chief writes the run directory"))
        return None
    return _train(path, runs_dir, listener, request, cluster)


def _train(path: Path | None, runs_dir: Path, listener: events.Listener, request: Request,
           cluster: cluster_mod.Cluster | None) -> Path:
    prep, start = _begin(path, runs_dir, listener, request)
    description = summary_mod.describe(prep.model)
    _show(prep, start, description, cluster, listener)
    run_dir, record = start.run_dir, start.record
    tracked: tracking.MlflowRun | None = None
    try:
        if request.resume is None:
            write_run_files(prep, run_dir, record, as_text(description), listener)
        record.update(keep_best=request.keep_best)
        tracked = _tracked(prep.cfg, run_dir, record, listener)
        _fit_and_save(prep, start, tracked, request.keep_best, cluster, listener)
    except KeyboardInterrupt:
        _close_tracking(tracked, "KILLED")
        raise _interrupted(run_dir, record, prep.cfg, cluster) from None
    except BaseException as exc:
        if cluster is not None and cluster.workers > 1 and distribute.lost_peer(exc):
            _close_tracking(tracked, "KILLED")
            raise _worker_lost(exc, run_dir, record, prep.cfg, cluster) from None
        _close_tracking(tracked, "FAILED")
        with contextlib.suppress(OSError):   # a full disk: run.json keeps its last state
            record.finish("failed", error=f"{type(exc).__name__}: {exc}")
        listener(events.RunFolder(run_dir, "failed"))
        raise
    finally:
        if prep.splits is not None and prep.splits.cache is not None:   # a streamed table's rows as read: not
            prep.splits.cache.close()                                     # needed after training
    record.finish("completed")
    if tracked is not None:   # after run.json says completed, so that the uploaded copy says so too
        try:
            tracked.finish("FINISHED")
        except Exception as exc:  # the run itself is complete and verified; MLflow only lost its copy
            listener(events.Warn(f"MLflow did not take the run's files ({tracking.short(exc)}); the run is complete"))
    if not request.one_batch:   # a fast dev run's directory is about to be removed
        listener(events.RunFolder(run_dir, "completed"))
    return run_dir


def _begin(path: Path | None, runs_dir: Path, listener: events.Listener, request: Request) -> tuple[Prepared, Start]:
    """The prepared run and where it starts: the resumed run's saved epoch, or a new run directory."""
    if request.resume is not None:
        prep, start = resume(path, request.overrides, request.resume, runs_dir, request.allow_data_change, listener,
                             request.trust_code)
        tracking.reachable(prep.cfg)
        return prep, start
    assert path is not None
    prep = prepare(path, request.overrides, runs_dir=request.init_runs or runs_dir,
                   stream_cache=runs_dir / STREAM_CACHE, listener=listener)
    with prep.loaded.located():
        tracking.reachable(prep.cfg)
    if request.one_batch:
        one_batch(prep)
    return prep, new_run(prep, runs_dir, prep.cfg.name)


def _show(prep: Prepared, start: Start, description: summary_mod.ModelSummary, cluster: cluster_mod.Cluster | None,
          listener: events.Listener) -> None:
    """Tell a launcher where the run is; record the cluster and the data's notes; show the config and model."""
    cfg, splits = prep.cfg, prep.splits
    assert splits is not None
    _announce(start.run_dir)
    if cfg.distribute == "multi_worker":
        start.record.update(cluster=cluster.describe() if cluster else None,
                            strategy=distribute.devices(cfg.distribute))
    listener(events.ConfigLines(short_config(cfg, splits)))
    for note in splits.notes:
        listener(events.Warn(note))
    if splits.notes:
        start.record.update(data_notes=list(splits.notes))
    listener(events.ModelSummaryReady(description))
    if prep.warm:
        listener(events.WarmStart(cfg.model.init_from or "", prep.warm))


def _tracked(cfg: Config, run_dir: Path, record: records.RunRecord,
             listener: events.Listener) -> tracking.MlflowRun | None:
    """The run's MLflow twin when `tracking.mlflow` asks for one."""
    if cfg.tracking is None or cfg.tracking.mlflow is None:
        return None
    tracked = tracking.MlflowRun(cfg.tracking.mlflow, cfg, run_dir, record)
    listener(events.Note(f"tracking: MLflow run {tracked.run_id} at {tracking.masked(cfg.tracking.mlflow.uri)}"))
    return tracked


def _fit_and_save(prep: Prepared, start: Start, tracked: tracking.MlflowRun | None, keep_best: bool,
                  cluster: cluster_mod.Cluster | None, listener: events.Listener) -> None:
    """Fit, show the history, draw it, then test, save and verify (only the chief writes artifacts)."""
    assert prep.splits is not None
    run_dir = start.run_dir
    chief = cluster is None or cluster.workers <= 1 or cluster.is_chief
    if chief:
        pictures.warm_up()
    rows = fit(prep.model, prep, start, listener, tracked)
    listener(events.History(rows, records.history_columns(rows, prep.splits.validation is not None)))
    if chief:
        pictures.history(rows, run_dir / pictures.HISTORY_PNG, f"{run_dir.name}")
    finish_model(prep.model, prep, run_dir, start.record, keep_best, listener, chief)


def _announce(run_dir: Path) -> None:
    """Tell a `--workers` launcher where the run is (it marks the run interrupted should this process be killed)."""
    target = os.environ.get(workers.RUN_DIR_ENV)
    if target:
        with contextlib.suppress(OSError):
            Path(target).write_text(str(run_dir.resolve()))


def _interrupted(run_dir: Path, record: records.RunRecord, cfg: Config,
                 cluster: cluster_mod.Cluster | None) -> Interrupted:
    """Ctrl-C: the run is interrupted, resumable from its last saved epoch (if one was saved)."""
    with contextlib.suppress(OSError):   # a full disk: run.json keeps its last state
        record.finish("interrupted", error="interrupted by the user (Ctrl-C)")
    saved = state.saved_epoch(run_dir)
    if not saved:
        return Interrupted("interrupted before the first epoch finished; nothing to resume")
    several = f" --workers {cluster.workers}" if cluster is not None and cluster.workers > 1 else ""
    return Interrupted(f"interrupted; the state after epoch {saved} of {cfg.fit.epochs} is saved. "
                       f"Continue with: kcli train --resume {run_dir}{several}")


def _worker_lost(exc: BaseException, run_dir: Path, record: records.RunRecord, cfg: Config,
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

