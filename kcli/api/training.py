"""kcli.api.train and kcli.api.summary: `kcli train` and `kcli summary` as Python functions.

Progress and remarks go to `listener` as kcli.events (the CLI passes its Display); the result is a plain `Run`.
A user mistake raises the same KcliError the CLI prints as its `error:` line. TensorFlow is imported on the
first call, not with this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kcli import events
from kcli.distributed import cluster as cluster_mod
from kcli.errors import KcliError

if TYPE_CHECKING:
    from kcli.model.summary import ModelSummary


@dataclass(frozen=True)
class Run:
    """A finished `train`: its run folder and what `kcli train` shows at the end."""

    path: Path | None                 # None: nothing was kept (a fast dev run, a worker other than the chief)
    status: str                       # completed, or (with workers) failed / interrupted as run.json says
    history: Mapping[str, list[Any]] = field(default_factory=dict)   # metric -> value per epoch (None: not run)
    test_metrics: Mapping[str, float] = field(default_factory=dict)  # metrics.json (empty without test data)
    exit_code: int = 0                # with workers: the chief's exit code (the chief said its error itself)


def train(config: str | Path | None, overrides: Sequence[str] = (), runs_dir: Path = Path("runs"), *,
          listener: events.Listener = events.ignore, resume: str | None = None, keep_best: bool = False,
          fast_dev_run: bool = False, allow_data_change: bool = False, trust_code: bool = False,
          workers: int | None = None, startup_timeout: float = cluster_mod.STARTUP_TIMEOUT,
          peer_timeout: float = cluster_mod.PEER_TIMEOUT) -> Run:
    """Train the model `config` describes (or continue the run `resume` names) and write a run folder under
    `runs_dir`; `workers`: as a cluster of that many local processes."""
    path = Path(config) if config is not None else None
    runs_dir, sets = Path(runs_dir), list(overrides)
    if path is None and resume is None:
        raise KcliError("give a CONFIG file to train, or --resume RUN to continue a run", key="CONFIG")
    if workers is not None:
        if fast_dev_run:
            raise KcliError("--fast-dev-run checks a config in this process; it does not go with --workers",
                            key="--workers")
        return _launch(path, sets, runs_dir, listener, workers, resume, keep_best, allow_data_change, trust_code,
                       startup_timeout, peer_timeout)
    from kcli.distributed import strategy as distribute
    from kcli.training import train as training

    distribute.LIMITS = distribute.Limits(startup_timeout, peer_timeout)
    if fast_dev_run:
        if path is None or resume is not None:
            raise KcliError("--fast-dev-run checks a CONFIG; it does not go with --resume", key="--fast-dev-run")
        training.fast_dev_run(path, listener, sets, runs_dir)
        return Run(None, "completed")
    request = training.Request(sets, resume, keep_best, allow_data_change, trust_code=trust_code)
    run_dir = training.train(path, runs_dir, listener, request)
    return _finished(run_dir) if run_dir is not None else Run(None, "completed")


def summary(config: str | Path, overrides: Sequence[str] = (), runs_dir: Path = Path("runs"), *,
            plot: Path | None = None, listener: events.Listener = events.ignore) -> ModelSummary:
    """Build the model without data or training; returns its summary (shown to `listener` with its trainable
    variables) and draws it to `plot` when given."""
    from kcli.model import summary as summary_mod
    from kcli.training.prepare import prepare

    if plot is not None:
        summary_mod.check_plot_tools(plot)
    prepared = prepare(Path(config), list(overrides), with_data=False, runs_dir=Path(runs_dir))
    described = summary_mod.describe(prepared.model)
    listener(events.ModelSummaryReady(described, variables=True))
    if plot is not None:
        summary_mod.plot_model(prepared.model, plot)
        listener(events.Note(f"written: {plot}"))
    return described


def _launch(path: Path | None, sets: list[str], runs_dir: Path, listener: events.Listener, n: int,
            resume: str | None, keep_best: bool, allow_data_change: bool, trust_code: bool, startup_timeout: float,
            peer_timeout: float) -> Run:
    """`n` local worker processes of `kcli train` (the chief writes the run); the Run read from its folder."""
    from kcli.distributed.workers import launch

    args = [*([str(path)] if path is not None else []), "--runs-dir", str(runs_dir),
            *(a for s in sets for a in ("--set", s)),
            *(["--set", "distribute=multi_worker"] if resume is None else ["--resume", resume]),
            *(["--keep-best"] if keep_best else []), *(["--allow-data-change"] if allow_data_change else []),
            *(["--trust-code"] if trust_code else []),
            "--startup-timeout", str(startup_timeout), "--peer-timeout", str(peer_timeout)]
    code, run_dir = launch(n, args, listener, peer_timeout)
    if run_dir is None:
        return Run(None, "completed" if code == 0 else "failed", exit_code=code)
    return _finished(run_dir, code)


def _finished(run_dir: Path, exit_code: int = 0) -> Run:
    """The Run as its folder records it: run.json's status, history.json by column, metrics.json."""
    from kcli.run import layout, records

    record = records.read_json(run_dir / layout.RUN_JSON)
    rows = records.read_json(run_dir / layout.HISTORY_JSON)
    rows = [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []
    columns = [c for c in dict.fromkeys(k for row in rows for k in row) if c != "epoch"]
    metrics = records.read_json(run_dir / layout.METRICS)
    return Run(run_dir, record.get("status", "unknown") if isinstance(record, dict) else "unknown",
               {c: [row.get(c) for row in rows] for c in columns},
               {k: float(v) for k, v in metrics.items()} if isinstance(metrics, dict) else {}, exit_code)
