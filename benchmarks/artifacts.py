"""Time kcli spends writing each model artifact of the digits MLP, so that `save:` can be chosen knowingly.

    python benchmarks/artifacts.py [--repeat 5] [--out benchmarks/RESULTS.md]

In one process: build and compile configs/digits_mlp.yaml the way `kcli train` does, train one epoch (so the
optimizer has state to save), then write each artifact with kcli's own code (artifacts.save_model: temp name,
Keras save call, rename) `--repeat` times into fresh directories, in kcli's order (weights, keras,
savedmodel, h5). Reported: the first write (includes one-time tracing) and the median of the rest, and size.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import REPO, add_output_args, machine, median, output, report


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    add_output_args(parser)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from kcli.config import model_io
    from kcli.run import artifacts, layout
    from kcli.training.prepare import prepare

    prep = prepare(REPO / "configs" / "digits_mlp.yaml")
    assert prep.splits is not None
    prep.model.fit(prep.splits.train.x, prep.splits.train.y, batch_size=32, epochs=1, verbose=0)
    params = prep.model.count_params()
    ports = model_io.of(prep.cfg.model, prep.cfg.data)
    times: dict[str, list[float]] = {fmt: [] for fmt in layout.ARTIFACTS}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="kcli-bench-") as tmp:
        for i in range(args.repeat):
            folder = Path(tmp) / f"run{i}"
            folder.mkdir()
            for fmt, name in layout.ARTIFACTS.items():
                start = time.perf_counter()
                artifacts.save_model(prep.model, folder, [fmt], ports)
                times[fmt].append(time.perf_counter() - start)
                sizes[fmt] = size_of(folder / name)
    rows = ["| save: | file | first write ms | median of the rest ms | size KB |", "|---|---|---:|---:|---:|"]
    for fmt, values in times.items():
        rest = values[1:] or values
        rows.append(f"| {fmt} | {layout.ARTIFACTS[fmt]} | {values[0] * 1000:.0f} | {median(rest) * 1000:.0f} | "
                    f"{sizes[fmt] / 1024:,.0f} |")
    total = sum(median(v[1:] or v) for v in times.values())
    body = [f"Machine: {machine(with_tensorflow=False)}, TensorFlow/Keras as installed", "",
            f"digits MLP ({params:,} parameters, Adam state included where the format keeps it), "
            f"{args.repeat} writes per format.", "", *rows, "",
            f"- all four: ~{total * 1000:.0f} ms per run (after the first); `save: []` skips them all."]
    report("artifacts (benchmarks/artifacts.py)", body, output(args))


if __name__ == "__main__":
    main()
