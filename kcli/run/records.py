"""What a run directory records: run.json (status, times, versions, artifacts) and the per-epoch history, written
atomically, and the run's JSON files read back safely (only regular files inside the run, of bounded size)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kcli import __version__
from kcli.errors import RunError
from kcli.files import atomic, readable
from kcli.run.layout import HISTORY_CSV, HISTORY_JSON, RUN_JSON

MAX_JSON = 64 << 20   # bytes of a run's JSON file kcli parses (a history of 100,000 epochs is ~20 MiB)
FINISHED = "completed"


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (numpy scalars and arrays as numbers and lists)."""
    atomic.write_text(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):   # a numpy scalar (or a one-value array: recorded as its value)
        with contextlib.suppress(ValueError):   # an array of several values has no single item
            return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


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
    atomic.write_text(run_dir / HISTORY_CSV, buf.getvalue())
    write_json(run_dir / HISTORY_JSON, [{c: row.get(c) for c in columns} for row in rows])


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """history.json rows (empty if none yet); missing validation values are dropped."""
    rows = read_json(run_dir / HISTORY_JSON)
    if not isinstance(rows, list):
        return []
    return [{k: v for k, v in row.items() if v is not None} for row in rows if isinstance(row, dict)]
