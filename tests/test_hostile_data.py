"""Hostile or damaged data files and stores: each is one line naming the file (or key) before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.helpers import assert_user_error, tiny_project


@pytest.mark.parametrize("uri", ["file:///etc", "sqlite:///{tmp}/text.db", "mysql://kcli:pw@127.0.0.1:9/none"])
def test_a_tracking_store_that_cannot_be_used_is_one_line_before_the_run_folder(tmp_path: Path, uri: str) -> None:
    pytest.importorskip("mlflow")
    (tmp_path / "text.db").write_text("not a database\n")
    uri = uri.format(tmp=tmp_path)
    config = tiny_project(tmp_path, tracking={"mlflow": {"uri": uri}})
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert_user_error(result, f"tracking.mlflow.uri: cannot log to MLflow at {uri}")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
