"""kcli.run.state: what `--resume` reads from a run directory before it builds a model."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kcli.errors import RunError
from kcli.run import state


def _run(run_dir: Path, **record: object) -> Path:
    run_dir.mkdir(exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps(record))
    return run_dir


def _state(run_dir: Path, info: dict[str, object]) -> None:
    """checkpoints/state.npz as training/checkpoints.save_state writes it (its info as a JSON string)."""
    (run_dir / state.CHECKPOINTS).mkdir(exist_ok=True)
    with open(run_dir / state.CHECKPOINTS / state.STATE_ARRAYS, "wb") as fh:
        np.savez(fh, info=np.array(json.dumps(info)), arr_0=np.zeros(3))


def test_saved_epoch(tmp_path: Path) -> None:
    assert state.saved_epoch(tmp_path) == 0
    _state(tmp_path, {"epoch": 7, "variables": 1})
    assert state.saved_epoch(tmp_path) == 7
    _state(tmp_path, {"epoch": "seven"})
    assert state.saved_epoch(tmp_path) == 0
    (tmp_path / state.CHECKPOINTS / state.STATE_ARRAYS).write_bytes(b"PK\x03\x04 cut short")
    assert state.saved_epoch(tmp_path) == 0


def test_saved_epoch_is_the_state_resume_reads_not_its_copy_for_people(tmp_path: Path) -> None:
    # killed after state.npz of epoch 8 was replaced and before state.json followed: epoch 8 is what --resume
    # restores, so a sweep resumes the trial (it used to train it again from scratch when the json lagged)
    _state(tmp_path, {"epoch": 8, "variables": 1})
    (tmp_path / state.CHECKPOINTS / state.STATE_JSON).write_text('{"epoch": 7, "variables": 1}')
    assert state.saved_epoch(tmp_path) == 8
    (tmp_path / state.CHECKPOINTS / state.STATE_JSON).unlink()
    assert state.saved_epoch(tmp_path) == 8


def test_a_completed_or_still_running_run_is_not_resumed(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="is completed; there is nothing to resume") as caught:
        state.resumable_record(_run(tmp_path / "done", status="completed"))
    assert caught.value.key == "--resume"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = _run(tmp_path / "busy", status="running", host=platform.node(), pid=child.pid)
        with pytest.raises(RunError, match=f"is still running \\(pid {child.pid}\\)"):
            state.resumable_record(running)
    finally:
        child.kill()
        child.wait()
    assert state.resumable_record(running)["pid"] == child.pid   # its process is gone: it was killed
    elsewhere = _run(tmp_path / "other", status="running", host=platform.node() + "-other", pid=1)
    assert state.resumable_record(elsewhere)["status"] == "running"


def test_remove_partial_files(tmp_path: Path) -> None:
    (tmp_path / state.CHECKPOINTS).mkdir()
    leftovers = [tmp_path / ".tmp-0123456789ab-model.keras",
                 tmp_path / state.CHECKPOINTS / ".tmp-ba9876543210-state.npz"]
    for path in leftovers:
        path.write_bytes(b"half")
    (tmp_path / ".tmp-aaaaaaaaaaaa-saved_model" / "variables").mkdir(parents=True)
    (tmp_path / "history.csv").write_text("epoch\n")
    state.remove_partial_files(tmp_path)
    assert sorted(p.name for p in tmp_path.rglob("*")) == [state.CHECKPOINTS, "history.csv"]
