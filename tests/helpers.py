"""Assertions and shortcuts the test modules share (the CLI driver and tiny data live in conftest.py). Keras is
imported where a helper loads a model, so TensorFlow-free test modules may use the others."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.conftest import CliResult, only_run, run_cli, tiny_npz


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


def copy_as_received(run: Path, folder: Path) -> Path:
    """A copy of a run this user trained, as if received from someone (its code/ is still the trusted copy)."""
    import shutil

    copy = folder / "received"
    shutil.copytree(run, copy)
    return copy


def assert_same_arrays(a: list[np.ndarray], b: list[np.ndarray], atol: float = 1e-6) -> None:
    """Two lists of weights (or any arrays) equal to `atol`, pairwise, same length."""
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0, err_msg=f"array {i}")


TINY_CONFIG: dict[str, Any] = {
    "name": "tiny",
    "seed": 5,
    "data": {"source": "npz", "path": "train.npz", "validation": {"path": "val.npz"}, "test": {"path": "test.npz"},
             "one_hot": True},
    "model": {"input_shape": [4], "layers": [{"Dense": {"units": 8, "activation": "relu"}}, {"Dense": {"units": 3}}]},
    "compile": {"optimizer": "adam", "loss": {"CategoricalCrossentropy": {"from_logits": True}},
                "metrics": ["accuracy"]},
    "fit": {"epochs": 2},
}
TINY_SPLITS = (("train.npz", 0, 48), ("val.npz", 1, 16), ("test.npz", 2, 16))


def tiny_project(folder: Path, splits: tuple[tuple[str, int, int], ...] = TINY_SPLITS, **sections: Any) -> Path:
    """Tiny .npz splits (name, seed, rows) and a config.yaml in `folder`: TINY_CONFIG with each given top-level
    section merged into its mapping (a None value removes that key) or replacing a plain value; returns the
    config's path."""
    for name, seed, rows in splits:
        tiny_npz(folder, name, n=rows, seed=seed)
    raw = copy.deepcopy(TINY_CONFIG)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):   # None removes a key of the section
            value = {k: v for k, v in {**raw[key], **value}.items() if v is not None}
        raw[key] = value
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def assert_same_run(a: Path, b: Path) -> None:
    """Two run directories with the same history (1e-6, None where validation did not run) and final weights."""
    rows_a = json.loads((a / "history.json").read_text())
    rows_b = json.loads((b / "history.json").read_text())
    assert [sorted(r) for r in rows_a] == [sorted(r) for r in rows_b]
    for ra, rb in zip(rows_a, rows_b, strict=True):
        for key, value in ra.items():
            assert (value is None) == (rb[key] is None), (key, ra, rb)
            if value is not None:
                assert value == pytest.approx(rb[key], abs=1e-6), (key, ra, rb)
    import keras

    wa = keras.models.load_model(a / "model.keras").get_weights()
    wb = keras.models.load_model(b / "model.keras").get_weights()
    for x, y in zip(wa, wb, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-6, rtol=0)


def assert_same_weight_files(a: Path, b: Path) -> None:
    """Two .weights.h5 files holding the same arrays under the same names (1e-6)."""
    import h5py
    with h5py.File(a) as fa, h5py.File(b) as fb:
        names: list[str] = []
        fa.visit(lambda name: names.append(name) if isinstance(fa[name], h5py.Dataset) else None)
        assert names
        for name in names:
            np.testing.assert_allclose(fa[name][()], fb[name][()], atol=1e-6, rtol=0, err_msg=name)


def assert_same_as_plain_script(run_dir: Path, script: str, folder: Path) -> dict[str, list[float]]:
    """Run a hand-written Keras `script` (argv[1] = folder; it writes plain_weights.npz and plain_history.json
    there) and require the run's weights and every history column equal to 1e-6; returns the script's history."""
    import subprocess
    import sys

    from tests.conftest import REPO

    subprocess.run([sys.executable, "-c", script, str(folder)], check=True, cwd=REPO, capture_output=True)
    with np.load(folder / "plain_weights.npz") as npz:
        plain = [npz[f"arr_{i}"] for i in range(len(npz.files))]
    import keras

    assert_same_arrays(keras.models.load_model(run_dir / "model.keras").get_weights(), plain)
    history = json.loads((folder / "plain_history.json").read_text())
    rows = json.loads((run_dir / "history.json").read_text())
    for key, values in history.items():
        np.testing.assert_allclose([r[key] for r in rows], values, atol=1e-6, rtol=0, err_msg=key)
    return history


def capture_figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The matplotlib figures kcli.run.pictures writes from now on (still written), to read their texts."""
    from kcli.run import pictures

    figures: list[Any] = []
    save = pictures._save

    def keep(fig: Any, path: Path) -> None:
        save(fig, path)
        figures.append(fig)

    monkeypatch.setattr(pictures, "_save", keep)
    return figures
