"""`kcli serve`: a real server process on a free localhost port per test group (stopped also when a test fails),
spoken to with the real v2 client (tritonclient) and raw HTTP; answers equal `kcli predict` on the same rows
for every model form (array, table columns, named inputs and outputs, image folder); bad input, size limit,
overload, reload and SIGTERM drain; the versioned SavedModel export for TF Serving / KServe."""

from __future__ import annotations

import base64
import csv
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.conftest import REPO, run_cli, write_config
from tests.helpers import assert_user_error, tiny_project, train_ok

STARTUP = 240.0   # seconds for a server to import TensorFlow and load its models on a crowded machine


class Server:
    """`kcli serve ARGS --port 0` in its own process; the port is read from its `listening on` line."""

    def __init__(self, cwd: Path, *args: str | Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.log = (cwd / f"serve-{time.monotonic_ns()}.log").open("w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "kcli", "serve", *map(str, args), "--port", "0"],
                                     cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self._wait_for_port()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def _wait_for_port(self) -> str:
        deadline = time.monotonic() + STARTUP
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if "listening on http://" in line:
                return line.split("listening on ")[1].split()[0]
        self.stop()
        raise AssertionError(f"the server did not start:\n{self.stderr()}")

    def stderr(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send `sig` and wait for the exit (killed after `timeout` seconds); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def request(self, path: str, body: Any = None, headers: dict[str, str] | None = None,
                timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of a GET (no body) or POST (bytes, or an object sent as JSON)."""
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def json(self, path: str, body: Any = None) -> tuple[int, Any]:
        status, _, content = self.request(path, body)
        return status, json.loads(content)

    def queued_rows(self, model: str) -> float:
        """The queue depth /metrics shows for `model`."""
        _, _, text = self.request("/metrics")
        for line in text.decode().splitlines():
            if line.startswith(f'kcli_queue_rows{{model="{model}"}}'):
                return float(line.split()[-1])
        return 0.0

    def triton(self) -> Any:
        import tritonclient.http as httpclient

        return httpclient.InferenceServerClient(self.url.removeprefix("http://"), network_timeout=60.0)


@contextmanager
def serving(cwd: Path, *args: str | Path) -> Iterator[Server]:
    """A running server, stopped (SIGTERM, then kill) when the block ends, also on failure."""
    server = Server(cwd, *args)
    try:
        yield server
    finally:
        server.stop()
        server.log.close()


def wait_until(check: Any, what: str, timeout: float = 120.0) -> None:
    """Poll `check()` until it is true (a deadline only against hangs, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


# ---- the four model forms, trained once ----

def _table_run(folder: Path) -> Path:
    from tests.data.test_tables import CONFIG, write_houses

    write_houses(folder / "train.csv", 96, seed=1)
    write_houses(folder / "val.csv", 32, seed=2)
    return train_ok(write_config(folder, "    name: houses\n" + CONFIG), folder / "runs")


def _multi_run(folder: Path) -> Path:
    from tests.model.test_multi_io import CONFIG, write_table

    for name, rows, seed in (("train.csv", 64, 1), ("val.csv", 16, 2), ("test.csv", 16, 3)):
        write_table(folder / name, rows, seed)
    (folder / "config.yaml").write_text(yaml.safe_dump({**CONFIG, "fit": {"epochs": 1}}))
    return train_ok(folder / "config.yaml", folder / "runs")


def _image_run(folder: Path) -> Path:
    from tests.data.test_sources import IMG_CONFIG, _image_folder

    _image_folder(folder / "pics", per_class=6)
    return train_ok(write_config(folder, "    name: pics\n" + IMG_CONFIG), folder / "runs")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One folder per model form with its trained run."""
    made: dict[str, Path] = {}
    for kind, train in (("array", None), ("table", _table_run), ("multi", _multi_run), ("images", _image_run)):
        folder = tmp_path_factory.mktemp(kind)
        made[kind] = train(folder) if train else train_ok(tiny_project(folder), folder / "runs")
    folder = tmp_path_factory.mktemp("scaled")   # data.scale: predict multiplies the rows before the model
    made["scaled"] = train_ok(tiny_project(folder, name="scaled", data={"scale": 0.25}), folder / "runs")
    return made


@pytest.fixture(scope="module")
def server(project: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """All four runs behind one server (each under its config's name)."""
    with serving(tmp_path_factory.mktemp("serve"), *project.values(), "--max-request-bytes", "200000") as s:
        yield s
        assert s.stop() == 0, s.stderr()


def _predict(run: Path, source: Path, out: Path) -> None:
    result = run_cli("predict", run, "--input", source, "--output", out)
    assert result.exit_code == 0, result.stderr


def _predicted_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


# ---- answers equal kcli predict, over both protocols ----

def test_array_model_answers_equal_kcli_predict_over_both_protocols(project: dict[str, Path], server: Server) -> None:
    """TF Serving row and columnar formats, v2 JSON and the tritonclient v2 client (binary tensors): the raw
    outputs are kcli predict's to the bit, the class and probability are its CSV's."""
    run, folder = project["array"], project["array"].parent.parent
    scaled = project["scaled"]
    _predict(scaled, folder / "test.npz", folder / "scaled.npy")
    status, answer = server.json("/v1/models/scaled:predict", {"instances": np.load(folder / "test.npz")["x"].tolist()})
    assert status == 200 and np.array_equal(np.array([p["output_0"] for p in answer["predictions"]], np.float32),
                                            np.load(folder / "scaled.npy"))
    x = np.load(folder / "test.npz")["x"]
    _predict(run, folder / "test.npz", folder / "raw.npy")
    _predict(run, folder / "test.npz", folder / "pred.csv")
    raw, rows = np.load(folder / "raw.npy"), _predicted_csv(folder / "pred.csv")

    status, answer = server.json("/v1/models/tiny:predict", {"instances": x.tolist()})
    assert status == 200, answer
    served = np.array([p["output_0"] for p in answer["predictions"]], np.float32)
    assert np.abs(served - raw).max() == 0.0
    assert [p["predicted"] for p in answer["predictions"]] == [int(r["predicted"]) for r in rows]
    assert [np.float32(p["probability"]) for p in answer["predictions"]] == \
        [np.float32(r["probability"]) for r in rows]

    status, answer = server.json("/v1/models/tiny:predict", {"inputs": x.tolist()})
    assert status == 200 and np.array_equal(np.array(answer["outputs"]["output_0"], np.float32), raw)

    status, answer = server.json("/v2/models/tiny/infer", {"inputs": [
        {"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}]})
    assert status == 200, answer
    out = {o["name"]: o for o in answer["outputs"]}
    assert np.array_equal(np.array(out["output_0"]["data"], np.float32).reshape(out["output_0"]["shape"]), raw)

    import tritonclient.http as httpclient

    client = server.triton()
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("tiny")
    meta = client.get_model_metadata("tiny")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    tensor = httpclient.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer("tiny", [tensor])
    assert np.array_equal(result.as_numpy("output_0"), raw)
    assert result.as_numpy("predicted").tolist() == [int(r["predicted"]) for r in rows]


def test_table_model_takes_raw_cells_like_kcli_predict(project: dict[str, Path], server: Server) -> None:
    """Strings, empty cells and categories never seen in training: read as kcli predict reads a CSV; the class
    names are predict's."""
    run, folder = project["table"], project["table"].parent.parent
    cells = [{"rooms": 3, "area": 120.5, "city": "north", "zone": 2},
             {"rooms": 1, "area": None, "city": "atlantis", "zone": 9},   # empty area, unknown city and zone
             {"rooms": 5, "area": "", "city": "", "zone": 1}]
    with (folder / "ask.csv").open("w", newline="") as fh:
        out = csv.DictWriter(fh, ["rooms", "area", "city", "zone"])
        out.writeheader()
        out.writerows({k: "" if v is None else v for k, v in row.items()} for row in cells)
    _predict(run, folder / "ask.csv", folder / "raw.npy")
    _predict(run, folder / "ask.csv", folder / "pred.csv")
    raw, rows = np.load(folder / "raw.npy"), _predicted_csv(folder / "pred.csv")

    status, answer = server.json("/v1/models/houses:predict", {"instances": cells})
    assert status == 200, answer
    assert np.array_equal(np.array([p["output_0"] for p in answer["predictions"]], np.float32), raw)
    assert [p["predicted"] for p in answer["predictions"]] == [r["predicted"] for r in rows]
    assert {r["predicted"] for r in rows} <= {"big", "mid", "small"}

    import tritonclient.http as httpclient

    tensors = []
    for name, datatype, values in (("rooms", "FP32", [[3.0], [1.0], [5.0]]), ("area", "FP32", [[120.5], [np.nan],
                                   [np.nan]]), ("city", "BYTES", [[b"north"], [b"atlantis"], [b""]]),
                                   ("zone", "INT64", [[2], [9], [1]])):
        tensor = httpclient.InferInput(name, [3, 1], datatype)
        tensor.set_data_from_numpy(np.array(values, dtype=object if datatype == "BYTES" else
                                            np.float32 if datatype == "FP32" else np.int64))
        tensors.append(tensor)
    result = server.triton().infer("houses", tensors)
    assert np.array_equal(result.as_numpy("output_0"), raw)
    assert [v.decode() for v in result.as_numpy("predicted")] == [r["predicted"] for r in rows]


def test_named_inputs_and_several_outputs(project: dict[str, Path], server: Server) -> None:
    """A graph with two named inputs (float and int32) and two outputs: each output by name, equal to the
    columns of kcli predict's outputs."""
    run, folder = project["multi"], project["multi"].parent.parent
    _predict(run, folder / "test.csv", folder / "raw.npy")
    raw = np.load(folder / "raw.npy")
    table = np.loadtxt(folder / "test.csv", delimiter=",", skiprows=1)
    instances = [{"num": row[:3].tolist(), "code": [int(row[3])]} for row in table]
    status, answer = server.json("/v1/models/multi:predict", {"instances": instances})
    assert status == 200, answer
    served = np.array([p["amount"] + p["kind"] for p in answer["predictions"]], np.float32)
    assert np.array_equal(served, raw)
    status, meta = server.json("/v1/models/multi/metadata")
    signature = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert {k: v["dtype"] for k, v in signature["inputs"].items()} == {"num": "DT_FLOAT", "code": "DT_INT32"}
    assert set(signature["outputs"]) == {"amount", "kind"}

    import tritonclient.http as httpclient

    num = httpclient.InferInput("num", [len(table), 3], "FP32")
    num.set_data_from_numpy(table[:, :3].astype(np.float32))
    code = httpclient.InferInput("code", [len(table), 1], "INT32")
    code.set_data_from_numpy(table[:, 3:4].astype(np.int32))
    result = server.triton().infer("multi", [num, code],
                                   outputs=[httpclient.InferRequestedOutput("kind", binary_data=False)])
    assert np.array_equal(result.as_numpy("kind"), raw[:, 1:])
    assert result.as_numpy("amount") is None   # only the output asked for


def test_image_model_takes_image_bytes_and_names_classes(project: dict[str, Path], server: Server) -> None:
    """Image file bytes ({"b64": ...} / v2 BYTES) in; kcli predict's class names and probabilities out; raw
    outputs equal the model on the images as predict reads them."""
    import keras

    from kcli.data import images as image_source
    from kcli.run.find import open_run

    run, folder = project["images"], project["images"].parent.parent
    files = sorted((folder / "pics").rglob("*.png"))[:4]
    _predict(run, folder / "pics", folder / "pred.csv")
    by_file = {r["file"]: r for r in _predicted_csv(folder / "pred.csv")}
    expected = [by_file[str(f)] for f in files]
    model = keras.models.load_model(run / "model.keras")
    raw = model.predict(image_source.read_images(files, open_run(str(run), run.parent).config.data), verbose=0)

    body = {"instances": [{"image": {"b64": base64.b64encode(f.read_bytes()).decode()}} for f in files]}
    status, answer = server.json("/v1/models/pics:predict", body)
    assert status == 200, answer
    assert [p["predicted"] for p in answer["predictions"]] == [r["class"] for r in expected]
    assert [f"{p['probability']:.6g}" for p in answer["predictions"]] == [r["probability"] for r in expected]
    assert np.array_equal(np.array([p["output_0"] for p in answer["predictions"]], np.float32), raw)

    bare = {"instances": [{"b64": base64.b64encode(f.read_bytes()).decode()} for f in files]}   # one input
    assert server.json("/v1/models/pics:predict", bare)[1] == answer

    import tritonclient.http as httpclient

    tensor = httpclient.InferInput("image", [len(files)], "BYTES")
    tensor.set_data_from_numpy(np.array([f.read_bytes() for f in files], dtype=object))
    result = server.triton().infer("pics", [tensor])
    assert [v.decode() for v in result.as_numpy("predicted")] == [r["class"] for r in expected]


# ---- bad input: a 400 naming the input, row and field; the server stays up ----

def _b64(content: bytes) -> str:
    return base64.b64encode(content).decode()


BAD = [
    ("/v1/models/tiny:predict", b"{not json", "the body is not valid JSON"),
    ("/v1/models/tiny:predict", {"instances": [[1, 2, 3, 4], [1, 2, "x", 4]]},
     "input 'input': data row 2: field [2] is 'x', not a number"),
    ("/v1/models/tiny:predict", {"instances": [[1, 2, 3, 4], [1, 2, 3]]},
     "input 'input': data row 2: its shape is [3]"),
    ("/v1/models/tiny:predict", {"instances": [[[1, 2], [3]]]}, "data row 1: its lists have different lengths"),
    ("/v1/models/tiny:predict", {"instances": [[1, 2, 3]]},
     "data row 1: its shape is [3]; the model takes numbers of shape [4]"),
    ("/v1/models/tiny:predict", {"instances": [[1, 2, 3, 4], [1, float("nan"), 3, 4]]},
     "input 'input': data row 2, feature 2 is nan"),
    ("/v1/models/tiny:predict", {"instances": [[1, 2, True, 4]]}, "field [2] is true, not a number"),
    ("/v1/models/tiny:predict", {"instances": [{"inputs": [1, 2, 3, 4]}]}, "unknown input 'inputs'"),
    ("/v1/models/tiny:predict", {"rows": []}, 'give exactly one of "instances"'),
    ("/v1/models/tiny:predict", {"instances": []}, "the request has no rows"),
    ("/v1/models/tiny:predict", [1, 2], "the body must be a JSON object"),
    ("/v1/models/tiny:predict", b"[" * 100000 + b"]" * 100000, "the body is not valid JSON"),
    ("/v1/models/tiny:predict", {"instances": [[1, 2, 3, 10**30]]}, "a value does not fit a 64-bit number"),
    ("/v1/models/tiny:predict", b'{"instances": [[1, 2, 3, 1e400]]}', "input 'input': data row 1, feature 4 is inf"),
    ("/v1/models/tiny:predict", {"signature_name": "other", "instances": [[1, 2, 3, 4]]},
     "unknown signature_name 'other'"),
    ("/v1/models/houses:predict", {"instances": [{"rooms": 1, "area": 2, "city": "north"}]}, "missing input 'zone'"),
    ("/v1/models/houses:predict", {"instances": [{"rooms": 1, "area": 2, "city": "north", "zone": 1, "x": 5}]},
     "unknown input 'x'; the model's inputs are: rooms, area, city, zone"),
    ("/v1/models/houses:predict", {"instances": [{"rooms": "many", "area": 2, "city": "north", "zone": 1}]},
     "request: data row 1, column 'rooms' is 'many', not a number"),
    ("/v1/models/houses:predict", {"instances": [{"rooms": [1, 2], "area": 2, "city": "north", "zone": 1}]},
     "input 'rooms': data row 1 is a list; a table cell is one value"),
    ("/v1/models/multi:predict", {"instances": [{"num": [1, 2, 3], "code": [1.5]}]},
     "input 'code': data row 1, feature 1 is 1.5, not a whole number within int32"),
    ("/v1/models/multi:predict", {"instances": [{"num": [1, 2, 3], "code": [1]}, {"num": [1, 2, 3], "code": [7]}]},
     "the model refused the input: indices[1,0] = 7 is not in [0, 4)"),
    ("/v1/models/pics:predict", {"instances": [{"image": {"b64": _b64(b"GIF89a\x10\x27\x10\x27")}}]},
     "input 'image': data row 1 declares 10000 x 10000 pixels"),
    ("/v1/models/pics:predict", {"instances": [{"image": {"b64": "%%%"}}]}, "data row 1 is not valid base64"),
    ("/v1/models/pics:predict", {"instances": [{"image": {"b64": _b64(b"\x89PNG\r\n\x1a\nrest")}}]},
     "input 'image': data row 1 is not an image TensorFlow can decode"),
    ("/v2/models/tiny/infer", {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2]}]},
     "input 'input': shape [1, 4] needs 4 values, data has 2"),
    ("/v2/models/tiny/infer", {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP99", "data": [1] * 4}]},
     "unknown datatype 'FP99'"),
    ("/v2/models/tiny/infer", {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "BYTES",
                                           "data": ["a", "b", "c", "d"]}]}, "input 'input' holds object values"),
    ("/v2/models/tiny/infer", {"inputs": [{"name": "input", "shape": [2**40, 2**40], "datatype": "FP32",
                                           "data": [1] * 4}]}, "needs 1208925819614629174706176 values, data has 4"),
    ("/v2/models/tiny/infer", {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1] * 4}]},
     "unknown input 'x'; the model's inputs are: input"),
    ("/v2/models/tiny/infer", {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                           "parameters": {"binary_data_size": 16}}]},
     "binary_data_size 16 does not fit"),
    ("/v2/models/tiny/infer", {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1] * 4}],
                               "outputs": [{"name": "scores"}]}, "unknown output 'scores'"),
]


@pytest.mark.parametrize(("path", "body", "expected"), BAD, ids=[f"{i}-{b[2][:30]}" for i, b in enumerate(BAD)])
def test_bad_input_is_a_400_naming_input_row_and_field(server: Server, path: str, body: Any, expected: str) -> None:
    status, headers, content = server.request(path, body)
    assert status == 400, content
    assert headers["content-type"] == "application/json"
    assert expected in json.loads(content)["error"]
    status, _ = server.json("/v1/models/tiny:predict", {"instances": [[1, 2, 3, 4]]})   # still up
    assert status == 200


def test_limits_unknown_models_and_metrics(server: Server) -> None:
    """413 past --max-request-bytes; 404 for a model or version not served; /metrics counts requests by code
    and shows the batch sizes; the access log has one line per request."""
    assert server.json("/v1/models/tiny:predict", {"instances": [[1, 2, 3, 4]]})[0] == 200
    status, _, content = server.request("/v1/models/tiny:predict", b" " * 300000)
    assert status == 413 and "--max-request-bytes" in json.loads(content)["error"]
    status, _, content = server.request("/v1/models/tiny:predict", {"instances": [[1, 2, 3, 4]] * 4097})
    assert status == 413 and "the request has 4097 rows; the queue holds at most 4096" in json.loads(content)["error"]
    status, _, content = server.request("/v2/models/tiny/infer", b"{}", {"Inference-Header-Content-Length": "99"})
    assert status == 400 and "does not fit a body of 2 bytes" in json.loads(content)["error"]
    status, answer = server.json("/v1/models/nope:predict", {"instances": [[1, 2, 3, 4]]})
    assert status == 404 and "'nope' is not served here; served: tiny, houses, multi, pics, scaled" in answer["error"]
    status, answer = server.json("/v1/models/tiny/versions/7:predict", {"instances": [[1, 2, 3, 4]]})
    assert status == 404 and "serves version 1" in answer["error"]
    assert server.json("/v1/models/tiny/versions/1")[1]["model_version_status"][0]["state"] == "AVAILABLE"
    status, answer = server.json("/v1/models/tiny:classify", {"instances": [[1, 2, 3, 4]]})
    assert status == 404 and "kcli serve answers :predict only, not :classify" in answer["error"]
    status, answer = server.json("/v2/models/tiny/generate", {})
    assert status == 404 and "no route POST '/v2/models/tiny/generate'" in answer["error"]
    _, _, text = server.request("/metrics")
    metrics = text.decode()
    assert 'kcli_requests_total{code="413",model="tiny",protocol="tfserving"} 2.0' in metrics
    assert 'kcli_request_errors_total{code="413",model="tiny",protocol="tfserving"} 2.0' in metrics
    assert 'kcli_batch_rows_count{model="tiny"}' in metrics and "kcli_request_seconds_bucket" in metrics
    server.request("/v1/models/tiny/metadata%1b[31m")
    wait_until(lambda: "/v1/models/tiny/metadata\\u001b[31m\" 404" in server.stderr(), "the access-log line")
    assert '"POST /v1/models/tiny:predict" 413' in server.stderr()


# ---- overload, reload, drain: one server whose batches wait (--batch-timeout) so requests stay in flight ----

@pytest.fixture(scope="module")
def slow_server(project: dict[str, Path]) -> Iterator[Server]:
    """`latest:tiny` with a queue of one row and batches that wait 2 s for more rows."""
    folder = project["array"].parent.parent
    with serving(folder, "latest:tiny", "--max-queue-rows", "1", "--batch-timeout", "2") as s:
        yield s


def _in_background(server: Server, path: str, body: Any) -> tuple[threading.Thread, list[Any]]:
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(server.json(path, body)), daemon=True)
    thread.start()
    return thread, got


def test_a_full_queue_is_a_503_with_retry_after(slow_server: Server) -> None:
    """The queue holds one row: while it waits, another request is refused at once, not queued."""
    thread, got = _in_background(slow_server, "/v1/models/tiny:predict", {"instances": [[1, 2, 3, 4]]})
    wait_until(lambda: slow_server.queued_rows("tiny") == 1, "the first request to queue")
    status, headers, content = slow_server.request("/v1/models/tiny:predict", {"instances": [[4, 3, 2, 1]]})
    assert status == 503 and headers["retry-after"] == "1", content
    assert "the queue of model 'tiny' is full (1 rows)" in json.loads(content)["error"]
    thread.join(120)
    assert got[0][0] == 200 and len(got[0][1]["predictions"]) == 1


def test_sighup_serves_a_newer_run_of_latest_name_without_dropping_requests(project: dict[str, Path],
                                                                            slow_server: Server) -> None:
    """A newer completed `tiny` run is loaded beside the old model on SIGHUP; requests during the reload are
    answered (by the old model until the swap); the version grows."""
    folder = project["array"].parent.parent
    newer = train_ok(folder / "config.yaml", folder / "runs", "--set", "seed=11")
    answers: list[int] = []
    stop = threading.Event()

    def keep_asking() -> None:
        while not stop.is_set():
            answers.append(slow_server.json("/v1/models/tiny:predict", {"instances": [[1, 2, 3, 4]]})[0])

    asking = threading.Thread(target=keep_asking, daemon=True)
    asking.start()
    try:
        slow_server.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: slow_server.json("/v1/models/tiny")[1]["model_version_status"][0]["version"] == "2",
                   "the reload")
    finally:
        stop.set()
        asking.join(120)
    assert answers and set(answers) == {200}, answers
    assert f"reloaded tiny: runs/{newer.name} (version 2)" in slow_server.stderr()
    _predict(newer, folder / "test.npz", folder / "newer.npy")
    x = np.load(folder / "test.npz")["x"][:1]
    status, answer = slow_server.json("/v2/models/tiny/infer", {"inputs": [
        {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": x.reshape(-1).tolist()}]})
    assert status == 200 and answer["model_version"] == "2"
    assert np.array_equal(np.array(answer["outputs"][0]["data"], np.float32), np.load(folder / "newer.npy")[0])


def test_reload_looks_for_newer_runs_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """--reload: the same check as SIGHUP, every RELOAD_EVERY seconds, until the server stops."""
    import asyncio

    from kcli.serve import server as server_mod

    class Counting:
        checks = 0

        async def check(self) -> None:
            self.checks += 1

    reloader = Counting()
    monkeypatch.setattr(server_mod, "RELOAD_EVERY", 0.01)

    async def run_for_a_while() -> None:
        task = asyncio.create_task(server_mod._poll(reloader))  # type: ignore[arg-type]
        while reloader.checks < 3:
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(asyncio.wait_for(run_for_a_while(), 60))
    assert reloader.checks >= 3


def test_sigterm_finishes_the_requests_in_flight_and_exits_0(slow_server: Server) -> None:
    """SIGTERM while a request waits in the batcher: it is answered, new connections are refused, exit 0."""
    thread, got = _in_background(slow_server, "/v1/models/tiny:predict", {"instances": [[1, 2, 3, 4]]})
    wait_until(lambda: slow_server.queued_rows("tiny") == 1, "the request to queue")
    slow_server.proc.send_signal(signal.SIGTERM)
    thread.join(120)
    assert got and got[0][0] == 200, got
    assert slow_server.proc.wait(60) == 0, slow_server.stderr()
    host, port = slow_server.url.removeprefix("http://").split(":")
    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=5):
        pass


# ---- before the port opens: one error line, exit 2 ----

def test_without_the_serve_extra_one_line_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)   # an import of it now fails as if it were not installed
    line = assert_user_error(run_cli("serve", "latest"), "kcli serve needs the serve extra")
    assert line == "error: kcli serve needs the serve extra: pip install 'kcli-keras[serve]'"


def test_a_model_that_cannot_load_is_one_line_before_the_port_opens(project: dict[str, Path], tmp_path: Path) -> None:
    """No run, an untrusted run's code, a port in use, names that do not fit: one line each, exit 2."""
    assert_user_error(run_cli("serve", tmp_path / "nope", "--runs-dir", tmp_path), "no run directory")
    assert_user_error(run_cli("serve", "latest:tiny", "--runs-dir", tmp_path),
                      "no completed run named 'tiny' under")
    run = project["array"]
    assert_user_error(run_cli("serve", run, run), "two runs would be served as 'tiny'")
    assert_user_error(run_cli("serve", run, "--name", "a", "--name", "b"), "give one --name per RUN")
    assert run_cli("serve", run, "--batch-timeout", "inf").exit_code == 2   # a batch would never run: refused
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    (broken / "model.keras").write_bytes(b"not a model")
    (broken / "model.weights.h5").write_bytes(b"not weights")
    assert_user_error(run_cli("serve", broken), "cannot load")
    stranger = tmp_path / "stranger"
    shutil.copytree(run, stranger)
    record = json.loads((stranger / "run.json").read_text())
    (stranger / "run.json").write_text(json.dumps({**record, "imports": {"files": [], "modules": ["antigravity"]}}))
    assert_user_error(run_cli("serve", stranger), "would run Python code with your rights: module antigravity")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_user_error(run_cli("serve", run, "--port", str(port)), f"--port: port {port} on 127.0.0.1 is in use")


# ---- the serving export: DIR/NAME/VERSION for TF Serving and KServe ----

def _tf_serving_feed(body: dict[str, Any], function: Any) -> dict[str, Any]:
    """What TF Serving makes of a row-format body for a signature: one tensor per input ({"b64"} as bytes)."""
    import tensorflow as tf

    specs = function.structured_input_signature[1]
    rows = body["instances"]
    named = isinstance(rows[0], dict) and set(rows[0]) != {"b64"}
    columns = {name: [r[name] for r in rows] for name in specs} if named else {next(iter(specs)): rows}
    unwrap = lambda v: base64.b64decode(v["b64"]) if isinstance(v, dict) else v  # noqa: E731
    return {name: tf.constant([unwrap(v) for v in values], specs[name].dtype) for name, values in columns.items()}


SERVING_BODIES = {
    "tiny": {"instances": [[0.5, -1.0, 2.0, 0.1], [1, 2, 3, 4]]},
    "scaled": {"instances": [[0.5, -1.0, 2.0, 0.1], [1, 2, 3, 4]]},
    "houses": {"instances": [{"rooms": [3], "area": [120.5], "city": ["north"], "zone": [2]},
                             {"rooms": [1], "area": [float("nan")], "city": [" atlantis "], "zone": [9]}]},
    "multi": {"instances": [{"num": [0.1, 0.2, 0.3], "code": [1]}, {"num": [1, -1, 0], "code": [3]}]},
}


def test_serving_dir_export_is_versioned_and_takes_the_documented_bodies(project: dict[str, Path], server: Server,
                                                                          tmp_path: Path) -> None:
    """`--serving-dir DIR` writes DIR/NAME/1, then DIR/NAME/2; the SavedModel's serving_default takes the
    bodies kcli serve takes (as TF Serving turns them into tensors) and answers what kcli serve answers."""
    import tensorflow as tf

    pics = sorted((project["images"].parent.parent / "pics").rglob("*.png"))[:3]
    bodies = {**SERVING_BODIES, "pics": {"instances": [{"b64": _b64(f.read_bytes())} for f in pics]}}
    for kind, run in project.items():
        result = run_cli("export", run, "--format", "savedmodel", "--serving-dir", tmp_path / "models")
        assert result.exit_code == 0, result.stderr
        assert "tensorflow/serving" in result.stdout
        name = run.name.split("-")[0]
        assert (tmp_path / "models" / name / "1" / "saved_model.pb").is_file()
        assert (tmp_path / "models" / name / "1" / "variables").is_dir()
        loaded = tf.saved_model.load(str(tmp_path / "models" / name / "1"))
        function = loaded.signatures["serving_default"]
        served_inputs = {t["name"]: t["datatype"] for t in server.json(f"/v2/models/{name}")[1]["inputs"]}
        assert {k: s.dtype.name for k, s in function.structured_input_signature[1].items()} == \
            {k: {"FP32": "float32", "INT64": "int64", "INT32": "int32", "BYTES": "string"}[v]
             for k, v in served_inputs.items()}
        got = function(**_tf_serving_feed(bodies[name], function))
        status, answer = server.json(f"/v1/models/{name}:predict", bodies[name])
        assert status == 200, answer
        expected = answer["predictions"]
        for output, values in got.items():
            served = [p[output] for p in expected] if isinstance(expected[0], dict) else expected
            if values.dtype == tf.string:
                assert [v.decode() for v in values.numpy()] == served, kind
            else:
                np.testing.assert_allclose(values.numpy(), np.array(served, np.float32), atol=1e-5, rtol=0,
                                           err_msg=f"{kind} {output}")
        assert set(got) == (set(expected[0]) if isinstance(expected[0], dict) else {"output_0"})
    result = run_cli("export", project["array"], "--format", "savedmodel", "--serving-dir", tmp_path / "models")
    assert result.exit_code == 0 and (tmp_path / "models" / "tiny" / "2" / "saved_model.pb").is_file()
    assert sorted(p.name for p in (tmp_path / "models" / "tiny").iterdir()) == ["1", "2"]
    assert_user_error(run_cli("export", project["array"], "--format", "onnx", "--serving-dir", tmp_path / "m"),
                      "--serving-dir: --serving-dir writes a SavedModel: use --format savedmodel")


# ---- the batcher and the JSON writer, without TensorFlow ----

class _Doubling:
    """A stand-in model: doubles its rows, fails on a negative value, records each call's row count."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.gate = threading.Event()   # calls wait until the test opens it

    def predict(self, x: np.ndarray) -> list[np.ndarray]:
        self.gate.wait(60)
        self.calls.append(len(x))
        if (x < 0).any():
            raise ValueError("negative")
        return [x * 2]

    def answers(self, raw: list[np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": raw[0]}


def test_queued_requests_are_merged_into_full_batches_and_answered_their_own_rows() -> None:
    """Four 2-row requests fill a batch of 8: one model call; a failing request fails alone; past
    --max-queue-rows a request is refused at once."""
    import asyncio

    from kcli.serve.batching import Batcher, Overloaded

    model = _Doubling()

    async def scenario() -> None:
        batcher = Batcher(max_batch=8, timeout=60.0, max_queue_rows=16)   # a batch runs once it is full
        try:
            futures = [batcher.submit(model, np.full((2, 1), i, np.float32), 2) for i in range(1, 9)]
            with pytest.raises(Overloaded):   # 16 rows wait (the first batch is held at the gate)
                batcher.submit(model, np.zeros((1, 1), np.float32), 1)
            model.gate.set()
            answers = await asyncio.wait_for(asyncio.gather(*futures), 60)
            assert [a["y"][:, 0].tolist() for a in answers] == [[2.0 * i] * 2 for i in range(1, 9)]
            assert model.calls == [8, 8]
            bad = [batcher.submit(model, np.full((4, 1), v, np.float32), 4) for v in (1, -1)]
            results = await asyncio.wait_for(asyncio.gather(*bad, return_exceptions=True), 60)
            assert results[0]["y"][:, 0].tolist() == [2.0] * 4 and isinstance(results[1], ValueError)
            assert model.calls[2:] == [8, 4, 4]   # the failed batch, then each request alone
        finally:
            await asyncio.to_thread(batcher.stop)

    asyncio.run(scenario())


def test_answers_with_nan_are_written_as_tf_serving_writes_them() -> None:
    from kcli.serve.app import _Json

    assert _Json({"predictions": [[float("nan"), float("inf")]]}).body == b'{"predictions":[[NaN,Infinity]]}'


# ---- hostile clients: half-sent bodies, ... ----

def _half_send(server: Server) -> socket.socket:
    """A connection that declares a 25-byte body and sends 6 of them."""
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    sock.sendall(b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 25\r\n\r\n{\"inst")
    return sock


def test_a_half_sent_body_does_not_keep_sigterm_from_finishing(project: dict[str, Path], tmp_path: Path) -> None:
    """SIGTERM with a body half sent: after --drain-timeout the request is cut and the server exits 0 (it used
    to wait for the body forever)."""
    with serving(tmp_path, project["array"], "--drain-timeout", "1") as server:
        sock = _half_send(server)
        try:
            assert server.request("/v2/health/live")[0] == 200   # the server is up and has read the head
            time.sleep(0.2)
            server.proc.send_signal(signal.SIGTERM)
            # well under --body-timeout's 30 s, so the drain bound (not the body timeout) ended it
            assert server.proc.wait(20) == 0, server.stderr()
        finally:
            sock.close()


def test_a_body_not_sent_within_the_body_timeout_is_a_408() -> None:
    """The body reader gives up after the body timeout: 408 instead of holding the connection."""
    import asyncio

    from starlette.requests import Request

    from kcli.serve import app

    async def receive() -> dict[str, Any]:
        if not sent:
            sent.append(1)
            return {"type": "http.request", "body": b'{"inst', "more_body": True}
        await asyncio.sleep(3600)   # the rest never comes
        return {}

    sent: list[int] = []
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-length", b"25")]}
    with pytest.raises(app.TooSlow):
        asyncio.run(asyncio.wait_for(app._body(Request(scope, receive), 1000, 0.05), 60))


@pytest.mark.parametrize(("kind", "off_the_loop"), [("images", True), ("array", False)])
def test_images_are_decoded_off_the_event_loop(kind: str, off_the_loop: bool) -> None:
    """A small image body can decode to millions of pixels: its prepare runs on a worker thread, so health
    checks and other requests are not held up; a small array body stays on the loop (cheaper there)."""
    import asyncio
    from types import SimpleNamespace

    from kcli.serve import app

    threads: list[threading.Thread] = []

    class Model:
        def prepare(self, columns: Any, rows: int) -> str:
            threads.append(threading.current_thread())
            return "x"

    async def submit(model: Any, x: Any, rows: int) -> str:
        return x

    model = Model()
    model.kind = kind  # type: ignore[attr-defined]
    slot = SimpleNamespace(batcher=SimpleNamespace(submit=submit))
    state = SimpleNamespace(limits=app.Limits())
    assert asyncio.run(app._run_model(slot, state, model, {}, 1, 100)) == "x"  # type: ignore[arg-type]
    assert (threads[0] is not threading.main_thread()) == off_the_loop


def test_a_run_that_fails_to_reload_is_tried_again_only_when_it_changes(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """--reload looks every 2 s: a broken newest run is said once and not loaded again until its run.json
    changes (it used to be loaded, and its failure written, every 2 s forever)."""
    import asyncio
    from types import SimpleNamespace

    from kcli.serve import server as server_mod

    broken = tmp_path / "tiny-2"
    broken.mkdir()
    (broken / "run.json").write_text("{}")
    tries: list[str] = []

    def failing(*args: Any) -> None:
        tries.append("load")
        raise ValueError("model.keras cannot be read")

    monkeypatch.setattr(server_mod.find, "latest_named", lambda *args: broken)
    monkeypatch.setattr(server_mod, "ServedModel", failing)
    old = SimpleNamespace(ref="latest:tiny", path=tmp_path / "tiny-1", runs_dir=tmp_path, trust_code=False,
                          version=1)
    notes: list[str] = []
    reloader = server_mod.Reloader(SimpleNamespace(slots={"tiny": SimpleNamespace(model=old)}),  # type: ignore
                                   tmp_path, notes.append)

    async def checks(times: int) -> None:
        for _ in range(times):
            await reloader.check()

    asyncio.run(checks(3))
    assert len(tries) == 1 and len(notes) == 1 and "model.keras cannot be read" in notes[0], notes
    (broken / "run.json").write_text('{"changed": 1}')
    asyncio.run(checks(2))
    assert len(tries) == 2 and len(notes) == 2


def test_a_junk_model_keras_is_named_as_unreadable_not_missing(project: dict[str, Path], tmp_path: Path) -> None:
    """Keras says "File not found" for a model.keras that is not a zip: the line says what is wrong instead."""
    broken = tmp_path / "junk"
    shutil.copytree(project["array"], broken)
    (broken / "model.keras").write_bytes(b"junk" * 10)
    (broken / "model.weights.h5").write_bytes(b"not weights")
    line = assert_user_error(run_cli("serve", broken), "model.keras: it cannot be read as a Keras model")
    assert "File not found" not in line


def test_long_model_names_are_capped_and_wrong_methods_are_405_with_allow(server: Server) -> None:
    """A 100,000-character model name is not echoed in full; GET on a :predict or /infer path is a 405 naming
    the method it takes in Allow (a GET .../tiny:predict used to be a 404 for a model called 'tiny:predict')."""
    for path in (f"/v1/models/{'a' * 100_000}:predict", f"/v1/models/tiny/versions/{'9' * 100_000}:predict",
                 f"/v2/models/{'a' * 100_000}/infer"):
        status, _, content = server.request(path, {"instances": [[1, 2, 3, 4]]})
        assert status == 404 and len(content) < 1000 and ("aaa..." in content.decode() or "999..." in content.decode())
    status, _, content = server.request(f"/{'b' * 100_000}")
    assert status == 404 and len(content) < 1000, content[:200]
    for path in ("/v1/models/tiny:predict", "/v1/models/tiny/versions/1:predict", "/v2/models/tiny/infer"):
        status, headers, content = server.request(path)
        assert status == 405 and headers["allow"] == "POST", (path, status, content)
        assert "does not answer GET; it answers POST" in json.loads(content)["error"]
    status, headers, _ = server.request("/v2/health/live", b"{}")
    assert status == 405 and "GET" in headers["allow"]


def test_a_client_that_leaves_mid_body_is_counted_apart_from_errors() -> None:
    """A disconnect before the body is read is kcli_client_disconnects_total, not a 400 in the error count."""
    import asyncio
    from types import SimpleNamespace

    from starlette.requests import Request

    from kcli.serve import app

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def handle(slot: Any, body: bytes) -> Any:
        raise AssertionError("no body was sent")

    state = app.State([], app.Limits(), lambda line: None)
    state.slots["tiny"] = SimpleNamespace(model=SimpleNamespace(name="tiny", version=1))  # type: ignore
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "path_params": {"name": "tiny"}}
    asyncio.run(app._answer(state, Request(scope, receive), "v2", handle))
    metrics = state.metrics.text().decode()
    assert 'kcli_client_disconnects_total{model="tiny",protocol="v2"} 1.0' in metrics
    assert 'kcli_request_errors_total{' not in metrics and 'kcli_requests_total{' not in metrics


PLAIN = [
    (b'{"instances": [[1, 2, 3, ' + b"7" * 5000 + b"]]}", "the body is not valid JSON: a number has 5,000 digits "
     "(at most 4,300)"),
    (b"[" * 100000 + b"]" * 100000, "the body is not valid JSON: it is nested too deeply"),
    (b'{"instances": [[1, 2, 3, 4]], "x": ' + b"[" * 500 + b"]" * 500 + b"}", None),
]


@pytest.mark.parametrize(("body", "expected"), PLAIN, ids=["digits", "nesting", "fine"])
def test_json_errors_say_what_is_wrong_in_plain_words(server: Server, body: Any, expected: str | None) -> None:
    """Python's digit limit and recursion limit are named as such, not cut mid-word or as 'recursion depth'."""
    status, _, content = server.request("/v1/models/tiny:predict", body)
    if expected is None:
        assert status == 200, content
        return
    error = json.loads(content)["error"]
    assert status == 400 and error == expected, error


def test_an_undecodable_image_is_named_without_tensorflow_internals(server: Server) -> None:
    """Bytes that start like a PNG but do not decode: a plain reason, not TF's {{function_node ...}} text."""
    body = {"instances": [{"image": {"b64": _b64(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)}}]}
    status, _, content = server.request("/v1/models/pics:predict", body)
    error = json.loads(content)["error"]
    assert status == 400 and "input 'image': data row 1 is not an image TensorFlow can decode (" in error, error
    assert "function_node" not in error and "{{" not in error, error


def test_a_v2_input_given_twice_is_a_400_naming_it(server: Server) -> None:
    """The same input name twice in a v2 request: refused, not answered with the last copy."""
    tensor = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
    status, answer = server.json("/v2/models/tiny/infer", {"inputs": [tensor, {**tensor, "data": [4, 3, 2, 1]}]})
    assert status == 400 and answer["error"] == "input 'input' is given twice (inputs[1]); send each input once"


# ---- numbers outside the model's types: one owner (data.checks.as_float, tables' whole-number codes) ----

TOO_LARGE = [
    ("/v1/models/houses:predict", {"instances": [{"rooms": 1, "area": 1e39, "city": "north", "zone": 1}]},
     "request: data row 1, column 'area': 1e+39 is too large for float32 (|x| > 3.4e38)"),
    ("/v1/models/houses:predict", {"instances": [{"rooms": 1, "area": 2, "city": "north", "zone": 1},
                                                 {"rooms": 1e300, "area": 2, "city": "north", "zone": 1}]},
     "request: data row 2, column 'rooms': 1e+300 is too large for float32"),
    ("/v2/models/tiny/infer", {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64",
                                           "data": [1e300, 2, 3, 4]}]},
     "input 'input': data row 1, feature 1: 1e+300 is too large for float32"),
    ("/v1/models/houses:predict", {"instances": [{"rooms": 1, "area": 2, "city": "north", "zone": 2.7}]},
     "request: data row 1, column 'zone' is 2.7, not a whole number within int64"),
    ("/v1/models/houses:predict", {"instances": [{"rooms": 1, "area": 2, "city": "north", "zone": 1e30}]},
     "request: data row 1, column 'zone' is 1e+30, not a whole number within int64"),
    ("/v1/models/houses:predict", {"instances": [{"rooms": 1, "area": 2, "city": "north", "zone": True}]},
     "column 'zone' is read as true/false, not as whole numbers"),
    ("/v1/models/multi:predict", {"instances": [{"num": [1, 2, 3], "code": [1e30]}]},
     "input 'code': data row 1, feature 1 is 1e+30, not a whole number within int32"),
]


@pytest.mark.parametrize(("path", "body", "expected"), TOO_LARGE, ids=[b[2][:40] for b in TOO_LARGE])
def test_numbers_outside_the_models_types_are_a_400_naming_row_and_field(server: Server, path: str, body: Any,
                                                                         expected: str) -> None:
    status, _, content = server.request(path, body)
    assert status == 400, content
    assert expected in json.loads(content)["error"]


def test_predict_on_a_csv_with_a_number_too_large_for_float32_writes_nothing(project: dict[str, Path],
                                                                            tmp_path: Path) -> None:
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text("rooms,area,city,zone\n3,132.5,south,1\n1,1e39,north,2\n")
    result = run_cli("predict", project["table"], "--input", source, "--output", out)
    assert_user_error(result, "in.csv: data row 2, column 'area': 1e+39 is too large for float32 (|x| > 3.4e38)")
    assert not out.exists()


def test_table_cells_become_float32_and_int64_only_when_they_fit() -> None:
    import pyarrow as pa

    from kcli.config.models import ColumnConfig
    from kcli.data import column_stats, tables
    from kcli.errors import DataError

    columns = {"a": ColumnConfig(kind="number"), "z": ColumnConfig(kind="category", vocabulary=[1, 2, 3])}
    ok = tables.read_split(pa.table({"a": [1.5, 3e38], "z": [2, None]}), columns, Path("t.csv"), "data", None)
    assert ok.x["a"].dtype == np.float32 and ok.x["a"][1, 0] == np.float32(3e38)
    assert ok.x["z"].tolist() == [[2], [column_stats.MISSING_CODE]]   # whole codes (and missing) read as before
    for cells, expected in (({"a": [1.0, -1e39], "z": [1, 2]}, "data row 2, column 'a': -1e+39 is too large"),
                            ({"a": [1.0, 2.0], "z": [1, 2.7]}, "data row 2, column 'z' is 2.7, not a whole"),
                            ({"a": [1.0, 2.0], "z": [1e30, 2]}, "data row 1, column 'z' is 1e+30, not a whole"),
                            ({"a": [1.0, 2.0], "z": [True, False]}, "column 'z' is read as true/false")):
        with pytest.raises(DataError) as caught:
            tables.read_split(pa.table(cells), columns, Path("t.csv"), "data", None)
        assert expected in caught.value.message


def test_scaling_features_names_the_row_a_cast_or_the_scale_overflows() -> None:
    from kcli.data.prepare import scale_features
    from kcli.errors import DataError

    x = np.array([[1.0, 2.0], [3.0, 1e39]])
    with pytest.raises(DataError) as caught:
        scale_features(x, None, None, "f.npz", "--input", 1, ["p", "q"])
    assert "f.npz: data row 2, column 'q': 1e+39 is too large for float32" in caught.value.message
    with pytest.raises(DataError) as caught:
        scale_features(np.array([[1.0], [3e38]]), 10.0, None, "f.npz", "--input", 5)
    assert "f.npz: data row 6, feature 1: 3e+38 is too large for float32 after data.scale" in caught.value.message
    np.testing.assert_array_equal(scale_features(np.array([[2.0]]), 0.5), np.array([[1.0]], np.float32))


def test_integer_inputs_take_whole_numbers_within_their_type() -> None:
    from kcli.data.prepare import scale_features
    from kcli.errors import DataError

    for x, dtype, expected in ((np.array([[1.0], [2.7]]), "int64", "data row 2, feature 1 is 2.7, not a whole"),
                               (np.array([[1e30]]), "int64", "data row 1, feature 1 is 1e+30, not a whole"),
                               (np.array([[2**40]]), "int32", "is 1.09951e+12, not a whole number within int32")):
        with pytest.raises(DataError) as caught:
            scale_features(x, 0.5, dtype, "f.npz: input 'code'", "--input")
        assert expected in caught.value.message
    assert scale_features(np.array([[3.0], [-1.0]]), 0.5, "int64").tolist() == [[3], [-1]]   # never scaled
