"""`kcli serve` vs the server users write by hand: FastAPI + uvicorn calling `model.predict` per request on the
same `.keras` model. Single-row TF Serving row-format requests from 1, 8, 32 and 128 concurrent clients
(aiohttp, keep-alive) on localhost for a few seconds each: requests/s, p50/p99 latency, status codes, the
server's peak RSS. The model is an MLP (32 -> 64 -> 64 -> 10) trained one epoch by kcli on synthetic rows.

    python benchmarks/serve.py                 # appends a section to benchmarks/RESULTS.md
    python benchmarks/serve.py --seconds 3 --no-write

Goal (issue 24): at 32 clients at least 3x (b)'s throughput with a p99 no worse; at 128 clients no errors other
than 503s and RSS bounded; at 1 client a latency within 1.2x of (b)'s. Ludwig is not measured: `ludwig serve`
serves Ludwig's own PyTorch models (not this Keras model), and ludwig 0.11.0 (the newest on the index) requires
torch, torchvision, torchaudio, transformers, spacy, datasets, bitsandbytes and rich~=12.4 (gigabytes with
PyTorch's CUDA wheels): not a quick install in a separate venv on this shared 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ENV, add_output_args, kcli_command, machine, output, report  # noqa: E402

CONCURRENCY = (1, 8, 32, 128)
FEATURES = 32

CONFIG = f"""\
name: bench
seed: 1
data: {{source: npz, path: train.npz, one_hot: true}}
model:
  input_shape: [{FEATURES}]
  layers:
    - Dense: {{units: 64, activation: relu}}
    - Dense: {{units: 64, activation: relu}}
    - Dense: {{units: 10}}
compile:
  optimizer: adam
  loss: {{CategoricalCrossentropy: {{from_logits: true}}}}
fit: {{epochs: 1}}
save: [keras]
"""

# What the FastAPI tutorials show: a pydantic body, a sync endpoint (FastAPI runs it on its thread pool),
# model.predict on the request's rows, the predictions as lists.
HAND_WRITTEN = """
import sys
import keras, numpy as np, uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

model = keras.models.load_model(sys.argv[1])
app = FastAPI()

class Body(BaseModel):
    instances: list[list[float]]

@app.post("/v1/models/bench:predict")
def predict(body: Body):
    y = model.predict(np.asarray(body.instances, dtype="float32"), verbose=0)
    return {"predictions": y.tolist()}

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def train(folder: Path) -> Path:
    """A run of the benchmark model; returns its directory."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2048, FEATURES)).astype(np.float32)
    np.savez(folder / "train.npz", x=x, y=np.argmax(x[:, :10], axis=1))
    (folder / "config.yaml").write_text(CONFIG)
    subprocess.run([*kcli_command(), "train", "config.yaml", "--runs-dir", "runs"], cwd=folder, env=ENV,
                   check=True, capture_output=True)
    return next((folder / "runs").iterdir())


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    body = json.dumps({"instances": [[0.0] * FEATURES]}).encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode})")
        try:
            request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
            with urllib.request.urlopen(request, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError("the server did not come up")


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def load(url: str, clients: int, seconds: float, pid: int) -> dict[str, float | dict[str, int]]:
    """`clients` concurrent loops of single-row requests for `seconds`; latencies of the answered ones."""
    import aiohttp

    rng = np.random.default_rng(clients)
    bodies = [json.dumps({"instances": [rng.normal(size=FEATURES).round(4).tolist()]}) for _ in range(64)]
    latencies: list[float] = []
    codes: dict[str, int] = {}
    peak = [rss_kib(pid)]
    stop = time.monotonic() + seconds

    async def client(session: aiohttp.ClientSession, i: int) -> None:
        n = i
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                async with session.post(url, data=bodies[n % len(bodies)],
                                        headers={"content-type": "application/json"}) as resp:
                    await resp.read()
                    code = str(resp.status)
            except aiohttp.ClientError as exc:
                code = type(exc).__name__
            if code == "200":
                latencies.append(time.perf_counter() - started)
            codes[code] = codes.get(code, 0) + 1
            n += 1

    async def sample_rss() -> None:
        while time.monotonic() < stop:
            peak[0] = max(peak[0], rss_kib(pid))
            await asyncio.sleep(0.2)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        started = time.perf_counter()
        await asyncio.gather(sample_rss(), *(client(session, i) for i in range(clients)))
        wall = time.perf_counter() - started
    ordered = sorted(latencies)
    pick = (lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000) if ordered else \
        (lambda q: float("nan"))
    return {"rps": len(latencies) / wall, "p50": pick(0.50), "p99": pick(0.99), "codes": codes,
            "rss_mib": peak[0] / 1024, "mean": statistics.fmean(ordered) * 1000 if ordered else float("nan")}


def measure(name: str, cmd: list[str], cwd: Path, url: str, seconds: float) -> dict[int, dict]:
    """Start a server, warm it up, load it at each concurrency, stop it."""
    log = (cwd / f"{name}.log").open("w")
    proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(url, proc)
        asyncio.run(load(url, 4, 1.0, proc.pid))   # warm-up
        results = {}
        for clients in CONCURRENCY:
            results[clients] = asyncio.run(load(url, clients, seconds, proc.pid))
            r = results[clients]
            print(f"{name:>10} {clients:>4} clients: {r['rps']:8.1f} req/s  p50 {r['p50']:7.2f} ms  "
                  f"p99 {r['p99']:7.2f} ms  {r['codes']}  RSS {r['rss_mib']:.0f} MiB", flush=True)
        return results
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of load per concurrency level")
    add_output_args(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run = train(folder)
        (folder / "hand_written.py").write_text(HAND_WRITTEN)
        port = free_port()
        kcli = measure("kcli serve", [*kcli_command(), "serve", str(run), "--port", str(port)], folder,
                       f"http://127.0.0.1:{port}/v1/models/bench:predict", args.seconds)
        port = free_port()
        hand = measure("FastAPI", [sys.executable, "hand_written.py", str(run / "model.keras"), str(port)], folder,
                       f"http://127.0.0.1:{port}/v1/models/bench:predict", args.seconds)
    rows = ["| clients | server | req/s | p50 ms | p99 ms | status codes | peak RSS MiB |",
            "|---:|---|---:|---:|---:|---|---:|"]
    for clients in CONCURRENCY:
        for name, results in (("kcli serve", kcli), ("FastAPI + model.predict", hand)):
            r = results[clients]
            codes = ", ".join(f"{k}: {v}" for k, v in sorted(r["codes"].items()))
            rows.append(f"| {clients} | {name} | {r['rps']:.1f} | {r['p50']:.2f} | {r['p99']:.2f} | {codes} | "
                        f"{r['rss_mib']:.0f} |")
    k32, h32, k1, h1 = kcli[32], hand[32], kcli[1], hand[1]
    notes = [f"- 32 clients: {k32['rps'] / h32['rps']:.1f}x the hand-written server's throughput (goal >= 3x), "
             f"p99 {k32['p99']:.1f} ms vs {h32['p99']:.1f} ms (goal: no worse).",
             f"- 128 clients: kcli serve status codes {kcli[128]['codes']} (goal: only 200/503), peak RSS "
             f"{kcli[128]['rss_mib']:.0f} MiB.",
             f"- 1 client: p50 {k1['p50']:.2f} ms vs {h1['p50']:.2f} ms ({k1['p50'] / h1['p50']:.2f}x; goal <= 1.2x)."]
    body = [f"Machine: {machine()}", "",
            f"Single-row requests, {args.seconds:g} s per level, client (aiohttp) on the same machine; "
            "kcli serve with its defaults (--max-batch-size 64, --batch-timeout 0).", "", *rows, "", *notes]
    report("kcli serve vs FastAPI + model.predict per request (benchmarks/serve.py)", body, output(args))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
