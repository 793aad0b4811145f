"""A CSV object streamed straight from an S3-API store: kcli's peak RSS and time, the store being moto's server on
localhost (it keeps the object in its own memory; only kcli's process is measured).

    python benchmarks/stream_s3.py [--gb 1.0] [--epochs 1] [--no-cache]

Generates the CSV of benchmarks/stream_csv.py (10 number columns, a label of 3 classes) in a temporary folder,
uploads it to a bucket of a moto server started here (pip install 'moto[server]'), trains the MLP of
stream_csv.py on `s3://bench/big.csv` with `data.stream: true` (--no-cache: no room for the Arrow cache, so every
epoch reads the object again), and reports the peak RSS, the wall time and the epoch times. Goal: peak RSS < 1 GB.
Everything generated is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import ENV, add_output_args, kcli_command, machine, output, report, timed_rss
from stream_csv import config, write_csv


def moto_server() -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--no-cache", action="store_true", help="every epoch reads the object again")
    add_output_args(parser)
    args = parser.parse_args()
    import boto3

    folder = Path(tempfile.mkdtemp(prefix="kcli-bench-s3-"))
    proc, url = moto_server()
    env = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_REGION": "us-east-1"}
    try:
        big = folder / "big.csv"
        rows = write_csv(big, args.gb)
        size = big.stat().st_size
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="bench",
                          aws_secret_access_key="bench")
        s3.create_bucket(Bucket="bench")
        s3.upload_file(str(big), "bench", "big.csv")
        big.unlink()   # only the store holds it now
        cfg = config(Path("x"), True, args.epochs)
        cfg["data"]["path"] = "s3://bench/big.csv"
        path = folder / "s3.yaml"
        path.write_text(yaml.safe_dump(cfg))
        os.environ.update(env)
        ENV.update(env)
        if args.no_cache:   # a cache root on a file: the cache cannot be made, epochs read the store
            (folder / "runs").mkdir()
            (folder / "runs" / ".stream-cache").write_text("")
        wall, _, rss = timed_rss([*kcli_command(), "train", str(path), "--runs-dir", str(folder / "runs")])
        run = next(p for p in (folder / "runs").iterdir() if p.is_dir())
        epochs = json.loads((run / "run.json").read_text())["epoch_seconds"]
        report("a CSV object streamed from an S3-API store (benchmarks/stream_s3.py)", [
            f"Machine: {machine()}", "",
            f"{size / 1e9:.2f} GB CSV object, {rows:,} rows x 10 number columns + label, on moto's S3 server on "
            f"localhost; `data.stream: true`, MLP 64-64-3, batch 512, {args.epochs} epoch(s)"
            f"{', no Arrow cache (each epoch reads the object again)' if args.no_cache else ''}.", "",
            "| peak RSS of kcli | wall s (start-up + pass + epochs) | epoch s |", "|---:|---:|---|",
            f"| {rss / 1024:,.0f} MiB | {wall:.1f} | {', '.join(f'{e:.1f}' for e in epochs if e) or '-'} |"],
            output(args))
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
