"""Finding runs and the trust store, without TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kcli.errors import RunError
from kcli.run import find, trust


def test_latest_breaks_ties_within_one_second(tmp_path: Path) -> None:
    for name, ended in (("a-20260101-000000", "2026-01-01T00:00:00.000002+00:00"),
                        ("b-20260101-000000", "2026-01-01T00:00:00.000001+00:00"),
                        ("c-20260101-000000", None)):
        (tmp_path / name).mkdir()
        status = "completed" if ended else "interrupted"
        (tmp_path / name / "run.json").write_text(json.dumps({"status": status, "ended": ended,
                                                              "started": "2026-01-01T00:00:00+00:00"}))
    assert find.find_run("latest", tmp_path).name == "a-20260101-000000"
    assert find.find_run("latest", tmp_path, resumable=True).name == "c-20260101-000000"
    with pytest.raises(RunError, match="no completed run"):
        find.find_run("latest", tmp_path / "c-20260101-000000")


def test_trust_store_remembers_hashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCLI_HOME", str(tmp_path / "home"))
    run_dir = tmp_path / "run"
    (run_dir / "code").mkdir(parents=True)
    code = run_dir / "code" / "m.py"
    code.write_text("X = 1\n")
    record = {"imports": {"files": ["code/m.py"], "modules": ["some.module"]}}
    with pytest.raises(RunError, match="code/m.py, module some.module"):
        trust.allowed_code(run_dir, record, trust_code=False)
    assert trust.remember([code], ["some.module"]) is None
    assert trust.allowed_code(run_dir, record, trust_code=False).files == [code.resolve()]
    code.write_text("X = 2\n")
    with pytest.raises(RunError, match="code/m.py"):
        trust.allowed_code(run_dir, record, trust_code=False)


def test_runs_overview_survives_damaged_records(tmp_path: Path) -> None:
    for name, record in (("list", [1, 2]), ("strange", {"status": "completed", "best": {"value": "high"}}),
                         ("fine", {"status": "completed", "started": "2026-01-01T00:00:00+00:00"})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text(json.dumps(record))
    rows = {row[0]: row for row in find.overview(tmp_path)}
    assert set(rows) == {"list", "strange", "fine"} and rows["fine"][1] == "completed"
    assert rows["strange"][1] == "damaged" and rows["list"][1] == "damaged"   # listed as such, not hidden
