"""A CSV larger than memory is comfortable with: one epoch streamed (`data.stream: auto` decides by itself) vs the
same model on rows already in memory.

    python benchmarks/stream_csv.py [--gb 2.0] [--memory-rows 2000000] [--keep]
    python benchmarks/stream_csv.py --input-shape --only-streamed [--pythonpath OTHER_CHECKOUT]
    python benchmarks/stream_csv.py --workers 2 [--gb 2.0]   # one process vs 2 local workers, both streamed

Generates a CSV of --gb gigabytes (10 number columns, an integer label of 3 classes), then trains a small MLP
(64-64-3, batch 512) for --epochs epochs on it with `kcli train` (the file is over 512 MiB, so kcli streams it), and
for as many on the first --memory-rows rows read whole (`stream: false`), interleaved, --repeat times.
Reports examples/s of the median epoch after the first (the first also traces the graph), the streamed
command's peak RSS and wall time (the pass that learns the columns included), and the CPU time the hypervisor
stole during the runs (this shared VM's noise). Goals: peak RSS < 1 GB; streamed >= 0.8x in memory.

--input-shape writes the config the seed's way (`model.input_shape: [10]`, a Normalization layer first: the same
model); --only-streamed runs only the streamed command (its peak RSS and wall time), --pythonpath runs kcli from
another checkout (e.g. main's, for a before / after).

With --workers N: the file streamed by one process, then sharded among N local workers (`kcli train --workers N`):
examples/s of the cluster and per worker, and the largest worker's peak RSS (goal < 1 GB).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from _common import ENV, add_output_args, kcli_command, machine, output, report, timed_rss

COLUMNS = [f"x{i}" for i in range(10)]


def write_csv(path: Path, gigabytes: float, seed: int = 0) -> int:
    """Blocks of seeded rows until the file holds `gigabytes`; returns the rows written."""
    import pyarrow as pa
    from pyarrow import csv

    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(10, 3))
    target = int(gigabytes * (1 << 30))
    rows = 0
    schema = pa.schema([*(pa.field(c, pa.float32()) for c in COLUMNS), pa.field("label", pa.int64())])
    with csv.CSVWriter(str(path), schema) as writer:
        while path.stat().st_size < target if path.exists() else True:
            x = (rng.normal(size=(200_000, 10)) * np.arange(1, 11)).astype(np.float32)
            y = np.argmax(x / np.arange(1, 11) @ weights, axis=1)
            writer.write_table(pa.table({**{c: x[:, i] for i, c in enumerate(COLUMNS)}, "label": y}, schema=schema))
            rows += len(x)
    return rows


def head(source: Path, target: Path, rows: int) -> None:
    with source.open("rb") as src, target.open("wb") as out:
        for i, line in enumerate(src):
            if i > rows:
                break
            out.write(line)


def config(path: Path, stream: bool | str, epochs: int, input_shape: bool = False) -> dict:
    layers = [{"Dense": {"units": 64, "activation": "relu"}}, {"Dense": {"units": 64, "activation": "relu"}},
              {"Dense": {"units": 3}}]
    data = {"source": "csv", "path": str(path), "label": "label", "stream": stream, "batch_size": 512}
    if input_shape:   # the seed's way: the columns as one matrix (an old kcli refuses `stream` with it)
        data = {k: v for k, v in data.items() if k != "stream" or v != "auto"}
    return {"name": "bench-stream", "seed": 1, "data": data,
            "model": {"input_shape": [10], "layers": [{"Normalization": {}}, *layers]} if input_shape else
            {"layers": layers},
            "compile": {"optimizer": "adam",
                        "loss": {"SparseCategoricalCrossentropy": {"from_logits": True}}},
            "fit": {"epochs": epochs}, "save": ["weights"]}


def steal() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs so far (/proc/stat): the time the hypervisor gave to other guests."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 1
    return (values[7] if len(values) > 7 else 0), sum(values)


def train(folder: Path, name: str, cfg: dict, workers: int = 0) -> tuple[float, int, list[float], float]:
    """(wall s, peak RSS KiB, epoch seconds, % of CPU time stolen by the hypervisor) of one `kcli train` (with
    `workers`: the largest process's peak RSS, i.e. the largest worker's)."""
    path, runs = folder / f"{name}.yaml", folder / f"runs-{name}"
    path.write_text(yaml.safe_dump(cfg))
    shutil.rmtree(runs, ignore_errors=True)
    before = steal()
    several = ["--workers", str(workers)] if workers else []
    wall, _, rss = timed_rss([*kcli_command(), "train", str(path), "--runs-dir", str(runs), *several])
    after = steal()
    stolen = 100 * (after[0] - before[0]) / max(1, after[1] - before[1])
    run = next(runs.iterdir())
    return wall, rss, json.loads((run / "run.json").read_text())["epoch_seconds"], stolen


def interleaved(folder: Path, big: Path, small: Path, small_rows: int, rounds: int) -> tuple[float, float]:
    """Examples/s of both inputs measured in one process, in alternating turns of about the same length (one
    streamed epoch, then as many in-memory epochs as make the same number of rows), so that this VM's drift
    hits both alike: the same model and fit settings, kcli's own datasets (the streamed one with its reader's
    epoch callback). The first turn of each is not counted (it traces the graph, fills the cache)."""
    from kcli.data import pipeline
    from kcli.training.prepare import prepare

    prepared = {}
    for name, cfg in (("inter-streamed", config(big, True, 1)), ("inter-memory", config(small, False, 1))):
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        prepared[name] = prepare(path, stream_cache=folder / ".stream-cache")
    streamed, memory = prepared["inter-streamed"], prepared["inter-memory"]
    assert streamed.splits is not None and memory.splits is not None
    stream = streamed.splits.train
    rows = stream.epoch_setter.reader.rows
    in_memory = pipeline.training(memory.splits.train, memory.cfg.data, memory.cfg.seed or 0).x
    repeat = max(1, round(rows / small_rows))
    seconds: dict[str, float] = {"streamed": 0.0, "memory": 0.0}
    try:
        for turn in range(rounds + 1):
            started = time.perf_counter()
            streamed.model.fit(stream.dataset, epochs=turn + 1, initial_epoch=turn, verbose=0,
                               callbacks=[stream.epoch_setter.callback()])
            middle = time.perf_counter()
            memory.model.fit(in_memory, epochs=repeat, verbose=0)
            if turn:
                seconds["streamed"] += middle - started
                seconds["memory"] += time.perf_counter() - middle
    finally:
        streamed.splits.cache.close()
    return rows * rounds / seconds["streamed"], small_rows * repeat * rounds / seconds["memory"]


def only_streamed(folder: Path, big: Path, size: int, lines: int, args: argparse.Namespace) -> None:
    """One `kcli train` of the whole file with `stream: auto`: its peak RSS and wall time."""
    wall, rss, epochs, stolen = train(folder, "streamed", config(big, "auto", args.epochs, args.input_shape))
    code = args.pythonpath or Path(__file__).resolve().parents[1]
    way = "model.input_shape: [10], Normalization first" if args.input_shape else "the table's columns"
    body = [f"Machine: {machine()}", "",
            f"{size / (1 << 30):.2f} GB CSV, {lines:,} rows x 10 number columns + label; MLP 64-64-3, batch 512, "
            f"{way}; kcli from {code}.", "",
            "| variant | peak RSS | wall s | epochs s | examples/s (last epoch) |", "|---|---:|---:|---:|---:|",
            f"| stream: auto | {rss / 1024:,.0f} MiB | {wall:.1f} | {', '.join(f'{v:.1f}' for v in epochs)} "
            f"| {lines / epochs[-1]:,.0f} |", "",
            f"CPU time stolen by the hypervisor during the run (/proc/stat): {stolen:.0f}%."]
    report("a CSV larger than memory, the streamed command only", body, output(args))


def on_workers(folder: Path, big: Path, lines: int, workers: int, epochs: int) -> list[str]:
    """One process, then `workers` local workers, streaming the whole file: the report's lines."""
    rows = []
    for name, count in (("streamed", 0), (f"streamed-{workers}-workers", workers)):
        wall, rss, epoch_seconds, stolen = train(folder, name, config(big, True, epochs), count)
        speed = lines / statistics.median(epoch_seconds[1:] or epoch_seconds)   # --epochs 1: that epoch
        rows.append(f"| {f'{workers} workers' if count else 'one process'} | {speed:,.0f} | "
                    f"{speed / max(1, count):,.0f} | {rss / 1024:,.0f} MiB | {wall:.1f} | "
                    f"{', '.join(f'{v:.1f}' for v in epoch_seconds)} | {stolen:.0f}% |")
    return [f"Machine: {machine()}", "",
            f"{big.stat().st_size / (1 << 30):.2f} GB CSV, {lines:,} rows x 10 number columns + label; MLP 64-64-3, "
            f"global batch 512, streamed; each worker reads its part of the rows (the pass over the whole file for "
            "the statistics on every worker) on the same machine.", "",
            "| variant | examples/s | per worker | peak RSS (largest process) | wall s | epoch s | CPU stolen |",
            "|---|---:|---:|---:|---:|---|---:|", *rows, "",
            "examples/s: the median epoch after the first (the first also traces the graph; with one epoch, that "
            "one); wall time includes start-up and the pass that learns the columns (on every worker)."]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gb", type=float, default=2.0)
    parser.add_argument("--memory-rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (the first is not counted)")
    parser.add_argument("--rounds", type=int, default=2, help="turns of each input in one process (0: none)")
    parser.add_argument("--keep", type=Path, help="keep the data and runs in this folder")
    parser.add_argument("--input-shape", action="store_true", help="the config with model.input_shape: [10]")
    parser.add_argument("--only-streamed", action="store_true", help="only the streamed command: RSS and wall time")
    parser.add_argument("--pythonpath", type=Path, help="run kcli from this checkout (PYTHONPATH)")
    parser.add_argument("--workers", type=int, default=0, help="compare one process with this many local workers")
    add_output_args(parser)
    args = parser.parse_args()
    if args.pythonpath:
        ENV["PYTHONPATH"] = str(args.pythonpath.resolve())
    folder = args.keep or Path(tempfile.mkdtemp(prefix="kcli-stream-"))
    folder.mkdir(parents=True, exist_ok=True)
    big, small = folder / "big.csv", folder / "small.csv"
    if not big.exists():
        write_csv(big, args.gb)
    size = big.stat().st_size
    lines = sum(1 for _ in big.open("rb")) - 1
    if args.workers:
        report(f"a CSV larger than memory on {args.workers} workers", on_workers(folder, big, lines, args.workers,
                                                                               args.epochs), output(args))
        return
    if args.only_streamed:
        only_streamed(folder, big, size, lines, args)
        return
    head(big, small, args.memory_rows)
    streamed_runs, memory_runs, stolen = [], [], []
    for _ in range(args.repeat):   # interleaved: this VM's speed drifts
        s_wall, s_rss, s_epochs, s_stolen = train(folder, "streamed", config(big, "auto", args.epochs))
        streamed_runs.append(lines / statistics.median(s_epochs[1:]))
        m_wall, m_rss, m_epochs, m_stolen = train(folder, "memory", config(small, False, args.epochs))
        memory_runs.append(args.memory_rows / statistics.median(m_epochs[1:]))
        stolen += [s_stolen, m_stolen]
    streamed, in_memory = statistics.median(streamed_runs), statistics.median(memory_runs)
    before = steal()
    inter = interleaved(folder, big, small, args.memory_rows, args.rounds) if args.rounds else None
    after = steal()
    body = [f"Machine: {machine()}", "",
            f"{size / (1 << 30):.2f} GB CSV, {lines:,} rows x 10 number columns + label; MLP 64-64-3, batch 512, "
            "one Normalization over the columns (kcli builds the inputs; no input_shape).", "",
            "| variant | examples/s | vs in memory | peak RSS | wall s |", "|---|---:|---:|---:|---:|",
            f"| streamed (stream: auto), the whole file | {streamed:,.0f} | {streamed / in_memory:.2f}x "
            f"| {s_rss / 1024:,.0f} MiB | {s_wall:.1f} |",
            f"| in memory (stream: false), first {args.memory_rows:,} rows | {in_memory:,.0f} | 1.00x "
            f"| {m_rss / 1024:,.0f} MiB | {m_wall:.1f} |", "",
            f"examples/s: median of {args.repeat} runs each (streamed: {', '.join(f'{v:,.0f}' for v in streamed_runs)};"
            f" in memory: {', '.join(f'{v:,.0f}' for v in memory_runs)}), each run's median epoch after the first (the "
            "first also traces the graph). Peak RSS and wall time of the last run; the streamed wall time = start-up "
            "+ the pass that learns the columns and caches the rows as read (Arrow IPC) + "
            f"{len(s_epochs)} epochs of {', '.join(f'{v:.1f}' for v in s_epochs)} s. CPU time stolen by the "
            f"hypervisor during the runs (/proc/stat): {', '.join(f'{v:.0f}%' for v in stolen)}."]
    if inter is not None:
        body += ["", f"In one process, alternating turns ({args.rounds} counted of each, after one not counted): one "
                 "streamed epoch of the whole file, then the in-memory rows for as many rows; the same model and "
                 "kcli's own datasets, without kcli's callbacks:", "",
                 "| variant | examples/s | vs in memory |", "|---|---:|---:|",
                 f"| streamed | {inter[0]:,.0f} | {inter[0] / inter[1]:.2f}x |",
                 f"| in memory | {inter[1]:,.0f} | 1.00x |", "",
                 f"CPU time stolen by the hypervisor meanwhile: "
                 f"{100 * (after[0] - before[0]) / max(1, after[1] - before[1]):.0f}%."]
    report("a CSV larger than memory: streamed epoch vs in memory", body, output(args))


if __name__ == "__main__":
    main()
