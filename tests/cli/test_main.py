"""`python -m kcli` runs the app only as a program."""

from __future__ import annotations

import importlib
import sys

import pytest


def test_main_module_does_not_run_on_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["kcli", "--version"])
    sys.modules.pop("kcli.__main__", None)
    importlib.import_module("kcli.__main__")   # would raise SystemExit if it ran the CLI
