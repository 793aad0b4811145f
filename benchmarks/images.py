"""Image folders: images/s of `kcli train` (source: images) vs a hand-written image_dataset_from_directory + fit.

    python benchmarks/images.py [--images 2000] [--repeat 3]

Generates a folder of PNGs (2 classes, 96 x 96 RGB, resized to 64 x 64 while training), then trains the same
small CNN for 3 epochs both ways, fresh processes interleaved. Speed is examples/s over the training epochs
(first epoch excluded: it traces the graph), from run.json's epoch_seconds for kcli and from per-epoch times
taken by a callback in the script; the whole command's wall time is shown too. Goal: kcli >= 0.9x.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import yaml
from _common import REPO, add_output_args, fmt_runs, kcli_command, machine, output, report, timed

SCRIPT = """
import json, sys, time
import keras
folder, seed = sys.argv[1], 1
keras.utils.set_random_seed(seed)
train, val = keras.utils.image_dataset_from_directory(folder, image_size=(64, 64), batch_size=32, seed=seed,
                                                      validation_split=0.2, subset="both", verbose=False)
model = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.Rescaling(1 / 255),
                          keras.layers.Conv2D(16, 3, activation="relu"), keras.layers.MaxPooling2D(),
                          keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(),
                          keras.layers.Flatten(), keras.layers.Dense(2)])
model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
times = []
class T(keras.callbacks.Callback):
    def on_epoch_begin(self, e, logs=None): self.t = time.perf_counter()
    def on_epoch_end(self, e, logs=None): times.append(time.perf_counter() - self.t)
model.fit(train, validation_data=val, epochs=3, verbose=0, callbacks=[T()])
print(json.dumps(times))
"""

CONFIG = {
    "name": "bench-images", "seed": 1,
    "data": {"source": "images", "path": None, "image_size": [64, 64], "validation_split": 0.2, "batch_size": 32},
    "model": {"input_shape": [64, 64, 3], "layers": [
        {"Rescaling": {"scale": 1 / 255}}, {"Conv2D": {"filters": 16, "kernel_size": 3, "activation": "relu"}},
        "MaxPooling2D", {"Conv2D": {"filters": 32, "kernel_size": 3, "activation": "relu"}}, "MaxPooling2D",
        "Flatten", {"Dense": {"units": 2}}]},
    "compile": {"optimizer": "adam", "loss": {"SparseCategoricalCrossentropy": {"from_logits": True}},
                "metrics": ["accuracy"]},
    "fit": {"epochs": 3},
    "save": [],
}


def make_images(folder: Path, n: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, level in enumerate((60, 190)):
        (folder / f"class{c}").mkdir(parents=True)
        for i in range(n // 2):
            pixels = np.clip(rng.normal(level, 50, size=(96, 96, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(folder / f"class{c}" / f"{i}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    add_output_args(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_images(folder / "pics", args.images)
        config = folder / "bench.yaml"
        CONFIG["data"]["path"] = str(folder / "pics")
        config.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
        train_rows = args.images - round(args.images * 0.2)
        kcli, plain = [], []
        for _ in range(args.repeat):
            wall, _ = timed([*kcli_command(), "train", str(config), "--runs-dir", str(folder / "runs")])
            run = sorted((folder / "runs").iterdir())[-1]
            kcli.append((wall, statistics.median(json.loads((run / "run.json").read_text())["epoch_seconds"][1:])))
            wall, out = timed([sys.executable, "-c", SCRIPT, str(folder / "pics")], cwd=REPO)
            plain.append((wall, statistics.median(json.loads(out.strip().splitlines()[-1])[1:])))
    speed = {name: train_rows / statistics.median(r[1] for r in runs) for name, runs in (("kcli", kcli),
                                                                                     ("plain", plain))}
    body = [f"Machine: {machine()}", "",
            f"{args.images} PNGs (96 x 96, 2 classes) resized to 64 x 64, small CNN, batch 32, 3 epochs; "
            f"examples/s over epochs 2-3, median of {args.repeat} runs each.", "",
            "| variant | images/s | vs hand-written | wall s (runs) |", "|---|---:|---:|---|",
            f"| hand-written image_dataset_from_directory + fit | {speed['plain']:,.0f} | 1.00x | "
            f"{fmt_runs([r[0] for r in plain], 1)} |",
            f"| kcli train (source: images) | {speed['kcli']:,.0f} | {speed['kcli'] / speed['plain']:.2f}x | "
            f"{fmt_runs([r[0] for r in kcli], 1)} |"]
    report("image folder training: kcli vs hand-written", body, output(args))


if __name__ == "__main__":
    main()
