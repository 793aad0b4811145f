"""The run directory's layout: the names of its files, and its creation under a name never used before.

A run directory is never reused: `kcli train` creates a new one (the name and the time, then -2, -3, ... when
that is taken), so one run never overwrites another's files.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from kcli.errors import RunError
from kcli.files import atomic

RUN_JSON = "run.json"
CONFIG = "config.yaml"
SUMMARY = "summary.txt"
HISTORY_CSV = "history.csv"
HISTORY_JSON = "history.json"
METRICS = "metrics.json"
CODE_DIR = "code"
# `kcli evaluate`'s pictures beside its eval-<split>.json: eval-<split>-<kind>.png, with what each shows
EVAL_PICTURES: dict[str, str] = {
    "confusion": "confusion matrix",
    "roc": "ROC curves",
    "pr": "precision-recall curves",
    "calibration": "reliability diagram",
    "predicted": "predicted against true values",
    "residuals": "residuals",
}
# Saving order matters: Keras 3.15's .h5 save strips the optimizer from the live model
# (keras-team/keras PR 23475), so everything else is written before model.h5.
ARTIFACTS: dict[str, str] = {
    "weights": "model.weights.h5",
    "keras": "model.keras",
    "savedmodel": "saved_model",
    "h5": "model.h5",
}


def eval_picture(run_dir: Path, label: str, kind: str) -> Path:
    """RUN/eval-<label>-<kind>.png: one of `kcli evaluate`'s pictures (a kind of EVAL_PICTURES)."""
    return run_dir / f"eval-{label}-{kind}.png"


def new_run_dir(runs_dir: Path, name: str, now: datetime | None = None) -> Path:
    """Create `<runs_dir>/<name>-<YYYYmmdd-HHMMSS>` (or -2, -3, ...): never an existing directory."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create the runs directory {runs_dir}: {exc}", key="--runs-dir") from None
    base = f"{name}-{stamp}"
    for n in range(1, 10_000):
        path = runs_dir / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:   # read-only, full, or not a directory
            raise RunError(f"cannot create a run directory in {runs_dir}: {exc.strerror or exc}",
                           key="--runs-dir") from None
        return path
    raise RunError(f"too many runs named {base} in {runs_dir}", key="--runs-dir")


def copy_code(run_dir: Path, sources: Mapping[Path, bytes]) -> list[str]:
    """Write the user's imported .py files into RUN/code/ so the run can be loaded on its own: the bytes that
    ran (imports.Registry.sources), not the file as it is now (it may have been edited while training)."""
    if not sources:
        return []
    code = run_dir / CODE_DIR
    code.mkdir(exist_ok=True)
    copied: list[str] = []
    for src, source in sources.items():
        dest = code / src.name
        n = 2
        while dest.exists():
            dest, n = code / f"{src.stem}_{n}{src.suffix}", n + 1
        atomic.write_bytes(dest, source)
        copied.append(str(dest.relative_to(run_dir)))
    return copied
