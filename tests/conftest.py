"""Shared helpers: drive the real CLI in-process (one TensorFlow import per test process) on tiny data."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from typer.testing import CliRunner  # noqa: E402

from kcli.cli.app import app  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None


def run_cli(*args: str | Path) -> CliResult:
    """Invoke `kcli ARGS` through Typer's CliRunner and capture both streams."""
    try:   # Click < 8.2 (under older Typers) mixes stderr into stdout unless told not to
        runner = CliRunner(mix_stderr=False)
    except TypeError:   # Click >= 8.2 and Typer's own runner keep the streams apart and refuse the argument
        runner = CliRunner()
    result = runner.invoke(app, [str(a) for a in args])
    exc = result.exception if not isinstance(result.exception, SystemExit) else None
    return CliResult(result.exit_code, result.stdout, result.stderr, exc)


def write_config(folder: Path, text: str, name: str = "config.yaml") -> Path:
    """Write a YAML config (dedented) into `folder`."""
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def tiny_npz(folder: Path, name: str = "train.npz", n: int = 64, features: int = 4, classes: int = 3,
             seed: int = 0) -> Path:
    """A small learnable classification problem saved as .npz (x float32, y int)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = np.argmax(x @ rng.normal(size=(features, classes)), axis=1)
    path = folder / name
    np.savez(path, x=x, y=y)
    return path


def only_run(runs_dir: Path) -> Path:
    """The single run directory under runs_dir."""
    found = [p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(found) == 1, found
    return found[0]


def run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def shipped_config(name: str, folder: Path, **changes: object) -> Path:
    """Copy a shipped config (and the Python files beside it) into `folder`, with top-level sections updated."""
    for py in CONFIGS.glob("*.py"):
        shutil.copy(py, folder / py.name)
    raw = yaml.safe_load((CONFIGS / name).read_text())
    for section, values in changes.items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
    path = folder / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture(autouse=True, scope="session")
def _clean_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The same output on any machine and terminal: Rich reads these variables. kcli's trust store goes to a
    temporary folder (trained runs' code is trusted within the session, as for one user on one machine).
    Session-scoped, so module-scoped fixtures that train see it too."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES",
                     "KCLI_DEBUG", "KCLI_RAW_STDERR"):
            patch.delenv(name, raising=False)
        patch.setenv("KCLI_HOME", str(tmp_path_factory.mktemp("kcli-home")))
        yield


# The modules that take longest (each well over 30 s: clusters of processes, servers, many trainings) go first:
# `-n 2 --dist loadfile` hands out whole modules in collection order, so one of them left to the end would run
# alone on one worker while the other sits idle. Only the order changes; every module still runs whole.
SLOW_FIRST = ["distributed/test_workers.py", "training/test_equivalence.py", "sweep/test_sweep.py",
              "distributed/test_stream_workers.py", "training/test_long_runs.py", "distributed/test_hostile_cluster.py",
              "training/test_tracking.py", "files/test_object_streams.py", "data/test_tables.py",
              "data/test_streams.py", "files/test_object_storage.py", "data/test_sources.py"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the slowest modules first (see SLOW_FIRST); the rest keep their order."""
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}

    def key(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0].removeprefix("tests/")
        return rank.get(path, len(rank))

    items.sort(key=key)   # a stable sort: each module's tests stay together and in order
