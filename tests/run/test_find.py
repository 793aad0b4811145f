"""kcli.run.find: a run by path, name or `latest`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kcli.errors import RunError
from kcli.run import find


def _run(runs: Path, folder: str, **record: object) -> Path:
    (runs / folder).mkdir(parents=True)
    (runs / folder / "run.json").write_text(json.dumps(record))
    return runs / folder


def test_a_run_by_path_or_by_name_under_the_runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / "runs"
    run = _run(runs, "a-20261205-100000", status="completed")
    monkeypatch.chdir(tmp_path)
    assert find.find_run(str(run), runs) == run
    assert find.find_run("a-20261205-100000", runs) == runs / "a-20261205-100000"
    (tmp_path / "plain").mkdir()
    with pytest.raises(RunError, match="plain is not a kcli run directory"):
        find.find_run("plain", runs)
    with pytest.raises(RunError, match="no run directory 'nope'") as caught:
        find.find_run("nope", runs, key="--resume")
    assert caught.value.key == "--resume"


def test_latest_named_takes_the_newest_completed_run_of_that_name(tmp_path: Path) -> None:
    _run(tmp_path, "mnist-20261201-000000", name="mnist", status="completed", ended="2026-12-01T00:00:00")
    newest = _run(tmp_path, "mnist-20261202-000000", name="mnist", status="completed", ended="2026-12-02T00:00:00")
    _run(tmp_path, "mnist-20261203-000000", name="mnist", status="failed", ended="2026-12-03T00:00:00")
    _run(tmp_path, "mnist-cnn-20261204-000000", name="mnist-cnn", status="completed", ended="2026-12-04T00:00:00")
    assert find.latest_named(tmp_path, "mnist", "model.init_from") == newest
    with pytest.raises(RunError, match="no completed run named 'cifar'") as caught:
        find.latest_named(tmp_path, "cifar", "model.init_from")
    assert caught.value.key == "model.init_from"


def test_the_overview_row_of_a_run(tmp_path: Path) -> None:
    run = _run(tmp_path, "m-20261205-100000", status="completed", started="2026-12-05T10:00:00+00:00",
               epochs_completed=3, best={"monitor": "val_loss", "value": 0.25, "epoch": 2})
    (run / "metrics.json").write_text(json.dumps({"loss": 0.3, "accuracy": 0.9}))
    from datetime import UTC, datetime

    rows = find.overview(tmp_path, now=datetime(2026, 12, 5, 12, 30, tzinfo=UTC))
    assert rows == [("m-20261205-100000", "completed", "3", "val_loss 0.2500 (epoch 2)", "accuracy 0.9000", "2h ago")]


def test_run_and_files_load_without_tensorflow() -> None:
    """What lists, finds and writes runs is plain Python: `kcli runs` and the unit tests never load TensorFlow."""
    code = ("import sys\n"
            "import kcli.files.atomic, kcli.files.digest, kcli.files.process\n"
            "import kcli.run.layout, kcli.run.records, kcli.run.find, kcli.run.state, kcli.run.trust\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow was imported'\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
