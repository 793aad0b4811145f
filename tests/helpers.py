"""Assertions and shortcuts the test modules share (the CLI driver and tiny data live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.conftest import CliResult, only_run, run_cli


def assert_user_error(result: CliResult, expected: str) -> str:
    """A user mistake: exit 2, exactly one `error:` line on stderr containing `expected`, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert result.exception is None, result.exception
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0], f"{expected!r} not in {lines[0]!r}"
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


def train_ok(config: Path, runs_dir: Path, *args: str | Path) -> Path:
    """`kcli train CONFIG --runs-dir RUNS_DIR ARGS` must succeed; returns the new run directory."""
    before = {p for p in runs_dir.iterdir()} if runs_dir.is_dir() else set()
    result = run_cli("train", config, "--runs-dir", runs_dir, *args)
    assert result.exit_code == 0, (result.stdout[-2000:], result.stderr, result.exception)
    created = [p for p in runs_dir.iterdir() if p.is_dir() and p not in before]
    assert len(created) == 1, created
    return created[0] if before else only_run(runs_dir)


def assert_same_arrays(a: list[np.ndarray], b: list[np.ndarray], atol: float = 1e-6) -> None:
    """Two lists of weights (or any arrays) equal to `atol`, pairwise, same length."""
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0, err_msg=f"array {i}")
