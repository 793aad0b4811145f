"""Assertions and shortcuts the test modules share (the CLI driver and tiny data live in conftest.py). Keras is
imported where a helper loads a model, so TensorFlow-free test modules may use the others."""

from __future__ import annotations

import atexit
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.conftest import REPO, CliResult, only_run, run_cli, tiny_npz


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


# The hand-written Keras scripts run in one plain Python process per test process: it imports Keras once (the
# 5-10 s each script paid in a process of its own) and never kcli, so nothing kcli sets can reach a script. Each
# script starts from Keras's defaults (clear_session) and sets its own seed, as in a new process; a script whose
# numbers depended on what ran before it would differ from kcli's run and fail its test, not pass it.
_PLAIN_PROCESS = """
import contextlib, json, sys, traceback
import keras
protocol = sys.stdout
for line in sys.stdin:
    request = json.loads(line)
    sys.argv = ["-c", *request["argv"]]
    keras.backend.clear_session()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            exec(compile(request["script"], "<plain script>", "exec"), {"__name__": "__main__"})
        answer = None
    except BaseException:
        answer = traceback.format_exc()
    protocol.write(json.dumps(answer) + "\\n")
    protocol.flush()
"""
_plain: list[subprocess.Popen] = []


def run_plain_script(script: str, *argv: str | Path) -> None:
    """Run a hand-written Keras `script` (sys.argv[1:] = argv) in the plain-Keras process; fail with its traceback."""
    if not _plain or _plain[0].poll() is not None:
        _plain[:] = [subprocess.Popen([sys.executable, "-c", _PLAIN_PROCESS], cwd=REPO, text=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)]
        atexit.register(_plain[0].communicate)   # end of input: the process ends
    proc = _plain[0]
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps({"script": script, "argv": [str(a) for a in argv]}) + "\n")
    proc.stdin.flush()
    answer = proc.stdout.readline()
    assert answer, f"the plain-Keras process ended (exit code {proc.wait()})"
    assert json.loads(answer) is None, json.loads(answer)


def assert_same_as_plain_script(run_dir: Path, script: str, folder: Path) -> dict[str, list[float]]:
    """Run a hand-written Keras `script` (argv[1] = folder; it writes plain_weights.npz and plain_history.json
    there) and require the run's weights and every history column equal to 1e-6; returns the script's history."""
    run_plain_script(script, folder)
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
