"""`tracking.mlflow`: a real MLflow tracking server (SQLite backend) started on localhost by this module and
stopped by it; what kcli logged is read back through MLflow's client. Includes a SIGKILL + --resume that must
continue the same MLflow run with each epoch logged exactly once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli
from tests.helpers import assert_user_error, tiny_project, train_ok

mlflow = pytest.importorskip("mlflow")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    command = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
               f"sqlite:///{folder / 'mlflow.db'}", "--default-artifact-root", str(folder / "artifacts"),
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=(folder / "server.log").open("wb"),
                            start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the MLflow server did not start: " + (folder / "server.log").read_text()[-2000:])
            time.sleep(0.3)
        yield uri
    finally:
        with suppress(ProcessLookupError):   # a throwaway server: SIGTERM took ~5 s to end it
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)


def _client(uri: str) -> mlflow.tracking.MlflowClient:
    return mlflow.tracking.MlflowClient(tracking_uri=uri)


def test_a_run_logs_params_epochs_and_artifacts(server: str, tmp_path: Path) -> None:
    config = tiny_project(tmp_path, fit={"epochs": 3}, tracking={"mlflow": {"uri": server, "experiment": "kcli-test"}})
    run_dir = train_ok(config, tmp_path / "runs")
    record = json.loads((run_dir / "run.json").read_text())
    client = _client(server)
    run = client.get_run(record["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
    assert client.get_experiment(run.info.experiment_id).name == "kcli-test"
    assert run.data.params["fit.epochs"] == "3" and run.data.params["model.layers.0.Dense.units"] == "8"
    history = json.loads((run_dir / "history.json").read_text())
    for key in ("loss", "val_accuracy"):
        logged = client.get_metric_history(run.info.run_id, key)
        assert sorted((m.step, m.value) for m in logged) == [(r["epoch"], pytest.approx(r[key])) for r in history]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "history.png", "model.keras", "run.json", "metrics.json"} <= artifacts


def test_resume_after_sigkill_continues_the_same_mlflow_run(server: str, tmp_path: Path) -> None:
    config = tiny_project(tmp_path, fit={"epochs": 40}, tracking={"mlflow": {"uri": server}})
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "kcli", "train", str(config), "--runs-dir", str(runs)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = list(runs.glob("*/run.json"))
            if found and json.loads(found[0].read_text()).get("epochs_completed", 0) >= 3:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    run_dir = next(runs.iterdir())
    run_id = json.loads((run_dir / "run.json").read_text())["mlflow_run_id"]
    assert _client(server).get_run(run_id).info.status == "RUNNING"
    result = run_cli("train", "--resume", run_dir, "--runs-dir", runs)
    assert result.exit_code == 0, (result.stdout[-2000:], result.stderr)
    client = _client(server)
    assert json.loads((run_dir / "run.json").read_text())["mlflow_run_id"] == run_id
    assert client.get_run(run_id).info.status == "FINISHED"
    steps = sorted(m.step for m in client.get_metric_history(run_id, "loss"))
    assert steps == list(range(1, 41))   # every epoch once: none lost at the kill, none repeated by the resume


def test_an_unreachable_server_is_one_line_before_training(tmp_path: Path) -> None:
    config = tiny_project(tmp_path, tracking={"mlflow": {"uri": f"http://127.0.0.1:{_free_port()}"}})
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert_user_error(result, "tracking.mlflow.uri: cannot log to MLflow: Connection refused")
    assert not (tmp_path / "runs").exists()
