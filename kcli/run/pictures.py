"""Pictures as PNG files anyone can open: a run's history.png, `kcli plot` overlays, confusion matrices.

matplotlib draws them (its Agg backend, no display needed). Importing it takes ~0.5 s, so `kcli train` starts
that import on a background thread when training starts (`warm_up`) and draws at the end.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kcli.files import atomic

HISTORY_PNG = "history.png"
_warm: threading.Thread | None = None


def warm_up() -> None:
    """Import matplotlib on a background thread (training releases the GIL most of the time)."""
    global _warm
    if _warm is None:
        _warm = threading.Thread(target=_import, daemon=True)
        _warm.start()


def _import() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure


def _figure(width: float, height: float) -> Any:
    if _warm is not None:
        _warm.join()
    return _import()(figsize=(width, height), dpi=100)


def metric_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The logged values of a history, validation ones folded into their training name (loss, accuracy, ...)."""
    names = dict.fromkeys(k.removeprefix("val_") for row in rows for k in row if k != "epoch")
    return [n for n in names if n != "learning_rate"] + (["learning_rate"] if "learning_rate" in names else [])


def history(rows: Sequence[Mapping[str, Any]], path: Path, title: str) -> None:
    """One panel per value: the training curve, and validation points on the epochs where it ran."""
    names = metric_names(rows)
    if not rows or not names:
        return
    cols = min(len(names), 3)
    lines = (len(names) + cols - 1) // cols
    fig = _figure(4.2 * cols, 3.2 * lines)
    for i, name in enumerate(names):
        ax = fig.add_subplot(lines, cols, i + 1)
        for key, style, label in ((name, "-", "train"), (f"val_{name}", "o-", "validation")):
            points = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
            if points:
                epochs, values = zip(*points)
                ax.plot(epochs, values, style, markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if any(r.get(f"val_{name}") is not None for r in rows):
            ax.legend()
    fig.suptitle(_wrap(title, 4.2 * cols))
    _save(fig, path)


def overlay(series: Mapping[str, Sequence[tuple[int, float]]], metric: str, path: Path, title: str) -> None:
    """Several runs' curves of one value in one panel."""
    fig = _figure(7, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    for label, points in series.items():
        if points:
            epochs, values = zip(*points)
            ax.plot(epochs, values, "o-" if len(points) < 30 else "-", markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    _save(fig, path)


def sweep(values: Sequence[tuple[int, float | None]], params: Mapping[str, Sequence[tuple[Any, float]]],
          metric: str, path: Path, title: str, log: Sequence[str] = ()) -> None:
    """A sweep: the metric per trial, and each parameter against the metric."""
    panels = 1 + len(params)
    cols = min(panels, 3)
    lines = (panels + cols - 1) // cols
    fig = _figure(4.2 * cols, 3.4 * lines)
    ax = fig.add_subplot(lines, cols, 1)
    done = [(n, v) for n, v in values if v is not None]
    if done:
        ax.plot(*zip(*done), "o")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    for i, (key, points) in enumerate(params.items()):
        ax = fig.add_subplot(lines, cols, i + 2)
        xs = [p for p, _ in points]
        if xs and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs):
            ax.plot(xs, [v for _, v in points], "o")
            if key in log:
                ax.set_xscale("log")
        else:
            labels = sorted({str(x) for x in xs})
            ax.plot([labels.index(str(x)) for x in xs], [v for _, v in points], "o")
            ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel(key, fontsize="small")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    _save(fig, path)


def confusion(matrix: np.ndarray, path: Path, title: str, names: Sequence[Any] | None = None) -> None:
    """Counts with true classes as rows and predicted classes as columns, each cell labelled; the classes are
    named as the data names them (`names`, by class id) where the run learned names, else their ids."""
    n = len(matrix)
    labels = [_short(str(c)) for c in names] if names and len(names) == n else [str(i) for i in range(n)]
    longest = max(len(label) for label in labels)
    size = max(4.0, min(12.0, 0.45 * n + 2.5)) + min(2.0, 0.08 * longest)   # room for the names beside the cells
    fig = _figure(size, size)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    style = {"fontsize": "small"} if n > 10 else {}
    turn = {"rotation": 45, "ha": "right", "rotation_mode": "anchor"} if longest > 3 else {}
    ax.set_xticks(range(n), labels, **style, **turn)
    ax.set_yticks(range(n), labels, **style)
    if n <= 30:
        top = matrix.max() or 1
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center", fontsize="small",
                    color="white" if count > top / 2 else "black")
    fig.suptitle(_wrap(title, size))   # centred on the figure: the axes sit right of the names
    _save(fig, path)


def _short(name: str, most: int = 24) -> str:
    """A class name short enough for a tick label (the full names are in eval-<split>.json)."""
    return name if len(name) <= most else name[:most - 1] + "\u2026"


def _wrap(title: str, inches: float, points: float = 14.4) -> str:
    """A title broken into lines that fit `inches` at the title's font size (a long run name would otherwise
    be cut off on both sides): at most 0.7 em per character (DejaVu Sans), breaking at spaces and hyphens first."""
    import textwrap

    chars = max(10, int(inches * 72 * 0.9 / (points * 0.7)))
    return textwrap.fill(title, width=chars, break_long_words=True, break_on_hyphens=True)


def _save(fig: Any, path: Path) -> None:
    from matplotlib.text import Text

    for label in fig.findobj(Text):   # titles and legends quote names from data: `$x$` is text, not mathtext
        label.set_parse_math(False)
    fig.tight_layout()
    with atomic.target(path, replace=True) as tmp:
        fig.savefig(tmp, format="png")
