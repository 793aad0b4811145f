"""kcli as a Python library: train, evaluate, predict, export and load runs without the CLI (see README: From Python)."""
