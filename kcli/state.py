"""Training state inside a run directory: per-epoch checkpoints and what `--resume` needs.

checkpoints/last.weights.h5 and best.weights.h5 are for people; checkpoints/state.npz (every model and
optimizer variable, dropout seed states included) and state.json are what makes a resumed run exact.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kcli.errors import RunError
from kcli.runs import FINISHED, atomic_target, load_record, write_json

if TYPE_CHECKING:
    import keras

CHECKPOINTS = "checkpoints"
LAST_WEIGHTS = "last.weights.h5"
BEST_WEIGHTS = "best.weights.h5"
STATE_ARRAYS = "state.npz"      # every model and optimizer variable after the last saved epoch
STATE_JSON = "state.json"       # that epoch, the best monitored value, callback counters


def save_weights(model: keras.Model, path: Path) -> None:
    """model.save_weights, atomically, replacing the previous file."""
    path.parent.mkdir(exist_ok=True)
    with atomic_target(path, replace=True) as tmp:
        model.save_weights(tmp)


def copy_file(src: Path, dest: Path) -> None:
    """Copy a file atomically, replacing `dest`."""
    with atomic_target(dest, replace=True) as tmp:
        shutil.copyfile(src, tmp)


def save_state(run_dir: Path, model: keras.Model, info: dict[str, Any]) -> None:
    """Everything needed to continue exactly: all variables (weights, optimizer slots and step, random-seed
    states) and `info`. The arrays are written before the JSON that names their epoch."""
    import numpy as np

    folder = run_dir / CHECKPOINTS
    folder.mkdir(exist_ok=True)
    values = [np.asarray(v) for v in (*model.variables, *model.optimizer.variables)]
    with atomic_target(folder / STATE_ARRAYS, replace=True) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, *values)
            fh.flush()
            os.fsync(fh.fileno())
    write_json(folder / STATE_JSON, {**info, "variables": len(values)})


def load_state(run_dir: Path, model: keras.Model) -> dict[str, Any]:
    """Put a saved training state back into a freshly built and compiled model; returns its info."""
    import numpy as np

    folder = run_dir / CHECKPOINTS
    try:
        info = json.loads((folder / STATE_JSON).read_text())
        arrays = np.load(folder / STATE_ARRAYS)
    except (OSError, ValueError) as exc:
        raise RunError(f"run {run_dir} has no training state to resume from ({exc})", key="--resume") from None
    model.optimizer.build(model.trainable_variables)
    variables = [*model.variables, *model.optimizer.variables]
    with arrays:
        if len(arrays.files) != len(variables) or info.get("variables") != len(variables):
            raise RunError(f"the saved state of {run_dir} does not fit the model ({len(arrays.files)} arrays, "
                           f"{len(variables)} variables)", key="--resume")
        for i, variable in enumerate(variables):
            variable.assign(arrays[f"arr_{i}"])
    return info


def saved_epoch(run_dir: Path) -> int:
    """The epoch whose state is saved (0 if none)."""
    try:
        return int(json.loads((run_dir / CHECKPOINTS / STATE_JSON).read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def resumable_record(run_dir: Path) -> dict[str, Any]:
    """run.json of a run that may be resumed: not completed, and not still running elsewhere."""
    record = load_record(run_dir, "--resume")
    status = record.get("status")
    if status == FINISHED:
        raise RunError(f"run {run_dir} is completed; there is nothing to resume", key="--resume")
    if status == "running" and record.get("host") == platform.node() and _alive(record.get("pid")):
        raise RunError(f"run {run_dir} is still running (pid {record.get('pid')})", key="--resume")
    return record


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_partial_files(run_dir: Path) -> None:
    """Temporary files left by a killed process (never under a final name)."""
    for folder in (run_dir, run_dir / CHECKPOINTS):
        for tmp in folder.glob(".tmp-*"):
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
