"""A run's code runs only as the bytes that were checked: a planted __pycache__/*.pyc, a file swapped after the
trust check, or a code/ folder (or file) that is a link to somewhere else never runs in their place."""

from __future__ import annotations

import hashlib
import importlib._bootstrap_external as bootstrap
import importlib.util
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from kcli.errors import RunError
from kcli.run import trust
from kcli.training.resume import private_copy
from tests.conftest import run_cli, run_json
from tests.helpers import assert_user_error, copy_as_received, tiny_project, train_ok

LAYERS = '''\
import keras


@keras.saving.register_keras_serializable("kcli_hostile_code")
class MyDense(keras.layers.Dense):
    pass
'''


def _evil(marker: Path) -> str:
    """The same layer, plus a line that leaves `marker` behind when it runs."""
    return LAYERS + f"\nopen({str(marker)!r}, 'w').write('ran')\n"


@pytest.fixture(scope="module")
def own_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run this user trained with a layer from an `imports:` file (copied into RUN/code/mylayers.py)."""
    folder = tmp_path_factory.mktemp("own")
    (folder / "mylayers.py").write_text(LAYERS)
    config = tiny_project(folder, imports=["mylayers.py"], fit={"epochs": 1},
                          model={"layers": [{"mylayers.py:MyDense": {"units": 8}}, {"Dense": {"units": 3}}]})
    return train_ok(config, folder / "runs")


@pytest.fixture
def received(own_run: Path, tmp_path: Path) -> Path:
    """A copy of the own run (its code/ is still the trusted copy), as if received from someone."""
    return copy_as_received(own_run, tmp_path)


def _command(name: str, run: Path, folder: Path) -> list[str | Path]:
    """The arguments of a command that loads the run's code."""
    if name == "predict":
        np.save(folder / "x.npy", np.zeros((2, 4), np.float32))
        return ["predict", run, "--input", folder / "x.npy"]
    if name == "resume":
        (run / "run.json").write_text(json.dumps({**run_json(run), "status": "failed"}))
        return ["train", "--resume", run]
    return [name, run]


def _plant_pyc(code: Path, evil: str, kind: str) -> Path:
    """Write the .pyc Python's import would use for `code`: hash-based unchecked, or timestamp-based with the
    source's own mtime and size (as a copy that keeps mtimes has)."""
    compiled = compile(evil, str(code), "exec")
    if kind == "hash":
        data = bootstrap._code_to_hash_pyc(compiled, importlib.util.source_hash(b"x"), checked=False)
    else:
        info = code.stat()
        data = bootstrap._code_to_timestamp_pyc(compiled, int(info.st_mtime), info.st_size)
    pyc = Path(importlib.util.cache_from_source(str(code)))
    pyc.parent.mkdir(exist_ok=True)
    pyc.write_bytes(bytes(data))
    return pyc


@pytest.mark.parametrize("command, kind", [("evaluate", "hash"), ("evaluate", "timestamp"), ("predict", "hash"),
                                           ("export", "timestamp"), ("resume", "hash")])
def test_a_planted_pyc_never_runs(received: Path, tmp_path: Path, command: str, kind: str) -> None:
    marker = tmp_path / "pyc-ran"
    _plant_pyc(received / "code" / "mylayers.py", _evil(marker), kind)
    args = _command(command, received, tmp_path)
    if command == "export":
        args += ["--format", "keras", "--output", tmp_path / "m.keras"]
    result = run_cli(*args)
    assert result.exit_code == 0, result.stderr
    assert not marker.exists()


def test_code_is_run_from_the_bytes_its_trust_check_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is swapped right after the trust check hashed it: the checked bytes run, the new ones never."""
    run = tmp_path / "run"
    (run / "code").mkdir(parents=True)
    code = run / "code" / "m.py"
    code.write_text("class Good:\n    pass\n")
    assert trust.remember([code], []) is None
    marker = tmp_path / "ran"
    real_sha256 = hashlib.sha256

    def swap_after_hashing(*args: bytes) -> object:
        """sha256, that swaps the code file for another once it has hashed it (the race of a `mv` loop)."""
        digest = real_sha256(*args)
        if not marker.parent.joinpath("swapped").exists():
            code.write_text(f"class Evil:\n    pass\n\nopen({str(marker)!r}, 'w').write('x')\n")
            marker.parent.joinpath("swapped").write_text("")
        return digest

    monkeypatch.setattr(hashlib, "sha256", swap_after_hashing)
    registry = trust.run_registry(run, {"imports": {"files": ["code/m.py"], "modules": []}}, False, {})
    monkeypatch.undo()
    assert (tmp_path / "swapped").exists() and "Evil" in code.read_text()
    assert set(registry.classes) == {"Good"} and not marker.exists()


@pytest.mark.parametrize("trust_code", [False, True])
def test_a_code_folder_that_is_a_link_is_refused(received: Path, tmp_path: Path, trust_code: bool) -> None:
    marker = tmp_path / "ran"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "mylayers.py").write_text(_evil(marker))
    shutil.rmtree(received / "code")
    (received / "code").symlink_to(outside, target_is_directory=True)
    result = run_cli("evaluate", received, *(["--trust-code"] if trust_code else []))
    line = assert_user_error(result, f"the run's code folder {received.resolve() / 'code'} is a symbolic link")
    assert str(outside) in line and "its own code/ folder" in line and "--trust-code" not in line
    assert not marker.exists()


def test_a_workers_copy_of_the_run_keeps_its_links(received: Path, tmp_path: Path) -> None:
    """A worker resumes from its own copy: a code/ link must stay a link there, refused as by the chief."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "mylayers.py").write_text(LAYERS)
    shutil.rmtree(received / "code")
    (received / "code").symlink_to(tmp_path / "outside", target_is_directory=True)
    (received / "run.json").write_text(json.dumps({**run_json(received), "status": "failed"}))
    copy = private_copy(received, tmp_path / "worker")
    with pytest.raises(RunError, match="code folder .* is a symbolic link"):
        trust.allowed_code(copy, run_json(copy), trust_code=True)


@pytest.mark.parametrize("target", ["outside", "inside"])
def test_a_code_file_that_is_a_link_is_refused(received: Path, tmp_path: Path, target: str) -> None:
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.py" if target == "outside" else received / "code" / "other.py"
    evil.write_text(_evil(marker))
    code = received.resolve() / "code" / "mylayers.py"
    code.unlink()
    code.symlink_to(evil)
    for trust_code in ([], ["--trust-code"]):
        line = assert_user_error(run_cli("evaluate", received, *trust_code), f"{code} is a symbolic link")
        assert str(evil) in line and "regular .py files in its own code/ folder" in line
        assert "names code outside" not in line and "run.json" not in line
    assert not marker.exists()


def test_training_imports_its_files_copies_the_bytes_that_ran_and_leaves_no_pycache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)   # as without PYTHONDONTWRITEBYTECODE
    source = b"# -*- coding: latin-1 -*-\r\n" + LAYERS.encode() + b"\r\nCAFE = 'caf\xe9'\r\n"   # not UTF-8
    (tmp_path / "mylayers.py").write_bytes(source)
    config = tiny_project(tmp_path, imports=["mylayers.py"], fit={"epochs": 1},
                          model={"layers": [{"mylayers.py:MyDense": {"units": 8}}, {"Dense": {"units": 3}}]})
    run = train_ok(config, tmp_path / "runs")
    assert (run / "code" / "mylayers.py").read_bytes() == source
    with zipfile.ZipFile(run / "model.keras") as saved:   # the model trained with the imported layer
        assert '"class_name": "MyDense"' in saved.read("config.json").decode()
    result = run_cli("evaluate", run)
    assert result.exit_code == 0, result.stderr
    for folder in (run / "code", tmp_path):   # the run's copy, and the file it was trained from
        assert not (folder / "__pycache__").exists(), os.listdir(folder)


def test_code_that_calls_sys_exit_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "quits.py").write_text("import sys\n\nsys.exit(0)\n")
    config = tiny_project(tmp_path, imports=["quits.py"])
    line = assert_user_error(run_cli("train", config, "--runs-dir", tmp_path / "runs"), "imports[0]")
    assert "quits.py:3 failed to import: SystemExit" in line
    assert not (tmp_path / "runs").exists()
