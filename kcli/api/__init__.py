"""kcli as a Python library: train, evaluate, predict, export and load runs without the CLI (see README: From Python)."""

from kcli.api.training import Run, summary, train

__all__ = ["Run", "summary", "train"]
