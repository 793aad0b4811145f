"""The training state files of a run directory: where checkpoints live, which epoch is saved, whether a run may
be resumed, and the partial files a killed process left.

checkpoints/last.weights.h5 and best.weights.h5 are for people; checkpoints/state.npz (every model and
optimizer variable, dropout seed states included, and what epoch they belong to) is what makes a resumed
run exact. Writing and reading those variables is Keras's part (training/checkpoints.py).
"""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from kcli.errors import RunError
from kcli.files.atomic import TMP_PREFIX
from kcli.files.process import alive
from kcli.run.records import FINISHED, load_record

CHECKPOINTS = "checkpoints"
LAST_WEIGHTS = "last.weights.h5"
BEST_WEIGHTS = "best.weights.h5"
STATE_ARRAYS = "state.npz"      # every model and optimizer variable after the last saved epoch + info
STATE_JSON = "state.json"       # the info of state.npz, readable


def saved_epoch(run_dir: Path) -> int:
    """The epoch whose state is saved (0 if none), from state.npz, the file `--resume` reads: state.json, its copy
    for people, is written after it, so a kill between the two leaves the json an epoch behind (or missing)."""
    try:
        with np.load(run_dir / CHECKPOINTS / STATE_ARRAYS, allow_pickle=False) as arrays:
            return int(json.loads(str(arrays["info"]))["epoch"])
    except Exception:  # missing, truncated or damaged (numpy raises OSError/ValueError/BadZipFile/KeyError/...)
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


def remove_partial_files(run_dir: Path) -> None:
    """Temporary files left by a killed process (never under a final name)."""
    for folder in (run_dir, run_dir / CHECKPOINTS):
        for tmp in folder.glob(f"{TMP_PREFIX}*"):
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
