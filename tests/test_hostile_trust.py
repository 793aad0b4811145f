"""Nothing a received file says may act: a run's config.yaml names no code but the run's own (evaluate, predict,
export, train --resume), and names from data are printed as text, never as markup or terminal escapes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.conftest import run_cli, run_json
from tests.helpers import assert_user_error, tiny_project, train_ok

DATA_FN = '''\
import numpy as np
import tensorflow as tf


def make(data, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = np.eye(3, dtype="float32")[np.argmax(x[:, :3], axis=1)]
    part = lambda a, b: tf.data.Dataset.from_tensor_slices((a, b)).batch(8)
    return part(x[:24], y[:24]), None, part(x[24:], y[24:])
'''


def _evil(marker: Path) -> str:
    """A Python file that leaves `marker` behind if it is imported, or if anything it defines is called."""
    return f'''\
import keras
open({str(marker)!r}, "w").write("imported")


def make(*args, **kwargs):
    open({str(marker)!r}, "w").write("called")


class Evil(keras.layers.Layer):
    pass
'''


@pytest.fixture(scope="module")
def own_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run this user trained, whose data comes from a Python function (copied into RUN/code/)."""
    folder = tmp_path_factory.mktemp("own")
    (folder / "data_fn.py").write_text(DATA_FN)
    config = tiny_project(folder, data={"source": "python", "function": "data_fn.py:make", "path": None,
                                        "validation": None, "test": None, "one_hot": None}, fit={"epochs": 1})
    return train_ok(config, folder / "runs")


@pytest.fixture
def received(own_run: Path, tmp_path: Path) -> Path:
    """A copy of the own run, as if it was received from someone (its code/ is still the trusted copy)."""
    copy = tmp_path / "received"
    shutil.copytree(own_run, copy)
    return copy


def _edit(run: Path, change: Any) -> None:
    """Edit the run's config.yaml mapping in place with `change(raw)`."""
    raw = yaml.safe_load((run / "config.yaml").read_text())
    change(raw)
    (run / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def _set(path: str, value: Any) -> Any:
    """A change that sets `a.b[0].c` (dots and list indexes) in the config mapping."""
    def change(raw: dict[str, Any]) -> None:
        parts = path.replace("[", ".").replace("]", "").split(".")
        target: Any = raw
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target.setdefault(part, {})
        last = parts[-1]
        target[int(last) if last.isdigit() else last] = value
    return change


def _hostile(evil: str) -> list[tuple[str, Any, str]]:
    """(what, config change, key the refusal names): every way config.yaml can name code."""
    return [
        ("data.function file", _set("data.function", f"{evil}:make"), "data.function"),
        ("data.function os:system", _set("data.function", "os:system"), "the module 'os'"),
        ("imports", _set("imports", [evil]), "imports[0]"),
        ("layer file", _set("model.layers[0]", {f"{evil}:Evil": {}}), "model.layers[0]"),
        ("layer module", _set("model.layers[1]", "kcli_evil_probe:Evil"), "the module 'kcli_evil_probe'"),
        ("model.class", lambda raw: raw["model"].update({"layers": None, "class": f"{evil}:Evil"}), "model.class"),
        ("schedule", _set("compile.optimizer", {"Adam": {"learning_rate": {f"{evil}:Evil": {}}}}),
         "compile.optimizer.Adam.learning_rate"),
        ("callback", _set("fit.callbacks", [{"LearningRateScheduler": {"schedule": f"{evil}:make"}}]),
         "fit.callbacks[0]"),
    ]


HOSTILE_IDS = [what for what, _, _ in _hostile("e.py")]


@pytest.fixture
def evil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(evil.py, marker): the file, and an importable module `kcli_evil_probe` with the same body."""
    marker = tmp_path / "ran"
    (tmp_path / "evil.py").write_text(_evil(marker))
    (tmp_path / "kcli_evil_probe.py").write_text(_evil(marker))
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path / "evil.py", marker


@pytest.mark.parametrize("case", range(len(HOSTILE_IDS)), ids=HOSTILE_IDS)
def test_a_received_config_names_no_code_but_the_runs_own(received: Path, evil: tuple[Path, Path], tmp_path: Path,
                                                         case: int) -> None:
    evil_py, marker = evil
    what, change, key = _hostile(str(evil_py))[case]
    _edit(received, change)
    np.save(tmp_path / "x.npy", np.zeros((2, 4), np.float32))
    commands = [("evaluate", received), ("predict", received, "--input", tmp_path / "x.npy"),
                ("export", received, "--format", "keras")]
    for command in commands:
        for trust in ([], ["--trust-code"]):   # --trust-code trusts the run's own code/, nothing else
            line = assert_user_error(run_cli(*command, *trust), "would run with your rights")
            assert key in line and "config.yaml" in line, line
            assert not marker.exists(), (what, command, trust)
    assert not (received / "export").exists() and not list(received.glob("eval-*"))


def test_the_own_run_still_runs_its_own_code(own_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_cli("evaluate", own_run)
    assert result.exit_code == 0, result.stderr
    assert json.loads((own_run / "eval-test.json").read_text())["examples"] == 8
    monkeypatch.setenv("KCLI_HOME", str(tmp_path / "another-user"))   # the same run, received by someone else
    line = assert_user_error(run_cli("evaluate", own_run), "loading this run would run Python code")
    assert "code/data_fn.py" in line and "--trust-code" in line
    result = run_cli("evaluate", own_run, "--trust-code")
    assert result.exit_code == 0, result.stderr


def _interrupted(run: Path) -> None:
    (run / "run.json").write_text(json.dumps({**run_json(run), "status": "failed"}))


def test_resume_of_a_received_run_runs_no_code_it_names(received: Path, evil: tuple[Path, Path]) -> None:
    evil_py, marker = evil
    _interrupted(received)
    _edit(received, _set("data.function", f"{evil_py}:make"))
    for trust in ([], ["--trust-code"]):
        line = assert_user_error(run_cli("train", "--resume", received, *trust), "would run with your rights")
        assert "data.function" in line and str(evil_py) in line
    assert not marker.exists()
    assert run_json(received)["status"] == "failed"


def test_resume_runs_the_runs_own_trusted_code(received: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _interrupted(received)
    source = Path(yaml.safe_load((received / "config.yaml").read_text())["data"]["function"].rsplit(":", 1)[0])
    assert source.is_file() and source.parent != received / "code"
    monkeypatch.setenv("KCLI_HOME", str(tmp_path / "another-user"))
    assert_user_error(run_cli("train", "--resume", received), "loading this run would run Python code")
    result = run_cli("train", "--resume", received, "--trust-code")
    assert result.exit_code == 0, result.stderr
    assert run_json(received)["status"] == "completed"
