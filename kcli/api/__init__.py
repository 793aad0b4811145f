"""kcli as a Python library: train, validate, evaluate, predict, export and load runs without the CLI (README: From
Python).

The functions are imported on first use (PEP 562), so `kcli validate` loads only what validating needs and
`import kcli.api` stays light; `from kcli.api import train` and `api.train` work as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kcli.api.training import Run, summary, train
    from kcli.api.use import evaluate, export, load, load_run, predict
    from kcli.api.validate import Validated, validate

_HOMES = {"Run": "training", "summary": "training", "train": "training",
          "evaluate": "use", "export": "use", "load": "use", "load_run": "use", "predict": "use",
          "Validated": "validate", "validate": "validate"}

__all__ = ["Run", "Validated", "evaluate", "export", "load", "load_run", "predict", "summary", "train", "validate"]


def __getattr__(name: str) -> Any:
    """The API function `name`, imported from its module the first time it is asked for."""
    if name not in _HOMES:
        raise AttributeError(f"module 'kcli.api' has no attribute {name!r}")
    return getattr(importlib.import_module(f"kcli.api.{_HOMES[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
