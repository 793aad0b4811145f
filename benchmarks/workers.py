"""Multi-worker training on one machine: examples/s of 1 process vs N local workers (`kcli train --workers N`).

    python benchmarks/workers.py [--workers 2] [--repeat 2] [--epochs 8]

Two cases on the bundled digits: the quickstart MLP (256 units, batch 32: many small steps, communication-bound)
and a wide MLP (2 x 2048 units, batch 256: more arithmetic per step). Variants: one ordinary process
(`distribute: none`, steps_per_execution 32), one process under `distribute: multi_worker` without a cluster
(the strategy's own cost, steps_per_execution 1), and N local workers. Speed is measured over the training
epochs only (run.json's epoch_seconds, first epoch excluded: it traces the graphs), so process start-up,
artifacts and verification do not count; the whole command's wall time is shown too. The per-step
communication cost is (ms per step with N workers) - (ms per step of the strategy in one process).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import yaml
from _common import REPO, add_output_args, fmt_runs, kcli_command, machine, output, report, timed

CASES = {
    "quickstart MLP (256 units, batch 32)": {"units": [256], "batch_size": 32},
    "wide MLP (2 x 2048 units, batch 256)": {"units": [2048, 2048], "batch_size": 256},
}


def write_config(folder: Path, name: str, case: dict, epochs: int) -> Path:
    raw = yaml.safe_load((REPO / "configs" / "digits_mlp.yaml").read_text())
    raw["name"] = name
    raw["data"]["batch_size"] = case["batch_size"]
    raw["model"]["layers"] = [{"Dense": {"units": u, "activation": "relu"}} for u in case["units"]] + \
        [{"Dense": {"units": 10}}]
    raw["fit"]["epochs"] = epochs
    raw["save"] = []
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def one_run(config: Path, runs: Path, extra: list[str]) -> tuple[float, float, int]:
    """Wall seconds of the command, steady-state seconds per epoch, training rows."""
    before = set(runs.glob("*")) if runs.is_dir() else set()
    wall, _ = timed([*kcli_command(), "train", str(config), "--runs-dir", str(runs), *extra])
    (run_dir,) = set(runs.glob("*")) - before
    record = json.loads((run_dir / "run.json").read_text())
    epoch = statistics.median(record["epoch_seconds"][1:])
    config_saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    rows = round(1797 * (1 - config_saved["data"]["validation_split"] - config_saved["data"]["test_split"]))
    return wall, epoch, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=8)
    add_output_args(parser)
    args = parser.parse_args()
    n = args.workers
    variants = {"1 process (distribute: none)": [],
                "1 process, distribute: multi_worker (no cluster)": ["--set", "distribute=multi_worker"],
                f"{n} local workers (--workers {n})": ["--workers", str(n)]}
    body = [f"Machine: {machine()}", "",
            f"Training epochs only (median epoch after the first, median over {args.repeat} runs); wall = the "
            "whole command incl. start-up.", "",
            "| case | variant | examples/s | ms/step | vs 1 process | wall s (runs) |", "|---|---|---:|---:|---:|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for title, case in CASES.items():
            config = write_config(folder, "bench", case, args.epochs)
            results: dict[str, list[tuple[float, float, int]]] = {v: [] for v in variants}
            for _ in range(args.repeat):   # interleaved, so drift of the shared VM hits every variant alike
                for variant, extra in variants.items():
                    results[variant].append(one_run(config, folder / "runs", extra))
            base = None
            step_ms: dict[str, float] = {}
            for variant, runs in results.items():
                epoch = statistics.median(r[1] for r in runs)
                rows = runs[0][2]
                steps = -(-rows // case["batch_size"])
                speed = rows / epoch
                base = base or speed
                step_ms[variant] = 1000 * epoch / steps
                body.append(f"| {title} | {variant} | {speed:,.0f} | {step_ms[variant]:.1f} | {speed / base:.2f}x | "
                            f"{fmt_runs([r[0] for r in runs], 1)} |")
            names = list(variants)
            body.append(f"| {title} | communication per step ({n} workers - strategy alone) | | "
                        f"{step_ms[names[2]] - step_ms[names[1]]:.1f} | | |")
    report(f"multi-worker on one machine: 1 process vs {n} local workers", body, output(args))


if __name__ == "__main__":
    main()
