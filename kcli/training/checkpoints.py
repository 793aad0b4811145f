"""Keras's part of a run's training state: every model and optimizer variable snapshotted, saved into the run
directory's checkpoints (weights files, state.npz) and put back into a fresh model for an exact `--resume`.

Where those files live and what `--resume` checks before it builds a model is the run directory's part
(run/state.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kcli.errors import RunError
from kcli.files import atomic
from kcli.run.artifacts import ensure_space
from kcli.run.records import write_json
from kcli.run.state import CHECKPOINTS, STATE_ARRAYS, STATE_JSON

if TYPE_CHECKING:
    import keras


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
        with atomic.target(path, replace=True) as tmp:
            model.save_weights(tmp)
    finally:
        if current is not None:
            _assign(model, current)


def _assign(model: keras.Model, values: list[np.ndarray]) -> None:
    for variable, value in zip(variables(model), values, strict=True):
        variable.assign(value)


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
    with atomic.target(folder / STATE_ARRAYS, replace=True) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, info=np.array(json.dumps(info)), **arrays)
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
