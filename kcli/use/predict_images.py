"""`kcli predict RUN --input DIR_OR_FILE` for a run trained on an image folder: file, class name, probability.

Images are decoded and resized as training read them (kcli/data/images.py); the class names are the run's
(run.json `classes`, the sorted sub-folder names of its training folder).
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np

from kcli import events
from kcli.config.model_io import flat_outputs
from kcli.data import images as image_source
from kcli.errors import DataError
from kcli.files import atomic
from kcli.model.load import load_model
from kcli.run import find
from kcli.use.head import Head

CHUNK = 256   # images decoded at a time


def predict(run: find.FinishedRun, input_path: Path, output: Path | None, batch_size: int,
            listener: events.Listener = events.ignore, gather: bool = False) -> dict[str, np.ndarray]:
    """Predict every image; write `output` (.csv) or show the first rows. Returns, when `gather`, each image's
    `file`, `predicted` class name, `probability` and raw `outputs` (else {})."""
    if output is not None and output.suffix.lower() != ".csv":
        raise DataError(f"{output}: predictions of an image model are written as CSV (file, class, probability)",
                        key="--output")
    files = image_source.image_files(input_path, "--input")
    model = load_model(run)
    names = run.record.get("classes") or []
    preview: list[tuple[None, str, float, np.ndarray]] = []
    counts: Counter[str] = Counter()
    rows: list[tuple[str, str, str]] = []
    head: Head | None = None
    outputs: list[np.ndarray] = []   # kept only when gathering (the API)
    probabilities: list[np.ndarray] = []
    for start in range(0, len(files), CHUNK):
        chunk = files[start:start + CHUNK]
        raw = flat_outputs(model.predict(image_source.read_images(chunk, run.config.data), batch_size=batch_size,
                                         verbose=0))
        head = head or Head.of(run, int(np.prod(raw.shape[1:])))
        classified = head.classify(raw)
        if classified is None:
            raise DataError("the run's model is not a classifier (its loss is not a categorical or binary "
                            "cross-entropy), so there are no classes to name", key="RUN")
        if gather:
            outputs.append(raw.astype(np.float32))
            probabilities.append(classified[1].astype(np.float32))
        for file, cls, prob, values in zip(chunk, *classified, raw):
            name = names[int(cls)] if int(cls) < len(names) else str(int(cls))
            counts[name] += 1
            rows.append((str(file), name, f"{float(prob):.6g}"))
            if len(preview) < 10:
                preview.append((None, name, float(prob), values.reshape(-1)))
    if output is not None:
        _write_csv(output, rows)
    assert head is not None
    listener(events.Predictions(preview, counts, len(rows), head.note, None, output, show_rows=output is None))
    if not gather:
        return {}
    return {"file": np.asarray([r[0] for r in rows], dtype=object), "outputs": np.concatenate(outputs),
            "predicted": np.asarray([r[1] for r in rows], dtype=object),
            "probability": np.concatenate(probabilities)}


def _write_csv(output: Path, rows: list[tuple[str, str, str]]) -> None:
    """file, class, probability: one row per image."""
    with atomic.target(output, replace=True) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "class", "probability"])
        writer.writerows(rows)
