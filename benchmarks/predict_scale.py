"""`kcli predict` on a generated 1,000,000-row CSV, against `model.predict` on the same data in memory.

    python benchmarks/predict_scale.py [--rows 1000000] [--repeat 3] [--out benchmarks/RESULTS.md]

Trains a digits MLP run (configs/digits_mlp.yaml, 3 epochs), writes a CSV of `--rows` rows x 64 feature
columns + a label column (digits-like integers 0..16), then measures in fresh processes:
  - kcli predict RUN --input big.csv --label label --output preds.npy   (and --output preds.csv)
  - the same on a 10-row CSV: kcli's fixed start-up (TensorFlow import, model load, tracing)
  - a hand-written script that loads the CSV into memory first (not timed), then times
    model.predict(x) with Keras's default batch size (32) and with batch_size=1024.
Reported: rows/s (kcli end to end, and after start-up), peak RSS of each process.
Goals: kcli >= 0.8x the in-memory `model.predict(x)` throughput; peak RSS < 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import REPO, add_output_args, kcli_command, machine, median, output, report, timed, timed_rss

IN_MEMORY = r"""
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras, numpy as np
table = np.loadtxt(sys.argv[2], delimiter=",", skiprows=1, dtype=np.float32)
x = table[:, :64] * np.float32(0.0625)          # the run's data.scale
del table
model = keras.models.load_model(sys.argv[1])
result = {}
for batch_size in (None, 1024):
    start = time.perf_counter()
    model.predict(x, batch_size=batch_size, verbose=0)
    result[str(batch_size or 32)] = len(x) / (time.perf_counter() - start)
print(json.dumps(result))
"""


def write_csv(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    header = ",".join([f"f{i}" for i in range(64)] + ["label"])
    with path.open("w") as fh:
        fh.write(header + "\n")
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            block = np.column_stack([rng.integers(0, 17, size=(n, 64)), rng.integers(0, 10, size=n)])
            np.savetxt(fh, block, fmt="%d", delimiter=",")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    add_output_args(parser)
    args = parser.parse_args()
    kcli = kcli_command()
    with tempfile.TemporaryDirectory(prefix="kcli-bench-") as tmp:
        work = Path(tmp)
        timed([*kcli, "train", str(REPO / "configs" / "digits_mlp.yaml"), "--runs-dir", str(work / "runs"),
               "--set", "save=[keras]", "--set", "fit.epochs=3"])
        run = next((work / "runs").iterdir())
        big, small = work / "big.csv", work / "small.csv"
        write_csv(big, args.rows)
        small.write_text("".join(big.open().readlines()[:11]) if args.rows < 50 else
                         "".join(line for _, line in zip(range(11), big.open())))
        results: dict[str, list[tuple[float, int]]] = {"npy": [], "csv": [], "start-up": []}
        memory: list[tuple[dict[str, float], int]] = []
        for _ in range(args.repeat):
            for name, src, dest in (("npy", big, "preds.npy"), ("csv", big, "preds.csv"), ("start-up", small, "s.npy")):
                wall, _, rss = timed_rss([*kcli, "predict", str(run), "--input", str(src), "--label", "label",
                                          "--output", str(work / dest)])
                results[name].append((wall, rss))
            _, out, rss = timed_rss([sys.executable, "-c", IN_MEMORY, str(run / "model.keras"), str(big)])
            memory.append((json.loads(out.strip().splitlines()[-1]), rss))
    startup = median([w for w, _ in results["start-up"]])
    mem32 = median([m["32"] for m, _ in memory])
    mem1024 = median([m["1024"] for m, _ in memory])
    mem_rss = max(r for _, r in memory)
    rows = ["| what | rows/s end to end | rows/s after start-up | vs in-memory predict (32) | peak RSS MB | wall (s) |",
            "|---|---:|---:|---:|---:|---|"]
    verdicts = []
    for name in ("npy", "csv"):
        wall = median([w for w, _ in results[name]])
        rss = max(r for _, r in results[name]) / 1024
        e2e, steady = args.rows / wall, args.rows / max(wall - startup, 1e-9)
        rows.append(f"| kcli predict --output preds.{name} | {e2e:,.0f} | {steady:,.0f} | "
                    f"{e2e / mem32:.2f}x / {steady / mem32:.2f}x | {rss:,.0f} | "
                    f"{', '.join(f'{w:.1f}' for w, _ in results[name])} |")
        verdicts.append(f"kcli --output .{name}: {steady / mem32:.2f}x the in-memory throughput after start-up, "
                        f"{e2e / mem32:.2f}x end to end (goal >= 0.8x: "
                        f"{'met' if steady / mem32 >= 0.8 else 'NOT met'} after start-up, "
                        f"{'met' if e2e / mem32 >= 0.8 else 'not met'} end to end); peak RSS {rss:,.0f} MB "
                        f"(goal < 1,500 MB: {'met' if rss < 1500 else 'NOT met'})")
    rows.append(f"| kcli predict, 10-row CSV (start-up) |  |  |  | "
                f"{max(r for _, r in results['start-up']) / 1024:,.0f} | {startup:.2f} (median) |")
    rows.append(f"| in memory: model.predict(x) (batch 32) | | {mem32:,.0f} | 1.00x | {mem_rss / 1024:,.0f} | |")
    rows.append(f"| in memory: model.predict(x, batch_size=1024) | | {mem1024:,.0f} | {mem1024 / mem32:.2f}x | "
                f"{mem_rss / 1024:,.0f} | |")
    body = [f"Machine: {machine()}", f"{args.rows:,} rows x 64 features (+ label), {args.repeat} repeats, "
            "fresh processes; in-memory rows/s exclude loading the CSV and the model.", "", *rows, "",
            *[f"- {v}" for v in verdicts]]
    report("prediction at scale (benchmarks/predict_scale.py)", body, output(args))


if __name__ == "__main__":
    main()
