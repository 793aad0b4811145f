"""`kcli sweep show`'s table as the Display draws a returned kcli.sweep.search.SweepTable (no Optuna, no TF)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from kcli.output.display import Display
from kcli.sweep.search import SweepTable


def drawn(table: SweepTable) -> str:
    buf = io.StringIO()
    Display(Console(file=buf, width=200, color_system=None, highlight=False, emoji=False)).sweep(table)
    return buf.getvalue()


def test_the_table_marks_the_best_trial_and_names_its_config() -> None:
    rows = [{"trial": 0, "state": "complete", "params": {"lr": 0.0123456, "units": 8}, "value": 0.5,
             "seconds": 1.25, "run": "s-trial-0000-x"},
            {"trial": 1, "state": "fail", "params": {"lr": 0.1}, "value": None, "seconds": None, "run": ""}]
    out = drawn(SweepTable(Path("runs/s"), "s", "val_accuracy", "maximize", rows, 0, Path("runs/s/best.yaml")))
    assert [line.rstrip() for line in out.splitlines()] == [
        "Sweep s: maximize val_accuracy",
        "+------------------------------------------------------------------------------+",
        "| trial | state    |      lr | units | val_accuracy | seconds | run            |",
        "|-------+----------+---------+-------+--------------+---------+----------------|",
        "|   0 * | complete | 0.01235 |     8 |       0.5000 |     1.2 | s-trial-0000-x |",
        "|     1 | fail     |     0.1 |       |              |         |                |",
        "+------------------------------------------------------------------------------+",
        "best: trial 0 (*); its config: runs/s/best.yaml"]

def test_without_a_completed_trial_it_says_so() -> None:
    rows = [{"trial": 0, "state": "running", "params": {"lr": "\x1b[31m"}, "value": None, "seconds": None,
             "run": ""}]
    out = drawn(SweepTable(Path("s"), "s", "loss", "minimize", rows, None, None))
    assert out.splitlines()[-1] == "no trial has completed yet"
    assert "\\x1b[31m" in out and "\x1b" not in out   # a value from the study is data, shown escaped
