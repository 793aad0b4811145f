"""Training with `kcli train` against the same training in a hand-written Keras script (plain_keras.py).

    python benchmarks/train_vs_keras.py [--pairs 5] [--case digits|large|all] [--out benchmarks/RESULTS.md]
    python benchmarks/train_vs_keras.py --defaults [--pairs 3] [--case digits]    # what each default buys

Same model, data, seed, batch size and epochs on both sides; kcli runs with its defaults and `save: []`.
Runs alternate plain, kcli, plain, kcli, ... in fresh processes. Reported per side: whole-process wall time
(TensorFlow import included) and the steady-state seconds per epoch (median over epochs 2..N, read from
each side's own timing: plain_keras.py's callback, kcli's run.json `epoch_seconds`), and the final training
loss, which must be identical (kcli's speed must not come from changing the math).

Cases: digits (configs/digits_mlp.yaml: 1,257 training rows, batch 32, 30 epochs, overhead-bound) and large
(benchmarks/large_mlp.yaml: 200,000 x 256 synthetic rows, batch 256, 3 epochs, compute-bound).
Goals: kcli wall <= 1.0x plain on both; steady-state epoch <= 0.6x on digits; identical final loss.

`--defaults` instead runs kcli alone with one speed setting changed at a time (steps_per_execution,
data.cache, data.prefetch, fit.checkpoint.interval), interleaved, to show what each default is worth.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import REPO, add_output_args, fmt_runs, kcli_command, machine, median, output, report, timed

HERE = Path(__file__).resolve().parent


def make_large(path: Path, rows: int = 200_000, features: int = 256, classes: int = 10) -> None:
    """A learnable synthetic problem: labels are the argmax of a random linear map plus noise."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    y = np.argmax(x @ rng.normal(size=(features, classes)) + rng.normal(size=(rows, classes)), axis=1)
    np.savez(path, x=x, y=y.astype(np.int64))


def plain_run(case: str, data: Path | None) -> dict:
    cmd = [sys.executable, str(HERE / "plain_keras.py"), case] + (["--data", str(data)] if data else [])
    wall, out = timed(cmd)
    result = json.loads(out.strip().splitlines()[-1])
    return {"wall": wall, "epoch": median(result["epoch_seconds"][1:]), "loss": result["final_loss"]}


def kcli_run(config: Path, runs_dir: Path, sets: list[str]) -> dict:
    args = [a for s in ["save=[]", *sets] for a in ("--set", s)]
    wall, _ = timed([*kcli_command(), "train", str(config), "--runs-dir", str(runs_dir), *args])
    run = max(runs_dir.iterdir(), key=lambda p: p.stat().st_mtime)
    record = json.loads((run / "run.json").read_text())
    history = json.loads((run / "history.json").read_text())
    return {"wall": wall, "epoch": median(record["epoch_seconds"][1:]), "loss": history[-1]["loss"]}


def case_files(name: str, work: Path) -> tuple[Path, Path | None, list[str]]:
    """The kcli config, the data file for plain_keras.py, and the --set values of a case."""
    if name == "digits":
        return REPO / "configs" / "digits_mlp.yaml", None, []
    data = work / "large.npz"
    if not data.exists():
        make_large(data)
    return HERE / "large_mlp.yaml", data, [f"data.path={data}"]


VARIANTS = {
    "defaults": [],
    "steps_per_execution: 1": ["compile.steps_per_execution=1"],
    "steps_per_execution: 8": ["compile.steps_per_execution=8"],
    "steps_per_execution: 128": ["compile.steps_per_execution=128"],
    "cache: false (arrays to fit)": ["data.cache=false"],
    "prefetch: 0": ["data.prefetch=0"],
    "checkpoint.interval: 0 (.weights.h5 every epoch)": ["fit.checkpoint.interval=0"],
    "shuffle: each_epoch": ["data.shuffle=each_epoch"],
    "precision: mixed_bfloat16": ["compile.precision=mixed_bfloat16"],
    "precision: mixed_float16": ["compile.precision=mixed_float16"],
    "jit_compile: true": ["compile.jit_compile=true"],
}


def run_defaults(name: str, repeats: int, work: Path, only: str | None = None) -> list[str]:
    config, _, sets = case_files(name, work)
    wanted = [w.strip() for w in (only or "").split(",") if w.strip()]
    chosen = {v: e for v, e in VARIANTS.items() if v == "defaults" or not wanted or any(w in v for w in wanted)}
    results: dict[str, list[dict]] = {v: [] for v in chosen}
    for _ in range(repeats):
        for variant, extra in chosen.items():
            results[variant].append(kcli_run(config, work / f"runs-{name}-defaults", [*sets, *extra]))
    base = median([r["epoch"] for r in results["defaults"]])
    rows = ["| kcli setting | steady epoch median s | vs defaults | wall median s | final loss |",
            "|---|---:|---:|---:|---|"]
    for variant, rs in results.items():
        epoch = median([r["epoch"] for r in rs])
        losses = ", ".join(sorted({f"{r['loss']:.9g}" for r in rs}))
        rows.append(f"| {variant} | {epoch:.4f} | {epoch / base:.2f}x | {median([r['wall'] for r in rs]):.2f} | "
                    f"{losses} |")
    return [f"### {name}: one default changed at a time", "", *rows, ""]


def run_case(name: str, pairs: int, work: Path) -> list[str]:
    config, data, sets = case_files(name, work)
    plain, kcli = [], []
    for _ in range(pairs):
        plain.append(plain_run(name, data))
        kcli.append(kcli_run(config, work / f"runs-{name}", sets))
    rows = ["| side | wall median s | steady epoch median s | final loss | wall runs (s) | epoch medians (s) |",
            "|---|---:|---:|---|---|---|"]
    for side, results in (("plain Keras script", plain), ("kcli train (defaults, save: [])", kcli)):
        walls, epochs = [r["wall"] for r in results], [r["epoch"] for r in results]
        losses = sorted({f"{r['loss']:.9g}" for r in results})
        rows.append(f"| {side} | {median(walls):.2f} | {median(epochs):.4f} | {', '.join(losses)} | "
                    f"{fmt_runs(walls)} | {fmt_runs(epochs, 4)} |")
    wall_ratio = median([r["wall"] for r in kcli]) / median([r["wall"] for r in plain])
    epoch_ratio = median([r["epoch"] for r in kcli]) / median([r["epoch"] for r in plain])
    loss_diff = max(abs(a["loss"] - b["loss"]) for a in plain for b in kcli)
    epoch_goal = " (goal <= 0.6x: " + ("met" if epoch_ratio <= 0.6 else "NOT met") + ")" if name == "digits" else ""
    return [f"### {name}", "", *rows, "",
            f"- wall: kcli / plain = {wall_ratio:.2f}x (goal <= 1.0x: {'met' if wall_ratio <= 1.0 else 'NOT met'})",
            f"- steady-state epoch: kcli / plain = {epoch_ratio:.2f}x{epoch_goal}",
            f"- final training loss: largest difference between any plain and any kcli run = {loss_diff:.3g} "
            f"({'identical' if loss_diff == 0 else 'NOT identical'})", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--case", choices=["digits", "large", "all"], default=None,
                        help="default: all (with --defaults: digits)")
    parser.add_argument("--defaults", action="store_true", help="kcli alone, one speed setting changed at a time")
    parser.add_argument("--only", help="with --defaults: only the variants whose names contain one of these "
                                       "comma-separated texts")
    add_output_args(parser)
    args = parser.parse_args()
    case = args.case or ("digits" if args.defaults else "all")
    cases = ["digits", "large"] if case == "all" else [case]
    with tempfile.TemporaryDirectory(prefix="kcli-bench-") as tmp:
        if args.defaults:
            body = [f"Machine: {machine()}", f"{args.pairs} runs per setting, interleaved, fresh processes.", ""]
            for name in cases:
                body += run_defaults(name, args.pairs, Path(tmp), args.only)
            report("what kcli's speed defaults buy (benchmarks/train_vs_keras.py --defaults)", body, output(args))
            return
        body = [f"Machine: {machine()}", f"{args.pairs} pairs per case, alternating plain / kcli, fresh processes.", ""]
        for name in cases:
            body += run_case(name, args.pairs, Path(tmp))
    report("training vs plain Keras (benchmarks/train_vs_keras.py)", body, output(args))


if __name__ == "__main__":
    main()
