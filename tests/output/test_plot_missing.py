"""`kcli plot A B --metric M` where a run lacks M: the others are drawn, the missing one named (no TensorFlow:
the runs are folders with a run.json and a history.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.helpers import assert_user_error, capture_figures


def _run(runs: Path, name: str, rows: list[dict[str, float]]) -> Path:
    folder = runs / name
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"name": name, "status": "completed"}))
    (folder / "history.json").write_text(json.dumps([{"epoch": i + 1, **r} for i, r in enumerate(rows)]))
    return folder


def test_a_run_without_the_metric_is_named_and_not_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / "runs"
    a = _run(runs, "price-a", [{"loss": 3.0, "val_mae": 2.0}, {"loss": 2.0, "val_mae": 1.5}])
    b = _run(runs, "price-[b]", [{"loss": 3.1}, {"loss": 2.2}])   # trained without validation
    c = _run(runs, "price-c", [{"loss": 2.9, "val_mae": 2.1}, {"loss": 1.9, "val_mae": None}])
    figures = capture_figures(monkeypatch)
    out = tmp_path / "mae.png"
    result = run_cli("plot", a, b, c, "--metric", "val_mae", "--output", out)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.strip() == "warning: price-[b] did not log 'val_mae': not drawn"
    assert out.read_bytes().startswith(b"\x89PNG")
    ax = figures[0].axes[0]
    assert ax.get_title() == "val_mae of 2 runs"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["price-a", "price-c"]
    assert [list(line.get_ydata()) for line in ax.get_lines()] == [[2.0, 1.5], [2.1]]


def test_no_run_with_the_metric_is_still_an_error(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    a = _run(runs, "a", [{"loss": 1.0}])
    b = _run(runs, "b", [{"loss": 1.0, "val_loss": None}])
    assert_user_error(run_cli("plot", a, b, "--metric", "val_mae"), "--metric: no run logged 'val_mae'")
    assert_user_error(run_cli("plot", a, b, "--metric", "val_loss", "--output", tmp_path / "v.png"),
                      "no run logged a value of 'val_loss'")


def test_a_run_without_a_history_is_named_and_the_others_drawn(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / "runs"
    a = _run(runs, "a", [{"loss": 1.0}, {"loss": 0.5}])
    failed = _run(runs, "failed", [])
    (failed / "history.json").unlink()   # a run that failed in its first epoch (NaN loss) writes none
    figures = capture_figures(monkeypatch)
    result = run_cli("plot", a, failed, "--output", tmp_path / "p.png")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.strip() == "warning: failed has no readable history.json (no epoch finished?): not drawn"
    assert figures[0].axes[0].get_title() == "loss of 1 run"
    assert_user_error(run_cli("plot", failed, "--output", tmp_path / "q.png"), "cannot read")
