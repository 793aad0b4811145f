"""Finding runs: a run directory by path, name or `latest`, the overview of `kcli runs`, and a completed run
opened for evaluate, predict, export and serve (its record and config, no TensorFlow needed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kcli.errors import RunError
from kcli.files import readable
from kcli.run.layout import CONFIG, METRICS, RUN_JSON
from kcli.run.records import FINISHED, read_history, read_json, read_record

if TYPE_CHECKING:
    from kcli.config.code import Registry
    from kcli.config.model_io import Ports
    from kcli.config.models import Config


def list_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """One summary per run directory under runs_dir (newest first)."""
    found = []
    for run_json in runs_dir.glob(f"*/{RUN_JSON}"):
        record = read_json(run_json)
        run_dir = run_json.parent
        if not isinstance(record, dict):   # a damaged run.json: listed as such, the other runs still are
            found.append({"dir": run_dir, "record": {}, "history": [], "metrics": {}, "damaged": True})
            continue
        history = read_history(run_dir)
        metrics = read_json(run_dir / METRICS)
        metrics = metrics if isinstance(metrics, dict) else {}
        found.append({"dir": run_dir, "record": record, "history": history, "metrics": metrics})
    return sorted(found, key=lambda r: str(r["record"].get("started") or ""), reverse=True)


def overview(runs_dir: Path, now: datetime | None = None) -> list[tuple[str, ...]]:
    """Rows for `kcli runs`: name, status, epochs, best validation value, test metric, age."""
    now = now or datetime.now(UTC)
    rows = []
    for run in list_runs(runs_dir):
        try:
            if not run.get("damaged"):
                rows.append(_overview_row(run, now))
                continue
        except (TypeError, ValueError, KeyError, AttributeError, RecursionError):   # hand-edited or damaged files
            pass
        rows.append((run["dir"].name, "damaged", "", "", "", ""))
    return rows


def _overview_row(run: dict[str, Any], now: datetime) -> tuple[str, ...]:
    record, history, metrics = run["record"], run["history"], run["metrics"]
    best = record.get("best") or {}
    if best.get("value") is not None:
        best_text = f"{best['monitor']} {best['value']:.4f} (epoch {best['epoch']})"
    else:
        best_text = ""
    test_key = next((k for k in metrics if k != "loss"), "loss") if metrics else None
    test_text = f"{test_key} {metrics[test_key]:.4f}" if test_key else ""
    epochs = f"{record.get('epochs_completed', len(history))}"
    return (run["dir"].name, str(record.get("status", "?")), epochs, best_text, test_text,
            _age(record.get("started"), now))


def _age(started: str | None, now: datetime) -> str:
    if not started:
        return ""
    seconds = max(0, int((now - datetime.fromisoformat(started)).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def find_run(ref: str, runs_dir: Path, key: str = "RUN", resumable: bool = False) -> Path:
    """A run directory from a path, a name under `runs_dir`, or `latest`: the newest completed run (or, with
    `resumable`, the newest run that did not complete)."""
    if ref == "latest":
        return _latest(runs_dir, key, resumable)
    for candidate in (Path(ref), runs_dir / ref):
        if (candidate / RUN_JSON).is_file():
            return candidate
    if Path(ref).is_dir():
        raise RunError(f"{ref} is not a kcli run directory (it has no {RUN_JSON})", key=key)
    raise RunError(f"no run directory {ref!r} (looked in . and {runs_dir}); use a path or `latest`", key=key)


def latest_named(runs_dir: Path, name: str, key: str) -> Path:
    """The newest completed run whose config was named `name` (its directory: name-<timestamp>)."""
    return _latest(runs_dir, key, False, name)


def _latest(runs_dir: Path, key: str, resumable: bool, name: str | None = None) -> Path:
    """Newest by end time (completed) or start time (resumable); the directory name breaks ties."""
    best: tuple[str, str, Path] | None = None
    for run_json in runs_dir.glob(f"{name + '-' if name else ''}*/{RUN_JSON}"):
        record = read_json(run_json)
        if not isinstance(record, dict) or (record.get("status") == FINISHED) == resumable:
            continue
        if name is not None and record.get("name") != name:
            continue
        stamp = str(record.get("started" if resumable else "ended") or "")
        candidate = (stamp, run_json.parent.name, run_json.parent)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    if best is None:
        what = "run that did not complete (nothing to resume)" if resumable else "completed run"
        named = f" named {name!r}" if name else ""
        raise RunError(f"no {what}{named} under {runs_dir}", key=key)
    return best[2]


@dataclass
class FinishedRun:
    """A completed run: its directory, run.json and resolved config."""

    path: Path
    record: dict[str, Any]
    config: Config
    trust_code: bool = False          # --trust-code: run the code in RUN/code/ although this user did not train it
    loaded_from: str | None = None    # which artifact load_model used
    registry: Registry | None = None  # the run's code, locked to it (artifacts.run_registry)

    @property
    def ports(self) -> Ports:
        """The model's inputs (and output names)."""
        from kcli.config import model_io as ports

        return ports.of(self.config.model, self.config.data)

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """The per-example input shape of a one-input model."""
        return self.ports.single_shape


def open_run(ref: str, runs_dir: Path, trust_code: bool = False) -> FinishedRun:
    """Find a completed run and read its record and config (no TensorFlow needed)."""
    from kcli.config import loading as config_mod

    path = find_run(ref, runs_dir)
    record = read_record(path)
    readable.regular(path / CONFIG, "RUN", path, RunError)   # never a FIFO or a file outside the run
    try:
        cfg = config_mod.load(path / CONFIG).config
    except RunError:
        raise
    except Exception as exc:  # a damaged config.yaml: say which run
        raise RunError(f"the run's {CONFIG} cannot be read: {exc}", key="RUN") from None
    return FinishedRun(path, record, cfg, trust_code)
