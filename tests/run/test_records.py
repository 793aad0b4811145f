"""kcli.run.records: run.json and the history, written atomically and read back safely."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from kcli.errors import RunError
from kcli.run import records
from kcli.run.layout import HISTORY_CSV, RUN_JSON


def test_json_holds_numpy_values_and_reads_back(tmp_path: Path) -> None:
    records.write_json(tmp_path / "metrics.json", {"loss": np.float32(0.5), "ids": np.arange(3), "path": tmp_path})
    assert records.read_json(tmp_path / "metrics.json") == {"loss": 0.5, "ids": [0, 1, 2], "path": str(tmp_path)}


def test_read_json_is_none_for_anything_but_a_small_json_file_in_the_run(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "damaged.json").write_text('{"status": ')
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    os.mkfifo(tmp_path / "pipe.json")
    (tmp_path / "big.json").write_text(json.dumps({"x": "y" * 2000}))
    monkeypatch.setattr(records, "MAX_JSON", 1000)
    for name in ("damaged.json", "deep.json", "pipe.json", "big.json", "missing.json"):
        assert records.read_json(tmp_path / name) is None, name


def _record(run_dir: Path, **fields: object) -> Path:
    run_dir.mkdir(exist_ok=True)
    (run_dir / RUN_JSON).write_text(json.dumps(fields))
    return run_dir


def test_a_run_record_updates_run_json(tmp_path: Path) -> None:
    record = records.RunRecord(tmp_path, {"status": "running", "ended": None})
    record.update(epochs_completed=3)
    record.finish("interrupted", "stopped by Ctrl-C")
    saved = records.load_record(tmp_path, "RUN")
    assert saved["status"] == "interrupted" and saved["error"] == "stopped by Ctrl-C" and saved["epochs_completed"] == 3
    assert saved["ended"] is not None


def test_resume_marks_the_run_running_again(tmp_path: Path) -> None:
    data = {"status": "interrupted", "ended": "then", "error": "killed", "resumed": [{"epoch": 1}]}
    records.RunRecord.resume(tmp_path, data, 4)
    saved = records.load_record(tmp_path, "--resume")
    assert (saved["status"], saved["ended"], saved["error"], saved["epochs_completed"]) == ("running", None, None, 4)
    assert saved["pid"] == os.getpid() and [r["epoch"] for r in saved["resumed"]] == [1, 4]


def test_load_record_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="does not exist") as caught:
        records.load_record(tmp_path, "--resume")
    assert caught.value.key == "--resume"
    (tmp_path / RUN_JSON).write_text("[1, 2]")
    with pytest.raises(RunError, match="damaged or unreadable"):
        records.load_record(tmp_path, "RUN")


@pytest.mark.parametrize(("status", "why"), [("running", "is still running, or was killed before it finished"),
                                             ("failed", "failed (disk full)"),
                                             ("interrupted", "was interrupted before it finished"),
                                             ("odd", "has status 'odd'")])
def test_only_completed_runs_are_read_as_finished(tmp_path: Path, status: str, why: str) -> None:
    run = _record(tmp_path / "r", status=status, error="disk full")
    with pytest.raises(RunError, match="only completed runs can be used") as caught:
        records.read_record(run)
    assert why in caught.value.message
    assert records.read_record(_record(tmp_path / "done", status="completed"))["status"] == "completed"


def test_history_has_a_validation_column_per_metric(tmp_path: Path) -> None:
    rows = [{"epoch": 1, "loss": 0.9, "accuracy": 0.5, "learning_rate": 0.01},
            {"epoch": 2, "loss": 0.7, "accuracy": 0.6, "learning_rate": 0.01, "val_loss": 0.8, "val_accuracy": 0.55}]
    records.write_history(tmp_path, rows, validation=True)
    assert (tmp_path / HISTORY_CSV).read_text().splitlines() == [
        "epoch,loss,accuracy,learning_rate,val_loss,val_accuracy",
        "1,0.9,0.5,0.01,,",
        "2,0.7,0.6,0.01,0.8,0.55"]
    assert records.read_history(tmp_path) == rows   # the empty validation cells of epoch 1 are dropped again
    assert records.read_history(tmp_path / "none") == []
