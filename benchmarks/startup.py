"""Start-up time of the kcli command line, against a bare Typer app with the same commands.

    python benchmarks/startup.py [--repeat 10] [--out benchmarks/RESULTS.md]

Median wall time of fresh processes for `kcli --help`, `kcli train --help`, `kcli validate CONFIG` and
`kcli runs`, against `bare_typer.py --help` / `train --help` (benchmarks/bare_typer.py: Typer and the same
command names, nothing else) and `python -c "import tensorflow"`. It also checks, in-process, that none of
the kcli commands imports TensorFlow. Goal: kcli help within 1.5x of the bare Typer app.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ENV, REPO, add_output_args, fmt_runs, kcli_command, machine, median, output, report, timed

BARE = [sys.executable, str(Path(__file__).resolve().parent / "bare_typer.py")]
CONFIG = REPO / "configs" / "digits_mlp.yaml"

# Runs a kcli command in-process, then says whether TensorFlow (or Keras) got imported.
_PROBE = ("import sys; from kcli.cli.app import app\n"
          "try:\n    app(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
          "print('__tf', 'tensorflow' in sys.modules or 'keras' in sys.modules)")


def imports_tensorflow(args: list[str]) -> bool:
    out = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, env=ENV, cwd=REPO)
    return out.stdout.strip().splitlines()[-1].endswith("True")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    add_output_args(parser)
    args = parser.parse_args()
    kcli = kcli_command()
    with tempfile.TemporaryDirectory() as runs_dir:
        cases = {
            "kcli --help": ([*kcli, "--help"], ["--help"]),
            "kcli train --help": ([*kcli, "train", "--help"], ["train", "--help"]),
            "kcli validate configs/digits_mlp.yaml": ([*kcli, "validate", str(CONFIG)], ["validate", str(CONFIG)]),
            "kcli runs": ([*kcli, "runs", "--runs-dir", runs_dir], ["runs", "--runs-dir", runs_dir]),
            "bare Typer app --help": ([*BARE, "--help"], None),
            "bare Typer app train --help": ([*BARE, "train", "--help"], None),
            "python -c 'import tensorflow'": ([sys.executable, "-c", "import tensorflow"], None),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeat):        # interleaved, so that machine noise hits every case alike
            for name, (cmd, _probe) in cases.items():
                times[name].append(timed(cmd)[0])
        tf_imported = {name: imports_tensorflow(probe) for name, (_, probe) in cases.items() if probe}
    bare = {"kcli --help": "bare Typer app --help", "kcli train --help": "bare Typer app train --help"}
    rows = ["| command | median s | vs bare Typer | imports TensorFlow | runs (s) |", "|---|---:|---:|---|---|"]
    verdicts = []
    for name, values in times.items():
        ratio = ""
        if name in bare:
            r = median(values) / median(times[bare[name]])
            ratio = f"{r:.2f}x"
            verdicts.append(f"{name}: {r:.2f}x the bare Typer app (goal <= 1.5x: {'met' if r <= 1.5 else 'NOT met'})")
        imported = {True: "yes", False: "no"}.get(tf_imported.get(name), "")  # type: ignore[arg-type]
        rows.append(f"| {name} | {median(values):.3f} | {ratio} | {imported} | {fmt_runs(values, 3)} |")
    body = [f"Machine: {machine()}", f"Median of {args.repeat} fresh processes each, interleaved.", "", *rows, "",
            *[f"- {v}" for v in verdicts],
            f"- TensorFlow imported by a kcli command above: {'yes' if any(tf_imported.values()) else 'no'}"]
    report("start-up (benchmarks/startup.py)", body, output(args))


if __name__ == "__main__":
    main()
