"""Object storage against a real S3-API server on localhost (moto's standalone server, with credentials checked):
train from s3:// CSV and Parquet tables (an object, a prefix, a glob) with the same numbers as the local files,
predict from and to s3://, export to s3://, one-line errors before any run folder, and no secret in a run."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import run_cli, write_config
from tests.helpers import assert_user_error, train_ok

pytest.importorskip("moto", reason="pip install 'moto[server]' (the test extra)")
boto3 = pytest.importorskip("boto3")

BUCKET = "data"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """moto's S3-API server as its own process; the first 3 requests are unauthenticated (they make the IAM
    user whose keys the tests use), every later one is checked, so wrong keys are refused as on AWS."""
    port = _free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _rows(n: int, seed: int) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).round(3)
    y = (x @ np.array([1.0, -1.0, 0.5]) > 0).astype(int)
    return [[*map(float, row), int(label)] for row, label in zip(x, y)]


def _csv(rows: list[list[float]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["a", "b", "c", "label"])
    writer.writerows(rows)
    return out.getvalue().encode()


def _parquet(rows: list[list[float]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = list(zip(*rows))
    table = pa.table({"a": columns[0], "b": columns[1], "c": columns[2], "label": [int(v) for v in columns[3]]})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


@pytest.fixture(scope="module")
def store(server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A bucket holding the tables (also written locally, the reference), and the environment that reaches it."""
    iam = boto3.client("iam", endpoint_url=server, region_name="us-east-1", aws_access_key_id="setup",
                       aws_secret_access_key="setup")
    iam.create_user(UserName="kcli")
    iam.put_user_policy(UserName="kcli", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    keys = iam.create_access_key(UserName="kcli")["AccessKey"]
    s3 = boto3.client("s3", endpoint_url=server, region_name="us-east-1", aws_access_key_id=keys["AccessKeyId"],
                      aws_secret_access_key=keys["SecretAccessKey"])
    s3.create_bucket(Bucket=BUCKET)
    local = tmp_path_factory.mktemp("local")
    train, val, shard2 = _rows(60, 1), _rows(20, 2), _rows(30, 3)
    objects = {"train.csv": _csv(train), "val.csv": _csv(val), "pq/part-0.parquet": _parquet(train),
               "pq/part-1.parquet": _parquet(shard2), "val.parquet": _parquet(val),
               "shards/part-0.csv": _csv(train), "shards/part-1.csv": _csv(shard2),
               "shards/notes.txt": b"not a table", "vals/v.csv": _csv(val), "bad.csv": _csv(train) + b"1,2\n"}
    sink = io.BytesIO()
    np.savez(sink, x=np.array([r[:3] for r in val], np.float32), y=np.array([r[3] for r in val], np.int64))
    objects["val.npz"] = sink.getvalue()
    for name, body in objects.items():
        s3.put_object(Bucket=BUCKET, Key=name, Body=body)
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_bytes(body)
    env = {"AWS_ENDPOINT_URL": server, "AWS_ACCESS_KEY_ID": keys["AccessKeyId"],
           "AWS_SECRET_ACCESS_KEY": keys["SecretAccessKey"], "AWS_REGION": "us-east-1"}
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION"):
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        yield {"s3": s3, "local": local, "env": env, "server": server}


CONFIG = """\
    name: {name}
    seed: 3
    data:
      source: {source}
      path: {path}
      label: label
      validation: {{path: {val}}}
      batch_size: 16
    model:
      layers:
        - Dense: {{units: 4, activation: relu}}
        - Dense: {{units: 2, activation: softmax}}
    compile: {{optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}}
    fit: {{epochs: 1}}
    save: [keras]
"""


def _config(folder: Path, path: str, val: str, source: str = "csv", name: str = "obj") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_config(folder, CONFIG.format(name=name, source=source, path=path, val=val))


def _history(run: Path) -> dict[str, Any]:
    return json.loads((run / "history.json").read_text())


@pytest.fixture(scope="module")
def trained(store: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One run from s3:// CSV objects (a prefix of shards; validation: a glob) and one from the same local files
    (a folder; validation: the file), the reference; the s3 run logs to MLflow (a local SQLite store)."""
    folder = tmp_path_factory.mktemp("trained")
    local = store["local"]
    config = _config(folder / "s3", f"s3://{BUCKET}/shards/", f"'s3://{BUCKET}/va*/*.csv'")
    text = config.read_text().replace("save: [keras]\n", "")   # every format: none may hold a secret
    config.write_text(text + f"tracking: {{mlflow: {{uri: 'sqlite:///{folder}/mlflow.db'}}}}\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)   # MLflow's artifacts go to ./mlruns
        s3_run = train_ok(config, folder / "runs-s3")
    local_run = train_ok(_config(folder / "local", str(local / "shards"), str(local / "val.csv")),
                         folder / "runs-local")
    return {"s3": s3_run, "local": local_run, "folder": folder}


def test_csv_prefix_and_glob_from_s3_train_as_the_local_files(trained: dict[str, Path]) -> None:
    history = _history(trained["s3"])
    assert history == _history(trained["local"])
    config = (trained["s3"] / "config.yaml").read_text()
    assert f"s3://{BUCKET}/shards/" in config and f"s3://{BUCKET}/va*/*.csv" in config   # never rebased


def test_parquet_from_s3_trains_as_the_local_csv(trained: dict[str, Path]) -> None:
    folder = trained["folder"]
    s3_run = train_ok(_config(folder / "pq-s3", f"s3://{BUCKET}/pq", f"s3://{BUCKET}/val.parquet",
                              "parquet"), folder / "runs-pq-s3")
    assert _history(s3_run) == _history(trained["local"])   # the same rows as the local CSV: the same numbers


def test_prefix_and_glob_are_the_local_folder_and_glob(store: dict[str, Any], tmp_path: Path) -> None:
    """A prefix is its tables (the .txt left out) and a glob its matches, in name order, as local files are; the
    run records each object's size and modification time from the listing (fingerprints)."""
    from kcli.config.models import DataConfig
    from kcli.data.fingerprint import changed_files, fingerprints
    from kcli.data.table_files import table_files

    local = store["local"]
    for url, folder in ((f"s3://{BUCKET}/shards", local / "shards"), (f"s3://{BUCKET}/shards/", local / "shards"),
                        (f"s3://{BUCKET}/sh*/part-*.csv", f"{local}/sh*/part-*.csv")):
        copies, files = table_files(url, "csv", "data"), table_files(str(folder), "csv", "data")
        assert [p.name for p in copies] == [p.name for p in files] == ["part-0.csv", "part-1.csv"]
        assert [p.read_bytes() for p in copies] == [p.read_bytes() for p in files]
    data = DataConfig(source="csv", path=f"s3://{BUCKET}/shards/", label="label",
                      validation={"path": f"s3://{BUCKET}/va*/*.csv"})
    recorded = fingerprints(data)
    assert {k: v["bytes"] for k, v in recorded.items()} == {
        f"s3://{BUCKET}/shards/part-0.csv": (local / "shards/part-0.csv").stat().st_size,
        f"s3://{BUCKET}/shards/part-1.csv": (local / "shards/part-1.csv").stat().st_size,
        f"s3://{BUCKET}/vals/v.csv": (local / "vals/v.csv").stat().st_size}
    assert changed_files(recorded) == []
    store["s3"].put_object(Bucket=BUCKET, Key="changing/t.csv", Body=b"a,label\n1,0\n")
    recorded = fingerprints(DataConfig(source="csv", path=f"s3://{BUCKET}/changing/t.csv", label="label"))
    store["s3"].put_object(Bucket=BUCKET, Key="changing/t.csv", Body=b"a,label\n1,0\n2,1\n")
    assert changed_files(recorded) == [f"s3://{BUCKET}/changing/t.csv"]


def test_predict_from_and_to_s3(store: dict[str, Any], trained: dict[str, Path]) -> None:
    run, local = trained["s3"], store["local"]
    url = f"s3://{BUCKET}/out/predictions.csv"
    result = run_cli("predict", run, "--input", f"s3://{BUCKET}/val.csv", "--output", url)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert url in result.stdout
    reference = trained["folder"] / "predictions.csv"
    result = run_cli("predict", run, "--input", local / "val.csv", "--output", reference)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    uploaded = store["s3"].get_object(Bucket=BUCKET, Key="out/predictions.csv")["Body"].read()
    assert uploaded == reference.read_bytes() and uploaded.count(b"\n") == 21
    again = run_cli("predict", run, "--input", f"s3://{BUCKET}/val.csv", "--output", url)
    assert_user_error(again, f"--output: {url} already exists; pass --overwrite")
    wrong = run_cli("predict", run, "--input", f"s3://{BUCKET}/val.csv", "--output", f"s3://{BUCKET}/out/p.txt")
    assert_user_error(wrong, f"--output: s3://{BUCKET}/out/p.txt: the output must end in .csv, .npy or .npz")
    listed = store["s3"].list_objects_v2(Bucket=BUCKET, Prefix="out/")["Contents"]
    assert [o["Key"] for o in listed] == ["out/predictions.csv"]   # a failed command uploads nothing


def test_export_to_s3(store: dict[str, Any], trained: dict[str, Path]) -> None:
    run = trained["s3"]
    for fmt, url in (("keras", f"s3://{BUCKET}/models/model.keras"), ("savedmodel", f"s3://{BUCKET}/models/sm")):
        result = run_cli("export", run, "--format", fmt, "--output", url)
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        assert url in result.stdout
    listed = store["s3"].list_objects_v2(Bucket=BUCKET, Prefix="models/")["Contents"]
    names = {o["Key"]: o["Size"] for o in listed}
    assert names["models/model.keras"] > 1000 and names["models/sm/saved_model.pb"] > 1000
    assert any(k.startswith("models/sm/variables/") for k in names)
    assert not (run / "export").exists()   # written to the store only
    again = run_cli("export", run, "--format", "keras", "--output", f"s3://{BUCKET}/models/model.keras")
    assert_user_error(again, "already exists; choose another --output")
    wrong = run_cli("export", run, "--format", "keras", "--output", f"s3://{BUCKET}/models/m.h5")
    assert_user_error(wrong, f"--output: s3://{BUCKET}/models/m.h5: a keras export must end in .keras")


def test_no_credentials_in_the_run_or_mlflow(store: dict[str, Any], trained: dict[str, Path]) -> None:
    secrets = [store["env"]["AWS_SECRET_ACCESS_KEY"].encode(), store["env"]["AWS_ACCESS_KEY_ID"].encode()]
    with sqlite3.connect(trained["folder"] / "mlflow.db") as db:
        params = dict(db.execute("select key, value from params").fetchall())
    assert params["data.path"] == f"s3://{BUCKET}/shards/" and params["data.validation.path"].endswith("/*.csv")
    files = [p for p in [*trained["s3"].rglob("*"), trained["folder"] / "mlflow.db",
                         *(trained["folder"] / "mlruns").rglob("*")] if p.is_file()]
    assert len(files) > 20
    for path in files:
        body = path.read_bytes()
        assert not any(secret in body for secret in secrets), path
        assert b"kcli-objects" not in body, path   # the URL is recorded, never the local copy


@pytest.mark.parametrize(("path", "env", "expected"), [
    ("s3://nobucket/train.csv", {}, "data.path: s3://nobucket/train.csv: the bucket nobucket does not exist"),
    (f"s3://{BUCKET}/nope.csv", {}, f"data.path: not found: s3://{BUCKET}/nope.csv"),
    (f"s3://{BUCKET}/train.csv", {"AWS_SECRET_ACCESS_KEY": "wrong"},
     f"data.path: s3://{BUCKET}/train.csv: access denied: check the credentials"),
    (f"s3://{BUCKET}/train.csv", {"AWS_ACCESS_KEY_ID": "AKIANOTAKEY"}, "access denied"),
    (f"s3://{BUCKET}/train.csv", {"AWS_ENDPOINT_URL": "closed"}, "cannot reach http://127.0.0.1:"),
    (f"s3://AKIAX:hunter2@{BUCKET}/train.csv", {}, "the URL holds credentials; give them in the environment"),
    (f"s3://{BUCKET}/bad.csv", {}, f"data.path: cannot read s3://{BUCKET}/bad.csv as csv"),
], ids=["bucket", "key", "secret", "access-key", "unreachable", "in-url", "bad-row"])
def test_store_errors_are_one_line_before_a_run_folder(store: dict[str, Any], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch, path: str,
                                                       env: dict[str, str], expected: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, f"http://127.0.0.1:{_free_port()}" if value == "closed" else value)
    config = _config(tmp_path, path, f"s3://{BUCKET}/val.csv")
    started = time.monotonic()
    line = assert_user_error(run_cli("train", config, "--runs-dir", tmp_path / "runs"), expected)
    assert time.monotonic() - started < 20
    assert "hunter2" not in line and store["env"]["AWS_SECRET_ACCESS_KEY"] not in line and "kcli-objects" not in line
    assert not (tmp_path / "runs").exists()


def test_input_shape_csv_from_s3_trains_as_the_local_file(store: dict[str, Any], tmp_path: Path) -> None:
    """The seed's way of reading a CSV (model.input_shape given: the numbers as one array); validation from an
    .npz object."""
    runs = []
    for where, base in (("s3", f"s3://{BUCKET}"), ("local", str(store["local"]))):
        config = _config(tmp_path / where, f"{base}/train.csv", f"{base}/val.npz")
        text = config.read_text().replace("model:\n", "model:\n  input_shape: [3]\n")
        config.write_text(text.replace("validation: {path:", "validation: {source: npz, path:"))
        runs.append(train_ok(config, tmp_path / f"runs-{where}"))
    assert _history(runs[0]) == _history(runs[1]) and "val_loss" in _history(runs[0])[0]


def test_validate_lists_the_objects(store: dict[str, Any], tmp_path: Path) -> None:
    ok = run_cli("validate", _config(tmp_path / "ok", f"s3://{BUCKET}/shards/", f"s3://{BUCKET}/val.csv"))
    assert ok.exit_code == 0, (ok.stdout, ok.stderr)
    missing = run_cli("validate", _config(tmp_path / "missing", f"s3://{BUCKET}/train.csv", f"s3://{BUCKET}/v.csv"))
    assert_user_error(missing, f"data.validation.path: not found: s3://{BUCKET}/v.csv")


def test_evaluate_reads_the_split_and_data_from_s3(trained: dict[str, Path]) -> None:
    for name in ("s3", "local"):
        result = run_cli("evaluate", trained[name])
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        assert "differs" not in result.stdout + result.stderr   # the objects' fingerprints still hold
    reports = [json.loads((trained[n] / "eval-validation.json").read_text()) for n in ("s3", "local")]
    assert reports[0]["examples"] == reports[1]["examples"] == 20
    assert (reports[0]["loss"], reports[0]["accuracy"]) == (reports[1]["loss"], reports[1]["accuracy"])
    url = f"s3://{BUCKET}/val.csv"
    result = run_cli("evaluate", trained["s3"], "--data", url)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    on_file = json.loads((trained["s3"] / "eval-val.json").read_text())
    assert on_file["data"] == url and on_file["loss"] == reports[0]["loss"]   # the same rows as the split
    missing = run_cli("evaluate", trained["s3"], "--data", f"s3://{BUCKET}/gone.csv")
    assert_user_error(missing, f"--data: not found: s3://{BUCKET}/gone.csv")


def test_init_writes_a_config_for_a_csv_object(store: dict[str, Any], tmp_path: Path) -> None:
    url = f"s3://{BUCKET}/train.csv"
    result = run_cli("init", "--data", url, "--label", "label", "--output", tmp_path / "init.yaml")
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    text = (tmp_path / "init.yaml").read_text()
    assert f"  path: {url}\n" in text and "kcli-objects" not in text
    assert run_cli("validate", tmp_path / "init.yaml").exit_code == 0
    missing = run_cli("init", "--data", f"s3://{BUCKET}/gone.csv", "--label", "label", "--output", tmp_path / "x.yaml")
    assert_user_error(missing, f"--data: not found: s3://{BUCKET}/gone.csv")
