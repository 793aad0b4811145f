"""Pieces of `kcli report` that need no run (kcli.output.report)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

from kcli.output import report
from kcli.output.report import _size


@pytest.mark.parametrize("n,shown", [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
                                     (1024**2 - 1, "1024.0 KiB"), (1024**2, "1.0 MiB"), (5 * 1024**3, "5.0 GiB"),
                                     (3000 * 1024**3, "3000.0 GiB")])
def test_sizes_are_shown_in_binary_units_up_to_gib(n: int, shown: str) -> None:
    assert _size(n) == shown


def test_evaluation_scores_are_shown_escaped_and_damaged_ones_left_out(tmp_path: Path) -> None:
    """Scores from eval-*.json (written by kcli evaluate, perhaps edited by hand) are data: escaped, and a value
    of the wrong type leaves its part out instead of breaking the page."""
    hostile = "<img src=x onerror=alert(1)>"
    (tmp_path / "eval-test.json").write_text(json.dumps({"data": "test", "examples": 3, "scores": {
        "examples": 3, "positive_class": hostile, "roc_auc": 0.75, "average_precision": "0.9<b>",
        "calibration": {"of": hostile, "bins": 10, "ece": 0.125, "table": [{"low": 0.0, "count": hostile}, 7]},
        "thresholds": "not a list", "per_class": [{"class": hostile, "roc_auc": None}]}}))
    (tmp_path / "eval-other.json").write_text(json.dumps({"scores": {"calibration": [1, 2], "mae": 0.5}}))
    page = report.page(tmp_path, {"status": "completed"})
    section = page[page.index("Evaluation scores"):]
    assert hostile not in page and html.escape(hostile, quote=True) in section
    assert "0.7500" in section and "0.1250" in section and "ECE (10 bins)" in section and "0.5000" in section
    assert "0.9<b>" not in page   # not a number: not a score
    assert "<h3>eval-test</h3>" in section and "<h3>eval-other</h3>" in section
