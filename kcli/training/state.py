"""Training state inside a run directory: per-epoch checkpoints and what `--resume` needs.

checkpoints/last.weights.h5 and best.weights.h5 are for people; checkpoints/state.npz (every model and
optimizer variable, dropout seed states included, and what epoch they belong to) is what makes a resumed
run exact.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kcli.errors import RunError
from kcli.run.artifacts import ensure_space
from kcli.run.folder import FINISHED, atomic_target, load_record, read_json, write_json

if TYPE_CHECKING:
    import keras

CHECKPOINTS = "checkpoints"
LAST_WEIGHTS = "last.weights.h5"
BEST_WEIGHTS = "best.weights.h5"
STATE_ARRAYS = "state.npz"      # every model and optimizer variable after the last saved epoch + info
STATE_JSON = "state.json"       # the info of state.npz, readable


def variables(model: keras.Model) -> list[Any]:
    """Every model and optimizer variable (weights, optimizer slots and step, random-seed states) of a model
    whose optimizer is built (by fit, or by load_state for a fresh model)."""
    return [*model.variables, *model.optimizer.variables]


def snapshot(model: keras.Model) -> list[np.ndarray]:
    """The values of every variable, copied to numpy (~2 ms for the digits MLP)."""
    return [np.array(v) for v in variables(model)]


def save_weights(model: keras.Model, path: Path, values: list[np.ndarray] | None = None) -> None:
    """model.save_weights, atomically, replacing the previous file. With `values` (a snapshot), the file holds
    those values instead of the model's current ones, which are put back afterwards."""
    path.parent.mkdir(exist_ok=True)
    ensure_space(path.parent, sum(v.nbytes for v in values or snapshot(model)))
    current = snapshot(model) if values is not None else None
    try:
        if values is not None:
            _assign(model, values)
        with atomic_target(path, replace=True) as tmp:
            model.save_weights(tmp)
    finally:
        if current is not None:
            _assign(model, current)


def _assign(model: keras.Model, values: list[np.ndarray]) -> None:
    for variable, value in zip(variables(model), values, strict=True):
        variable.assign(value)


def copy_file(src: Path, dest: Path) -> None:
    """Copy a file atomically, replacing `dest`."""
    with atomic_target(dest, replace=True) as tmp:
        shutil.copyfile(src, tmp)


def save_state(run_dir: Path, values: list[np.ndarray], info: dict[str, Any],
               best: list[np.ndarray] | None = None, extra: dict[str, np.ndarray] | None = None) -> None:
    """Everything needed to continue exactly, in one atomically replaced file (checkpoints/state.npz): a
    snapshot of all variables, `info` (epoch, best value, callback counters) and, when best.weights.h5 is
    behind, the snapshot of the best epoch. checkpoints/state.json repeats `info` for people."""
    folder = run_dir / CHECKPOINTS
    folder.mkdir(exist_ok=True)
    info = {**info, "variables": len(values)}
    ensure_space(folder, sum(v.nbytes for v in [*values, *(best or []), *(extra or {}).values()]))
    arrays = {f"arr_{i}": v for i, v in enumerate(values)}
    arrays.update({f"best_{i}": v for i, v in enumerate(best or [])})
    arrays.update(extra or {})   # arrays user callbacks hold (cb<i>_w<j>)
    with atomic_target(folder / STATE_ARRAYS, replace=True) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, info=np.array(json.dumps(info)), **arrays)
            fh.flush()
            os.fsync(fh.fileno())
    write_json(folder / STATE_JSON, info)


def load_state(run_dir: Path, model: keras.Model) -> dict[str, Any]:
    """Put a saved training state back into a freshly built and compiled model; returns its info, with the
    best epoch's snapshot as `best_values` when the state holds one."""
    model.optimizer.build(model.trainable_variables)   # its slots exist only after a first step otherwise
    wanted = variables(model)
    try:
        with np.load(run_dir / CHECKPOINTS / STATE_ARRAYS) as arrays:
            info = json.loads(str(arrays["info"]))
            if info.get("variables") != len(wanted):
                raise RunError(f"the saved state of {run_dir} does not fit the model ({info.get('variables')} "
                               f"arrays, {len(wanted)} variables)", key="--resume")
            values = [arrays[f"arr_{i}"] for i in range(len(wanted))]
            if "best_0" in arrays.files:
                info["best_values"] = [arrays[f"best_{i}"] for i in range(len(wanted))]
            elif info.get("best_epoch") == info.get("epoch"):
                info["best_values"] = values   # best.weights.h5 may not have been written before the stop
            info["callback_arrays"] = {k: arrays[k] for k in arrays.files if k.startswith("cb")}
    except RunError:
        raise
    except Exception as exc:  # missing, truncated or damaged (numpy raises OSError/ValueError/BadZipFile/...)
        raise RunError(f"run {run_dir} has no usable training state to resume from ({type(exc).__name__}: "
                       f"{' '.join(str(exc).split())[:200]})", key="--resume") from None
    _assign(model, values)
    return info


def saved_epoch(run_dir: Path) -> int:
    """The epoch whose state is saved (0 if none)."""
    try:
        return int(read_json(run_dir / CHECKPOINTS / STATE_JSON)["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def resumable_record(run_dir: Path) -> dict[str, Any]:
    """run.json of a run that may be resumed: not completed, and not still running elsewhere."""
    record = load_record(run_dir, "--resume")
    status = record.get("status")
    if status == FINISHED:
        raise RunError(f"run {run_dir} is completed; there is nothing to resume", key="--resume")
    if status == "running" and record.get("host") == platform.node() and alive(record.get("pid")):
        raise RunError(f"run {run_dir} is still running (pid {record.get('pid')})", key="--resume")
    return record


def alive(pid: Any) -> bool:
    """Whether a process with this pid exists (this process itself counts as not: it is not another run)."""
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
