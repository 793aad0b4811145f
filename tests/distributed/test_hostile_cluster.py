"""Hostile cluster shapes: TF_CONFIG that is deep, repeats a port or lists thousands of addresses, lone workers on
addresses that do not resolve, signals while the cluster starts, and a launcher's worker killed early. Each ends
by itself, in one line, within its bound; every process a test starts is killed in `finally`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kcli.distributed import cluster as cluster_mod
from kcli.distributed import strategy as distribute
from kcli.distributed import workers
from kcli.errors import listed
from tests.conftest import REPO, only_run, run_cli, run_json
from tests.helpers import assert_user_error, tiny_project

BOUND = 120   # seconds any process of this module may live (2 busy cores)


def _tf_config(workers: list[str], index: int = 0) -> str:
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def _start(args: list[str | Path], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "kcli", *map(str, args)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, env={**os.environ, **env})


def _finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """The process's output once it ended by itself within BOUND (else it is killed and the test fails)."""
    try:
        return proc.communicate(timeout=BOUND)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize(("tf_config", "expected"), [
    ('{"cluster": ' * 30000, "TF_CONFIG: nests too deeply to read"),
    ("[" * 30000 + "]" * 30000, "TF_CONFIG: nests too deeply to read"),
    (_tf_config(["localhost:23461", "127.0.0.1:23461"]),
     "TF_CONFIG: cluster.worker[0] and cluster.worker[1] are the same address (127.0.0.1:23461)"),
    (_tf_config([f"h{i}:1" for i in range(2999)] + ["h:99999"]), "got ['h0:1', 'h1:1', 'h2:1', ...]"),
    (json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": [], "index": 0}}), '"task" must name'),
    (_tf_config(["a:²"]), "must be a list of \"host:port\" strings"),
], ids=["deep-object", "deep-list", "port-twice", "3000-addresses", "unhashable-type", "unicode-digit-port"])
def test_tf_config_mistakes_are_one_short_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tf_config: str,
                                               expected: str) -> None:
    """Each is exit 2 and one line naming TF_CONFIG (no RecursionError, no wait for the start-up timeout, no
    51 KB line), before any run directory."""
    config = tiny_project(tmp_path, distribute="multi_worker")
    monkeypatch.setenv("TF_CONFIG", tf_config)
    line = assert_user_error(run_cli("train", config, "--runs-dir", tmp_path / "runs"), expected)
    assert len(line) < 400, len(line)
    assert not (tmp_path / "runs").exists()


def test_the_watchdog_message_caps_its_list_of_addresses() -> None:
    """A worker that waited for 2,999 peers names 3 of them and how many more."""
    cluster = cluster_mod.parse(json.loads(_tf_config([f"host{i}:2222" for i in range(3000)])))
    message = distribute._not_up(cluster, 5)
    assert "waited for host1:2222, host2:2222, host3:2222 ... 2,996 more." in message and len(message) < 400
    assert listed(["a", "b"]) == "a, b"


def test_a_lone_worker_on_an_address_that_does_not_resolve_trains(tmp_path: Path) -> None:
    """One worker at nohost.invalid: TensorFlow waited forever for its own address (holding the GIL, deaf to
    SIGTERM); a lone worker has no peer to serve, so kcli trains it locally and ends with a completed run."""
    config = tiny_project(tmp_path, distribute="multi_worker")
    proc = _start(["train", config, "--runs-dir", tmp_path / "runs", "--startup-timeout", "5"],
                  {"TF_CONFIG": _tf_config(["nohost.invalid:23458"])})
    _, err = _finish(proc)
    assert proc.returncode == 0, err[-2000:]
    assert run_json(only_run(tmp_path / "runs"))["status"] == "completed"


def test_a_worker_whose_cluster_never_forms_ends_and_cleans_up(tmp_path: Path) -> None:
    """Two non-chief workers whose leader never comes. One, unsupervised (as `--workers` runs them), is left to
    the start-up watchdog: exit 2, one line, and its temporary `kcli-worker-*` folder is gone (os._exit skipped
    that). The other gets SIGTERM while it starts (TensorFlow holds the GIL while it registers, and its handler
    swallows SIGTERM): it ends within the grace, in one line, and leaves nothing in TMPDIR either."""
    config = tiny_project(tmp_path, distribute="multi_worker")
    ports = cluster_mod.free_ports(4)
    tmps = [tmp_path / "tmp0", tmp_path / "tmp1"]
    procs = []
    try:
        for i, tmp in enumerate(tmps):
            tmp.mkdir()
            env = {"TF_CONFIG": _tf_config([f"localhost:{ports[2 * i]}", f"localhost:{ports[2 * i + 1]}"], index=1),
                   "TMPDIR": str(tmp), **({"KCLI_SUPERVISED": "1"} if i == 0 else {})}
            procs.append(_start(["train", config, "--runs-dir", tmp_path / f"runs{i}", "--startup-timeout",
                                 "3" if i == 0 else "40"], env))
        deadline = time.monotonic() + BOUND
        while not list(tmps[1].glob("*/kcli-worker-*")) and procs[1].poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1)   # in start-up now: loading the config, TensorFlow, the strategy (waiting up to 40 s)
        os.kill(procs[1].pid, signal.SIGTERM)
        signalled = time.monotonic()
        _, err1 = _finish(procs[1])
        stopped_after = time.monotonic() - signalled
        _, err0 = _finish(procs[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert procs[0].returncode == 2, err0[-2000:]
    errors = _errors(err0)
    assert len(errors) == 1 and "TF_CONFIG: the cluster did not come up within 3 s: worker 1" in errors[0], err0
    assert procs[1].returncode in (128 + signal.SIGINT, 128 + signal.SIGTERM), (procs[1].returncode, err1[-2000:])
    assert stopped_after < workers.SIGNAL_GRACE + 15, stopped_after
    assert len(_errors(err1)) == 1 and "Traceback" not in err0 + err1, err1[-2000:]
    assert [list(tmp.iterdir()) for tmp in tmps] == [[], []]
    assert not (tmp_path / "runs0").exists() and not (tmp_path / "runs1").exists()


def test_a_launcher_whose_chief_dies_before_an_epoch_does_not_advise_resume(tmp_path: Path) -> None:
    """`--workers 1`, the worker killed a moment after launch: there is no saved state, so the line says so
    instead of advising `--resume RUN` for a run that does not exist."""
    config = tiny_project(tmp_path)
    launcher = _start(["train", config, "--runs-dir", tmp_path / "runs", "--workers", "1"], {})
    try:
        deadline = time.monotonic() + BOUND
        worker = None
        while worker is None and launcher.poll() is None and time.monotonic() < deadline:
            worker = _worker_of(launcher.pid)
            time.sleep(0.05)
        time.sleep(1)
        assert worker is not None
        os.kill(worker, signal.SIGKILL)
        _, err = _finish(launcher)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
    errors = _errors(err)
    assert len(errors) == 1 and "killed by signal 9 before the first epoch was saved; nothing to resume" in errors[0], \
        err[-2000:]
    assert "--resume" not in err and launcher.returncode == 128 + signal.SIGKILL


def _worker_of(launcher: int) -> int | None:
    """The launcher's worker process (the child with TF_CONFIG; another child filters stderr)."""
    pids = subprocess.run(["pgrep", "-P", str(launcher)], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            if b"TF_CONFIG=" in Path(f"/proc/{pid}/environ").read_bytes():
                return int(pid)
        except OSError:
            continue
    return None


@pytest.mark.parametrize(("rows", "batch", "replicas", "same"), [
    (150, 32, 1, True), (150, 32, 2, True), (141, 30, 3, True),   # measured: 1e-7 from one process
    (150, 32, 3, False), (140, 30, 3, False), (152, 32, 3, False), (149, 32, 2, False),   # 5e-6 to 5e-5
    (150, 32, 16, False),
])
def test_when_workers_give_the_numbers_of_one_process(rows: int, batch: int, replicas: int, same: bool) -> None:
    """The condition measured with 1 vs 2 and 3 workers (2 epochs, tiny data): every training batch divides by
    the replicas, i.e. the batch size and the training rows both do."""
    note = distribute.uneven_batches(rows, batch, replicas)
    assert (note is None) == same, note
    if note:
        assert note.startswith("data.batch_size: the numbers will differ slightly") and f"by {replicas}" in note


def test_workers_warn_when_their_batches_do_not_divide(tmp_path: Path) -> None:
    """2 workers, 49 training rows in batches of 16 (the last of 1 row): one warning line naming data.batch_size
    (said by the chief; README states the condition), recorded in run.json; the run completes."""
    config = tiny_project(tmp_path, splits=(("train.npz", 0, 49), ("val.npz", 1, 16), ("test.npz", 2, 16)),
                          data={"batch_size": 16}, fit={"epochs": 1})
    launcher = _start(["train", config, "--runs-dir", tmp_path / "runs", "--workers", "2"], {})
    _, err = _finish(launcher)
    assert launcher.returncode == 0, err[-3000:]
    warnings = [line for line in err.splitlines() if "data.batch_size: the numbers will differ" in line]
    assert len(warnings) == 1 and "(here: the last batch of 1 of 49 training rows)" in warnings[0], err[-3000:]
    record = run_json(only_run(tmp_path / "runs"))
    assert record["status"] == "completed" and any("data.batch_size" in n for n in record["data_notes"])
