"""The run directory: its name, its layout, atomic writes, and its status record.

Every file a run writes goes through a temporary name and an atomic rename, so a run that dies
never leaves a half-written file under a final name. A run directory is never reused.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kcli import __version__
from kcli.errors import KcliError, RunError
from kcli.files import readable

if TYPE_CHECKING:
    from kcli.config.code import Registry
    from kcli.config.model_io import Ports
    from kcli.config.models import Config

RUN_JSON = "run.json"
CONFIG = "config.yaml"
SUMMARY = "summary.txt"
HISTORY_CSV = "history.csv"
HISTORY_JSON = "history.json"
METRICS = "metrics.json"
MAX_JSON = 64 << 20   # bytes of a run's JSON file kcli parses (a history of 100,000 epochs is ~20 MiB)
FINISHED = "completed"
CODE_DIR = "code"
# Saving order matters: Keras 3.15's .h5 save strips the optimizer from the live model
# (keras-team/keras PR 23475), so everything else is written before model.h5.
ARTIFACTS: dict[str, str] = {
    "weights": "model.weights.h5",
    "keras": "model.keras",
    "savedmodel": "saved_model",
    "h5": "model.h5",
}


def new_run_dir(runs_dir: Path, name: str, now: datetime | None = None) -> Path:
    """Create `<runs_dir>/<name>-<YYYYmmdd-HHMMSS>` (or -2, -3, ...): never an existing directory."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create the runs directory {runs_dir}: {exc}", key="--runs-dir") from None
    base = f"{name}-{stamp}"
    for n in range(1, 10_000):
        path = runs_dir / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:   # read-only, full, or not a directory
            raise RunError(f"cannot create a run directory in {runs_dir}: {exc.strerror or exc}",
                           key="--runs-dir") from None
        return path
    raise RunError(f"too many runs named {base} in {runs_dir}", key="--runs-dir")


def writable_folder(folder: Path, key: str, error: type[KcliError] = RunError) -> None:
    """`folder` exists and a file can be created in it (tried: permissions, a read-only file system, /sys), so
    an output is refused before the work, not half-way; one line naming `key` and the OS's reason otherwise."""
    if not folder.is_dir():
        raise error(f"the folder {folder} does not exist; create it first", key=key)
    probe = folder / f".tmp-{uuid.uuid4().hex[:12]}-kcli-write-check"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise error(f"cannot write in {folder} ({reason}); choose a folder you can write", key=key) from None
    os.close(fd)
    probe.unlink()


@contextlib.contextmanager
def atomic_target(path: Path, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `path` (same suffix); rename it to `path` only if the block succeeds.

    An existing `path` is refused unless `replace` (a file the user asked to overwrite).
    """
    if path.exists() and not replace:
        raise RunError(f"refusing to overwrite {path}")
    if path.is_dir():
        raise RunError(f"{path} is a directory")
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically as UTF-8 (see write_bytes)."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """Write a file atomically (temp file, fsync, rename); replaces an earlier version of the same file.
    On any failure (a full disk) the temporary file is removed and the earlier version stays."""
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{path.name}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically."""
    write_text(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _now() -> str:
    # microseconds: `latest` compares these, and two runs may well end within one second
    return datetime.now(UTC).isoformat(timespec="microseconds")


def versions() -> dict[str, str]:
    """Versions that shape a run's numbers."""
    import keras
    import numpy
    import tensorflow as tf
    return {"kcli": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}


class RunRecord:
    """run.json: status (running / completed / failed / interrupted), times, versions, artifacts."""

    def __init__(self, run_dir: Path, data: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.data = data

    @classmethod
    def start(cls, run_dir: Path, name: str, seed: int) -> RunRecord:
        """Record a run that has started."""
        record = cls(run_dir, {"name": name, "status": "running", "started": _now(), "ended": None,
                               "pid": os.getpid(), "host": platform.node(),
                               "seed": seed, "epochs_completed": 0, "versions": versions(),
                               "artifacts": {}, "imports": {"files": [], "modules": []}, "error": None})
        record.save()
        return record

    @classmethod
    def resume(cls, run_dir: Path, data: dict[str, Any], epoch: int) -> RunRecord:
        """Mark an interrupted run as running again from `epoch`."""
        record = cls(run_dir, data)
        record.update(status="running", ended=None, error=None, pid=os.getpid(), host=platform.node(),
                      epochs_completed=epoch, resumed=[*data.get("resumed", []), {"at": _now(), "epoch": epoch}])
        return record

    def update(self, **fields: Any) -> None:
        """Change fields and rewrite run.json."""
        self.data.update(fields)
        self.save()

    def finish(self, status: str, error: str | None = None) -> None:
        """Record how the run ended."""
        self.update(status=status, ended=_now(), error=error)

    def save(self) -> None:
        """Write run.json atomically."""
        write_json(self.run_dir / RUN_JSON, self.data)


def copy_code(run_dir: Path, sources: Mapping[Path, bytes]) -> list[str]:
    """Write the user's imported .py files into RUN/code/ so the run can be loaded on its own: the bytes that
    ran (imports.Registry.sources), not the file as it is now (it may have been edited while training)."""
    if not sources:
        return []
    code = run_dir / CODE_DIR
    code.mkdir(exist_ok=True)
    copied: list[str] = []
    for src, source in sources.items():
        dest = code / src.name
        n = 2
        while dest.exists():
            dest, n = code / f"{src.stem}_{n}{src.suffix}", n + 1
        write_bytes(dest, source)
        copied.append(str(dest.relative_to(run_dir)))
    return copied


def history_columns(rows: list[dict[str, Any]], validation: bool) -> list[str]:
    """epoch, the training metrics, then val_<metric> for each (when there is validation data)."""
    seen: list[str] = []
    for row in rows:
        seen += [k for k in row if k not in seen and k != "epoch"]
    train = [k for k in seen if not k.startswith("val_")]
    val = [f"val_{k}" for k in train if k != "learning_rate"] if validation else []
    return ["epoch", *train, *val, *[k for k in seen if k not in train and k not in val]]


def write_history(run_dir: Path, rows: list[dict[str, Any]], validation: bool) -> None:
    """history.csv and history.json: one row per epoch, empty validation cells where none ran."""
    columns = history_columns(rows, validation)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(run_dir / HISTORY_CSV, buf.getvalue())
    write_json(run_dir / HISTORY_JSON, [{c: row.get(c) for c in columns} for row in rows])


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """history.json rows (empty if none yet); missing validation values are dropped."""
    rows = read_json(run_dir / HISTORY_JSON)
    if not isinstance(rows, list):
        return []
    return [{k: v for k, v in row.items() if v is not None} for row in rows if isinstance(row, dict)]


# ---- listing runs ----

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


def read_json(path: Path) -> Any:
    """A JSON file of a run directory, parsed (only a regular file inside it: never a FIFO or a link out); None
    when it is missing, unreadable, larger than MAX_JSON or damaged (not JSON, or nested too deep to parse)."""
    head = readable.read_head(path, MAX_JSON + 1, path.parent)
    if head is None or head[1] > MAX_JSON:
        return None
    try:
        return json.loads(head[0].decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return None


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


# ---- reading a finished run back (evaluate / predict / export) ----


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


def load_record(run_dir: Path, key: str) -> dict[str, Any]:
    """run.json as a dict, or a RunError naming `key`."""
    why = readable.problem(run_dir / RUN_JSON, run_dir)   # a FIFO or a link out of the run is never opened
    if why is not None:
        raise RunError(f"{run_dir / RUN_JSON} {why}", key=key)
    record = read_json(run_dir / RUN_JSON)
    if not isinstance(record, dict):
        raise RunError(f"{run_dir / RUN_JSON} is damaged or unreadable (not a JSON object)", key=key)
    return record


def read_record(run_dir: Path) -> dict[str, Any]:
    """run.json of a run that finished successfully (anything else is refused with its status)."""
    record = load_record(run_dir, "RUN")
    status = record.get("status")
    if status != FINISHED:
        why = {"running": "is still running, or was killed before it finished",
               "failed": f"failed ({record.get('error')})",
               "interrupted": "was interrupted before it finished"}.get(status, f"has status {status!r}")
        raise RunError(f"run {run_dir} {why}; only completed runs can be used", key="RUN")
    return record
