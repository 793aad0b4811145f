"""Helpers shared by the benchmark scripts: the machine, timing of fresh processes, RESULTS.md."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


def kcli_command() -> list[str]:
    """The installed console script next to this Python, else `python -m kcli`."""
    script = Path(sys.executable).parent / "kcli"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "kcli"]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine(with_tensorflow: bool = True) -> str:
    """CPU model, cores, OS, Python and (in a subprocess, so this process stays light) TF/Keras versions."""
    text = (f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}")
    if with_tensorflow:
        out = subprocess.run([sys.executable, "-c", "import tensorflow as tf, keras; "
                              "print(f'TensorFlow {tf.__version__}, Keras {keras.__version__}')"],
                             capture_output=True, text=True, env=ENV)
        text += ", " + (out.stdout.strip() or "TensorFlow not importable")
    return text


def timed(cmd: Sequence[str], cwd: Path = REPO) -> tuple[float, str]:
    """Wall seconds and stdout of one fresh process; raises if it fails."""
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, env=ENV)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, proc.stdout


# A one-child wrapper: its RUSAGE_CHILDREN peak is exactly the peak RSS of the command it ran.
_RSS_WRAPPER = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
                "print(f'__peak_rss_kib {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}'); sys.exit(code)")


def timed_rss(cmd: Sequence[str], cwd: Path = REPO) -> tuple[float, str, int]:
    """Wall seconds, stdout and peak RSS in KiB of one fresh process."""
    wall, out = timed([sys.executable, "-c", _RSS_WRAPPER, *cmd], cwd)
    lines = out.rstrip("\n").splitlines()
    return wall, "\n".join(lines[:-1]), int(lines[-1].split()[-1])


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def fmt_runs(values: Sequence[float], digits: int = 2) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


def add_output_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=RESULTS, help="append the results to this file")
    parser.add_argument("--no-write", action="store_true", help="only print the results")


def output(args: argparse.Namespace) -> Path | None:
    return None if args.no_write else args.out


def report(title: str, body: list[str], out: Path | None) -> None:
    """Print a Markdown section and append it to `out` (benchmarks/RESULTS.md by default)."""
    stamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    text = "\n".join([f"## {stamp}: {title}", "", *body]) + "\n"
    print(text)
    if out is not None:
        with out.open("a", encoding="utf-8") as fh:
            fh.write("\n" + text)
