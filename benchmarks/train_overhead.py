"""Training overhead of `kcli train` over the equivalent hand-written Keras script.

Each variant runs in a fresh process (TensorFlow import included), `--repeat` times; the median wall
time is reported. Run from the repository root:

    python benchmarks/train_overhead.py [--repeat 3] [--out benchmarks/RESULTS.md]

Variants:
  plain          hand-written Keras: load digits, Sequential, compile, fit(30 epochs), evaluate
  plain spe=32   the same with compile(steps_per_execution=32), kcli's default: isolates kcli's own overhead
  kcli-nosave    kcli train configs/digits_mlp.yaml with `save: []` (same work + run directory bookkeeping)
  kcli           kcli train configs/digits_mlp.yaml (also writes .keras, .h5, weights, SavedModel)
  kcli --help    the command-line start-up cost (no TensorFlow import)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "digits_mlp.yaml"

PLAIN = r"""
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from importlib import resources
import keras, numpy as np
cfg = {cfg!r}
with resources.files("kcli.datasets").joinpath("digits.npz").open("rb") as fh, np.load(fh) as npz:
    x, y = npz["x"].astype("float32") * np.float32(0.0625), np.eye(10, dtype="float32")[npz["y"]]
perm = np.random.default_rng(cfg["seed"]).permutation(len(x))
n_test, n_val = round(len(x) * 0.15), round(len(x) * 0.15)
te, va, tr = np.sort(perm[:n_test]), np.sort(perm[n_test:n_test + n_val]), np.sort(perm[n_test + n_val:])
keras.utils.set_random_seed(cfg["seed"])
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
                          keras.layers.Dropout(0.2), keras.layers.Dense(10)])
model.compile(optimizer=keras.optimizers.Adam(0.001),
              loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
              steps_per_execution={spe})
model.fit(x[tr], y[tr], batch_size=32, epochs=cfg["fit"]["epochs"], validation_data=(x[va], y[va]), verbose=0)
print(model.evaluate(x[te], y[te], verbose=0, return_dict=True))
"""


def _time(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return time.perf_counter() - start


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="append a Markdown section to this file")
    args = parser.parse_args()
    cfg = yaml.safe_load(CONFIG.read_text())
    kcli = [sys.executable, "-m", "kcli"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        nosave = work / "digits_mlp_nosave.yaml"
        nosave.write_text(yaml.safe_dump({**cfg, "save": []}, sort_keys=False))
        variants = {
            "plain Keras script": [sys.executable, "-c", PLAIN.format(cfg=cfg, spe=1)],
            "plain Keras script, steps_per_execution=32": [sys.executable, "-c", PLAIN.format(cfg=cfg, spe=32)],
            "kcli train (save: [])": [*kcli, "train", str(nosave), "--runs-dir", str(work / "runs")],
            "kcli train (all artifacts)": [*kcli, "train", str(CONFIG), "--runs-dir", str(work / "runs")],
            "kcli --help": [*kcli, "--help"],
        }
        results = {name: [_time(cmd, REPO) for _ in range(args.repeat)] for name, cmd in variants.items()}
    base = statistics.median(results["plain Keras script, steps_per_execution=32"])
    lines = [f"## {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: digits_mlp, {cfg['fit']['epochs']} epochs, "
             f"median of {args.repeat}", "", f"Machine: {_machine()}", "",
             "| variant | median s | runs (s) | vs plain spe=32 |", "|---|---:|---|---:|"]
    for name, times in results.items():
        med = statistics.median(times)
        rel = f"{(med - base) / base:+.0%}" if "help" not in name else "n/a"
        lines.append(f"| {name} | {med:.2f} | {', '.join(f'{t:.2f}' for t in times)} | {rel} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with args.out.open("a") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
