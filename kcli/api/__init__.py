"""kcli as a Python library: train, validate, evaluate, predict, export and load runs without the CLI (README: From
Python)."""

from kcli.api.training import Run, summary, train
from kcli.api.use import evaluate, export, load, load_run, predict
from kcli.api.validate import Validated, validate

__all__ = ["Run", "Validated", "evaluate", "export", "load", "load_run", "predict", "summary", "train", "validate"]
