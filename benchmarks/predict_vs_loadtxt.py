"""`kcli predict` end to end vs a hand-written np.loadtxt + load_model + predict script, on a 1M x 10 CSV.

    python benchmarks/predict_vs_loadtxt.py [--rows 1000000] [--repeat 3]

Trains a small classifier on 10 numeric features (kcli train, save: [keras]), writes a CSV of `--rows` rows x 10
feature columns with a header, then times fresh processes, interleaved, each including its own start-up:
  - kcli predict RUN --input big.csv --output preds.csv
  - a script: np.loadtxt(big.csv) + keras.models.load_model + model.predict(x, batch_size=1024), writing the
    outputs with np.save (.npy; the fastest a script writes), and the same writing CSV with np.savetxt.
Goal: kcli >= 0.8x the speed (rows/s) of the .npy script.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml
from _common import REPO, add_output_args, fmt_runs, kcli_command, machine, median, output, report, timed

SCRIPT = r"""
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras, numpy as np
csv_path, model_path, out = sys.argv[1:4]
x = np.loadtxt(csv_path, delimiter=",", skiprows=1, dtype=np.float32)
model = keras.models.load_model(model_path)
pred = model.predict(x, batch_size=1024, verbose=0)
if out.endswith(".npy"):
    np.save(out, pred)
else:
    np.savetxt(out, pred, delimiter=",", fmt="%.8g")
"""

CONFIG = {
    "name": "bench-predict", "seed": 1,
    "data": {"source": "csv", "path": "train.csv", "label": "y", "batch_size": 64},
    "model": {"input_shape": [10], "layers": ["Normalization", {"Dense": {"units": 32, "activation": "relu"}},
                                              {"Dense": {"units": 3}}]},
    "compile": {"optimizer": "adam", "loss": {"SparseCategoricalCrossentropy": {"from_logits": True}}},
    "fit": {"epochs": 2},
    "save": ["keras"],
}


def write_csv(path: Path, rows: int, with_label: bool) -> None:
    rng = np.random.default_rng(0)
    header = ",".join([f"f{i}" for i in range(10)] + (["y"] if with_label else []))
    with path.open("w") as fh:
        fh.write(header + "\n")
        for start in range(0, rows, 100_000):
            x = np.round(rng.normal(size=(min(100_000, rows - start), 10)), 4)
            if with_label:
                x = np.column_stack([x, (x[:, 0] > 0).astype(int) + (x[:, 1] > 1).astype(int)])
            np.savetxt(fh, x, delimiter=",", fmt="%.6g")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    add_output_args(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_csv(folder / "train.csv", 2000, True)
        (folder / "bench.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
        timed([*kcli_command(), "train", str(folder / "bench.yaml"), "--runs-dir", str(folder / "runs")])
        run = next((folder / "runs").iterdir())
        big = folder / "big.csv"
        write_csv(big, args.rows, False)
        times: dict[str, list[float]] = {"kcli": [], "npy": [], "csv": []}
        for _ in range(args.repeat):
            times["kcli"].append(timed([*kcli_command(), "predict", str(run), "--input", str(big), "--output",
                                        str(folder / "k.csv"), "--overwrite"])[0])
            for kind in ("npy", "csv"):
                times[kind].append(timed([sys.executable, "-c", SCRIPT, str(big), str(run / "model.keras"),
                                          str(folder / f"s.{kind}")], cwd=REPO)[0])
    speed = {k: args.rows / median(v) for k, v in times.items()}
    body = [f"Machine: {machine()}", "",
            f"{args.rows:,} rows x 10 columns, whole processes (start-up included), median of {args.repeat}.", "",
            "| variant | median s | rows/s | kcli vs it | runs (s) |", "|---|---:|---:|---:|---|",
            f"| kcli predict --output preds.csv | {median(times['kcli']):.2f} | {speed['kcli']:,.0f} | | "
            f"{fmt_runs(times['kcli'])} |",
            f"| script: np.loadtxt + load_model + predict(batch 1024) + np.save | {median(times['npy']):.2f} | "
            f"{speed['npy']:,.0f} | {speed['kcli'] / speed['npy']:.2f}x | {fmt_runs(times['npy'])} |",
            f"| the same script writing CSV (np.savetxt) | {median(times['csv']):.2f} | {speed['csv']:,.0f} | "
            f"{speed['kcli'] / speed['csv']:.2f}x | {fmt_runs(times['csv'])} |"]
    report("kcli predict end to end vs np.loadtxt script (1M x 10 CSV)", body, output(args))


if __name__ == "__main__":
    main()
