"""What a sweep adds per trial over plain `kcli train` of the same config.

    python benchmarks/sweep_overhead.py [--trials 4] [--out benchmarks/RESULTS.md]

The config is configs/digits_mlp.yaml (15 epochs, save: [keras, weights], as configs/digits_sweep.yaml). The
sweep searches one parameter with a single choice, so every trial trains exactly what `kcli train` trains. Both
sides run the same number of trainings one after another (`--jobs 1`); the sweep's total includes its own
start (importing TensorFlow and building the model once to check the sweep before any trial) and the Optuna
bookkeeping. Goal: < 10% per trial.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml
from _common import REPO, add_output_args, fmt_runs, kcli_command, machine, output, report, timed


def write_config(folder: Path, trials: int) -> Path:
    raw = {"extends": str(REPO / "configs" / "digits_mlp.yaml"), "fit": {"epochs": 15}, "save": ["keras", "weights"],
           "sweep": {"metric": "val_accuracy", "method": "random", "seed": 1, "trials": trials, "pruner": "none",
                     "parameters": {"model.layers[0].Dense.units": {"choices": [256]}}}}
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    add_output_args(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = write_config(folder, args.trials)
        trains = [timed([*kcli_command(), "train", str(config), "--runs-dir", str(folder / "runs")])[0]
                  for _ in range(args.trials)]
        start = time.perf_counter()
        timed([*kcli_command(), "sweep", str(config), "--runs-dir", str(folder / "sweeps")])
        sweep_total = time.perf_counter() - start
    plain = sum(trains)
    per_trial = (sweep_total - plain) / args.trials
    body = [f"Machine: {machine()}", "",
            f"{args.trials} trainings of digits_mlp (15 epochs, save: [keras, weights]), one after another:", "",
            "| variant | total s | per training s |", "|---|---:|---:|",
            f"| kcli train, {args.trials} times | {plain:.1f} | {plain / args.trials:.2f} ({fmt_runs(trains)}) |",
            f"| kcli sweep, {args.trials} trials | {sweep_total:.1f} | {sweep_total / args.trials:.2f} |", "",
            f"Sweep overhead: {per_trial:+.2f} s per trial, {per_trial / (plain / args.trials):+.1%} of a training "
            "(the sweep's start, which imports TensorFlow and builds the model once to check the sweep, is spread "
            "over the trials)."]
    report("sweep overhead per trial (benchmarks/sweep_overhead.py)", body, output(args))


if __name__ == "__main__":
    main()
