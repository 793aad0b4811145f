"""The command surface: help without TensorFlow, --version, python -m kcli."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kcli import __version__
from tests.conftest import REPO, run_cli

NO_TF = """
import runpy, sys
sys.argv = ["kcli", *{args!r}]
try:
    runpy.run_module("kcli", run_name="__main__")
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
print("HEAVY:", heavy, "CODE:", code)
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], *([cmd, "--help"] for cmd in (
    "train", "summary", "validate", "runs", "evaluate", "predict", "export", "init", "schema"))])
def test_help_does_not_import_tensorflow(args: list[str]) -> None:
    out = subprocess.run([sys.executable, "-c", NO_TF.format(args=args)], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout
    assert "HEAVY: [] CODE: 0" in out, out


def test_version() -> None:
    result = run_cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"kcli {__version__}"


def test_python_dash_m_runs_the_app() -> None:
    proc = subprocess.run([sys.executable, "-m", "kcli", "--help"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0
    assert "train" in proc.stdout and "summary" in proc.stdout


def test_no_arguments_shows_help() -> None:
    result = run_cli()
    assert "Usage" in result.stdout + result.stderr
