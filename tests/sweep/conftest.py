"""A tiny project for sweep logic tests: a config and its .npz data, no TensorFlow (the trials are not run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

LR = "compile.optimizer.Adam.learning_rate"


def write_project(folder: Path, **sweep: Any) -> Path:
    """config.yaml with a `sweep:` section (merged over a one-parameter random search) and its data files."""
    rng = np.random.default_rng(0)
    for name in ("train.npz", "val.npz"):
        np.savez(folder / name, x=rng.normal(size=(8, 4)).astype(np.float32), y=rng.integers(0, 3, size=8))
    raw = {
        "name": "tiny", "seed": 5,
        "data": {"source": "npz", "path": "train.npz", "validation": {"path": "val.npz"}, "one_hot": True},
        "model": {"input_shape": [4], "layers": [{"Dense": {"units": 8}}, {"Dense": {"units": 3}}]},
        "compile": {"optimizer": {"Adam": {"learning_rate": 0.01}},
                    "loss": {"CategoricalCrossentropy": {"from_logits": True}}, "metrics": ["accuracy"]},
        "fit": {"epochs": 1},
        "sweep": {"metric": "val_accuracy", "method": "random", "seed": 1, "trials": 2,
                  "parameters": {LR: {"low": 0.001, "high": 0.1, "log": True}}, **sweep},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    pytest.importorskip("optuna")
    return write_project(tmp_path)
