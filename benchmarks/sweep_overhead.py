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


def write_config(folder: Path, trials: int, pruner: str = "none") -> Path:
    raw = {"extends": str(REPO / "configs" / "digits_mlp.yaml"), "fit": {"epochs": 15}, "save": ["keras", "weights"],
           "sweep": {"name": f"bench-{pruner}", "metric": "val_accuracy", "method": "random", "seed": 1,
                     "trials": trials, "pruner": pruner,
                     "parameters": {"model.layers[0].Dense.units": {"choices": [256]}}}}
    path = folder / f"bench-{pruner}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    add_output_args(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = write_config(folder, args.trials)
        trains: list[float] = []
        totals = {"none": 0.0, "median": 0.0}
        for round_ in range(args.rounds):   # interleaved, order reversed every other round: the VM drifts
            order = ["train", "none", "median"] if round_ % 2 == 0 else ["median", "none", "train"]
            for variant in order:
                if variant == "train":
                    trains += [timed([*kcli_command(), "train", str(config), "--runs-dir", str(folder / "runs")])[0]
                               for _ in range(args.trials)]
                    continue
                start = time.perf_counter()
                timed([*kcli_command(), "sweep", str(write_config(folder, args.trials, variant)), "--runs-dir",
                       str(folder / f"sweeps-{round_}")])
                totals[variant] += time.perf_counter() - start
    plain = sum(trains) / args.rounds
    totals = {k: v / args.rounds for k, v in totals.items()}
    body = [f"Machine: {machine()}", "",
            f"{args.trials} trainings of digits_mlp (15 epochs of ~0.15 s, save: [keras, weights]), one after "
            f"another; mean of {args.rounds} interleaved rounds:", "",
            "| variant | total s | per training s | overhead per trial |", "|---|---:|---:|---:|",
            f"| kcli train, {args.trials} times | {plain:.1f} | {plain / args.trials:.2f} "
            f"(runs: {fmt_runs(trains)}) | |"]
    for pruner, total in totals.items():
        per_trial = (total - plain) / args.trials
        body.append(f"| kcli sweep, {args.trials} trials, pruner {pruner} | {total:.1f} | {total / args.trials:.2f} "
                    f"| {per_trial:+.2f} s ({per_trial / (plain / args.trials):+.1%}) |")
    body += ["", "The sweep's own start (config checks without TensorFlow, the Optuna study) and end (the table, "
             "best.yaml) are spread over the trials. With a pruner, each trial reports its metric to the study "
             "after every epoch (a SQLite write and the pruner's read of the other trials)."]
    report("sweep overhead per trial (benchmarks/sweep_overhead.py)", body, output(args))


if __name__ == "__main__":
    main()
