"""kcli.run.layout: a run directory is created under a name never used before; the code it ran is copied in."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from kcli.errors import RunError
from kcli.run import layout

NOW = datetime(2026, 12, 5, 10, 0, 0)


def test_a_run_directory_is_never_reused(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    made = [layout.new_run_dir(runs, "mnist", NOW) for _ in range(3)]
    assert [p.name for p in made] == ["mnist-20261205-100000", "mnist-20261205-100000-2", "mnist-20261205-100000-3"]
    assert all(p.is_dir() and not any(p.iterdir()) for p in made)


def test_a_runs_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("")
    with pytest.raises(RunError, match="cannot create the runs directory") as caught:
        layout.new_run_dir(tmp_path / "runs", "x", NOW)
    assert caught.value.key == "--runs-dir"


def test_copy_code_writes_the_bytes_that_ran_and_never_overwrites(tmp_path: Path) -> None:
    sources = {Path("/a/layers.py"): b"A = 1\n", Path("/b/layers.py"): b"B = 2\n", Path("/c/more.py"): b"C\n"}
    copied = layout.copy_code(tmp_path, sources)
    assert copied == ["code/layers.py", "code/layers_2.py", "code/more.py"]
    assert [(tmp_path / c).read_bytes() for c in copied] == list(sources.values())
    assert layout.copy_code(tmp_path / "other", {}) == [] and not (tmp_path / "other").exists()
