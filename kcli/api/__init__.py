"""kcli as a Python library: train, evaluate, predict, export and load runs without the CLI (README: From Python)."""

from kcli.api.use import evaluate as evaluate
from kcli.api.use import export as export
from kcli.api.use import load as load
from kcli.api.use import load_run as load_run
from kcli.api.use import predict as predict
