"""kcli.api.train: the same run as `kcli train`, told as events, with the same errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kcli import api, events
from kcli.errors import ConfigError
from tests.conftest import run_cli
from tests.helpers import assert_same_run, assert_user_error, tiny_project, train_ok


def test_api_train_is_the_run_kcli_train_writes(tmp_path: Path) -> None:
    config = tiny_project(tmp_path)
    heard = events.Collected()
    run = api.train(config, runs_dir=tmp_path / "api-runs", listener=heard)
    by_cli = train_ok(config, tmp_path / "cli-runs")

    assert run.path is not None and run.path.parent == tmp_path / "api-runs" and run.status == "completed"
    assert_same_run(run.path, by_cli)   # history.json to 1e-6 and the final weights
    rows = json.loads((by_cli / "history.json").read_text())
    assert list(run.history) == [k for k in rows[0] if k != "epoch"]
    for key, values in run.history.items():
        assert values == pytest.approx([row[key] for row in rows], abs=1e-6), key
    assert run.test_metrics == pytest.approx(json.loads((by_cli / "metrics.json").read_text()), abs=1e-6)

    started = heard.of(events.TrainingStarted)
    assert [(e.epochs, e.steps, e.initial_epoch) for e in started] == [(2, 2, 0)]   # 48 rows, batch 32
    assert [e.epoch for e in heard.of(events.EpochEnd)] == [0, 1]
    assert [e.logs["loss"] for e in heard.of(events.EpochEnd)] == pytest.approx(run.history["loss"], abs=1e-6)
    assert heard.of(events.RunFolder) == [events.RunFolder(run.path, "completed")]
    assert isinstance(heard.events[-1], events.RunFolder)


def test_a_bad_key_raises_the_error_the_cli_prints(tmp_path: Path) -> None:
    config = tiny_project(tmp_path)
    line = assert_user_error(run_cli("train", config, "--runs-dir", tmp_path / "runs", "--set", "fit.epochz=3"),
                             "fit.epochz")
    with pytest.raises(ConfigError) as raised:
        api.train(config, ["fit.epochz=3"], tmp_path / "runs")
    assert f"error: {raised.value}" == line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
